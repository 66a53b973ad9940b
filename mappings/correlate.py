"""Correlate responses with the requests they answer, as a pure function.

A response matches a request by the trace number it echoes (TRN01 = 2, TRN02 as we sent it), else by
BHT03 (X12 calls it the reconciliation key for paired request/response sets). The kinds must pair:
271 answers 270, a 278 response answers a 278 request. The same response seen twice for one request
(same fingerprint) is reported as a duplicate; a different later response (pended, then approved) is
a match like the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ANSWERS = {"271": "270", "278resp": "278"}


@dataclass(frozen=True, slots=True)
class SentRequest:
    tracking_number: str
    kind: str  # "270" or "278"
    trace_number: str
    bht_reference: str


@dataclass(frozen=True, slots=True)
class ResponseKey:
    kind: str  # "271" or "278resp"
    trace_numbers: tuple[str, ...]
    bht_reference: str | None
    fingerprint: str  # e.g. sha256 of the response's segments


@dataclass(frozen=True, slots=True)
class Correlation:
    matched: tuple[tuple[int, str, str], ...]  # (response index, tracking number, matched by "trace"|"bht03")
    unmatched: tuple[int, ...]
    duplicates: tuple[tuple[int, str], ...]  # (response index, tracking number)


def correlate(
    requests: Sequence[SentRequest], responses: Sequence[ResponseKey], seen: Sequence[tuple[str, str]] = ()
) -> Correlation:
    """Match ``responses`` to ``requests``; ``seen`` holds (tracking number, fingerprint) already applied."""
    by_trace: dict[tuple[str, str], SentRequest] = {}
    by_bht: dict[tuple[str, str], SentRequest] = {}
    for r in requests:
        by_trace.setdefault((r.kind, r.trace_number), r)
        by_bht.setdefault((r.kind, r.bht_reference), r)
    applied = set(seen)
    matched: list[tuple[int, str, str]] = []
    unmatched: list[int] = []
    duplicates: list[tuple[int, str]] = []
    for i, resp in enumerate(responses):
        kind = ANSWERS.get(resp.kind)
        hit, how = None, ""
        for trace in resp.trace_numbers:
            hit = by_trace.get((kind or "", trace))
            if hit is not None:
                how = "trace"
                break
        if hit is None and resp.bht_reference:
            hit, how = by_bht.get((kind or "", resp.bht_reference)), "bht03"
        if hit is None:
            unmatched.append(i)
        elif (hit.tracking_number, resp.fingerprint) in applied:
            duplicates.append((i, hit.tracking_number))
        else:
            applied.add((hit.tracking_number, resp.fingerprint))
            matched.append((i, hit.tracking_number, how))
    return Correlation(tuple(matched), tuple(unmatched), tuple(duplicates))
