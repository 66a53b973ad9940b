"""The compiled implementation-guide engine: pyx12-format maps compiled once into tables, walked
without pyx12's objects. Same findings as the pyx12 walker (:mod:`transactions.ig_walk`), which
stays as the reference (``engine="pyx12"``)."""

from __future__ import annotations

from transactions.engine.walk import walk_transaction_set

__all__ = ["walk_transaction_set"]
