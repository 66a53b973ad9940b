"""A key ring's AES-GCM nonces come from the process's random pool (a block per ``getrandom``, not one
system call per sealed value): sealed documents and payloads still unseal to what was sealed, with a
fresh ring too (the format is unchanged), and no nonce repeats."""

from __future__ import annotations

import base64
import os

import pytest

from gateway.store import sealing
from gateway.store.sealing import KeyRing

KEY = os.urandom(32)


def _doc_nonce(value: str) -> bytes:
    b64 = value[len(sealing.DOC_PREFIX) :].partition(":")[2]
    return base64.b64decode(b64)[: sealing._NONCE]


def _bytes_nonce(value: bytes) -> bytes:
    start = 1 + sealing.FINGERPRINT_CHARS
    return value[start : start + sealing._NONCE]


def test_sealed_values_unseal_to_what_was_sealed_and_never_share_a_nonce() -> None:
    """Documents and payloads, interleaved past several pool blocks: each unseals (this ring and a
    fresh one) to its value, and every nonce is distinct."""
    ring = KeyRing(KEY)
    docs = [{"n": n, "name": f"member {n}", "list": [n, None, True]} for n in range(600)]
    blobs = [f"ISA*{n}~".encode() * (n % 7 + 1) for n in range(600)]
    sealed_docs = [ring.seal_doc(d) for d in docs]
    sealed_blobs = [ring.seal_bytes(b) for b in blobs]
    fresh = KeyRing(KEY)
    assert [fresh.unseal_doc(v) for v in sealed_docs] == docs
    assert [fresh.unseal_bytes(v) for v in sealed_blobs] == blobs
    assert [ring.unseal_doc(v) for v in sealed_docs] == docs
    nonces = [_doc_nonce(v) for v in sealed_docs] + [_bytes_nonce(v) for v in sealed_blobs]
    assert all(len(n) == sealing._NONCE for n in nonces)
    assert len(set(nonces)) == len(nonces)


def test_sealing_reads_the_random_source_once_per_block_not_once_per_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sealing 300 values reads ``os.urandom`` a handful of times (one block per 4 KiB of nonces),
    where it read it 300 times before: each read lets the interpreter lock go."""
    reads: list[int] = []
    real = os.urandom

    def counted(n: int) -> bytes:
        reads.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", counted)
    ring = KeyRing(KEY)
    for n in range(150):
        ring.seal_doc({"n": n})
        ring.seal_bytes(b"x" * n)
    assert len(reads) <= 2, reads
