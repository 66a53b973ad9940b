"""The payer side: a clearinghouse simulator with its scenarios and the 271/278 response builders.

Production code (``gateway``, ``transactions``, ``mappings``, ``policy``) never imports this package; only
``x12gw sim`` and ``x12gw demo`` do, and the tests. ``tests/test_purity.py`` keeps it that way.
"""
