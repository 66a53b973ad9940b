"""FHIR structure check of a PAS bundle with ``fhir.resources`` (a maintained FHIR model library).

PAS is an R4 (4.0.1) guide; the library's R4B models are used, which for the resources PAS bundles
carry (Bundle, Claim, ClaimResponse, Patient, Coverage, Organization, Practitioner(Role), Location,
Encounter, ServiceRequest, DeviceRequest, MedicationRequest, DocumentReference) differ from R4 only in
elements PAS does not use. Errors are reported by path and by kind, never with the library's message
text, which can quote the submitted value.
"""

from __future__ import annotations

from typing import Any

from mappings.pas.issues import Issue

_KIND_MESSAGES = {
    "missing": "required by FHIR R4",
    "extra_forbidden": "not an element of this FHIR resource",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "decimal_parsing": "must be a decimal number",
    "list_type": "must be an array",
    "dict_type": "must be an object",
    "model_type": "must be an object",
}


def _path(loc: tuple[Any, ...]) -> str:
    out = "Bundle"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def structure_issues(bundle: dict[str, Any]) -> list[Issue]:
    """Every FHIR R4 structure problem of the bundle, by path (an empty list when it parses)."""
    from fhir.resources.R4B.bundle import Bundle  # noqa: PLC0415 - heavy; only the FHIR door needs it
    from pydantic import ValidationError  # noqa: PLC0415 - comes with fhir.resources

    try:
        Bundle.model_validate(bundle)
    except ValidationError as exc:
        return [
            Issue(
                _path(tuple(err["loc"])),
                "structure",
                _KIND_MESSAGES.get(err["type"], "value not allowed here"),
            )
            for err in exc.errors(include_input=False, include_url=False)
        ]
    except (TypeError, ValueError):
        return [Issue("Bundle", "structure", "not a FHIR Bundle")]
    return []
