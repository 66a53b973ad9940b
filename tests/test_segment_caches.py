"""Kept segments (DTP, EQ, UM, HI, SV1/SV2) against segments built afresh: the same X12 bytes.

A request is built by the plain builders, and again by the kept ones after another request has filled
their tables, so a key that two different segments could share would show as a difference.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import inquiries, review_requests
from transactions import build270, build278, common
from transactions.build270 import build_270_body
from transactions.build278 import build_278_body
from transactions.segment import Delimiters, Segment
from transactions.writer import serialize

WHEN = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


KEPT = (  # (module, kept builder, the builder it keeps the segments of)
    (common, "_kept_dtp", common._dtp),
    (build270, "_kept_eq", build270._eq_segment),
    (build278, "_kept_service", build278._service),
    (build278, "_kept_diagnoses", build278._hi),
    (build278, "_kept_um", build278._um),
)


def _afresh_and_kept(build: Callable[[Any, datetime], tuple[Segment, ...]], first: Any, second: Any) -> None:
    with pytest.MonkeyPatch.context() as patch:  # the plain builders in place of the kept ones
        for module, name, plain in KEPT:
            patch.setattr(module, name, plain)
        fresh = build(second, WHEN)
    for module, name, _ in KEPT:
        getattr(module, name).cache_clear()
    build(first, WHEN)
    kept = build(second, WHEN)
    assert kept == fresh
    assert serialize(kept, Delimiters()) == serialize(fresh, Delimiters())  # Repetition vs tuple too


@settings(max_examples=200)
@given(st.lists(inquiries(), min_size=2, max_size=2))
def test_kept_270_segments_are_the_ones_built_afresh(pair: list[Any]) -> None:
    """A 270 built with the tables holding another inquiry's segments is byte for byte the same."""
    _afresh_and_kept(build_270_body, *pair)


@settings(max_examples=200)
@given(st.lists(review_requests(), min_size=2, max_size=2))
def test_kept_278_segments_are_the_ones_built_afresh(pair: list[Any]) -> None:
    """A 278 built with the tables holding another request's segments is byte for byte the same."""
    _afresh_and_kept(build_278_body, *pair)


@given(inquiries(), review_requests())
def test_equal_requests_share_their_kept_segments(inquiry: Any, review: Any) -> None:
    """Building the same request twice gives the very same DTP/EQ/UM/HI/SV objects (they are kept)."""
    for build, req in ((build_270_body, inquiry), (build_278_body, review)):
        first, second = build(req, WHEN), build(req, WHEN)
        kept = [a for a, b in zip(first, second, strict=True) if a is b and a.tag in ("EQ", "UM", "HI")]
        assert kept, [s.tag for s in first]
