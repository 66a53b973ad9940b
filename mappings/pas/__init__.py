"""Da Vinci PAS (FHIR R4 prior authorization) <-> X12 278: pure translation, no I/O.

``request``  turns a PAS request Bundle into the gateway's 278 JSON request form (the same form an
inbox file or the HTTP API takes), driven by the field table in ``mappings/rules/pas_278.toml``;
``response`` turns the authorization record mapped from the payer's 278 response into a PAS response
Bundle (ClaimResponse per item). Problems are data (``Issue`` with a FHIR path, never a value).
"""
