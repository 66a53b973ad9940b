"""A request's texts are looked at once (``intake._plain_texts``) before the two walks that name the
first unstorable text or the first holding a delimiter: the checks' outcome must be the two walks'
alone (the reference), for any texts, in any field, nested in any model."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from gateway.stages import intake
from transactions.errors import RequestError
from transactions.outbound import Request
from transactions.requests_json import request_from_obj

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "sample_edi" / "requests").glob("*.json"))


def _reference(req: Request) -> list[dict[str, Any]]:
    """The checks as they were: both walks, then the writability probe."""
    if (where := intake._unstorable(req)) is not None:
        return [{"field": where, "reason": intake.UNSTORABLE}]
    if (where := intake._first_text(req, intake._has_delimiter)) is not None:
        return [{"field": where, "reason": intake.UNSENDABLE}]
    if (why := intake._unwritable(req)) is not None:
        return [{"field": "request", "reason": why}]
    return []


def _sample(path: Path) -> Request:
    return request_from_obj(json.loads(path.read_text()))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_each_sample_request_passes_the_checks_as_before(path: Path) -> None:
    """The sample requests: no problem, as the two walks find none."""
    req = _sample(path)
    assert intake.request_problems(req) == _reference(req) == []


_ODD = st.sampled_from(["*", "^", ":", "~", "\x00", "\x1f", "\x7f", "\x85", "\ud800", "\udfff", "\n", "\t"])
_TEXT = st.lists(st.text(alphabet=st.sampled_from("AZ az09-'")) | _ODD, max_size=4).map("".join)


@given(data=st.data(), which=st.sampled_from(SAMPLES))
@settings(max_examples=300, deadline=None)
def test_any_texts_get_the_problem_the_two_walks_find(data: Any, which: Path) -> None:
    """Control characters, lone surrogates and delimiters in any of several fields (subscriber,
    dependent, payer, provider): the same problem (field path and reason) as the reference, or none."""
    req = _sample(which)
    try:
        subscriber = replace(
            req.subscriber,
            last_name=data.draw(_TEXT) or "A",
            first_name=data.draw(_TEXT),
            middle_name=data.draw(st.none() | _TEXT),
        )
        changed = replace(req, subscriber=subscriber, payer=replace(req.payer, name=data.draw(_TEXT) or "P"))
        if req.dependent is not None:
            changed = replace(changed, dependent=replace(req.dependent, first_name=data.draw(_TEXT)))
    except RequestError:
        reject()
    assert intake.request_problems(changed) == _reference(changed)


@dataclass(frozen=True)
class _Box:
    name: str
    more: Any = None


@given(
    value=st.recursive(
        st.none() | st.integers() | _TEXT,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=3), inner, max_size=3)
            | st.builds(_Box, _TEXT, inner)
        ),
        max_leaves=12,
    )
)
@settings(max_examples=300, deadline=None)
def test_one_walk_sees_what_the_two_walks_see_in_any_nesting(value: Any) -> None:
    """Lists, dicts (keys not looked at), models and leaves nested in any way: the one walk says
    "plain" exactly when neither walk finds a text."""
    neither = intake._unstorable(value) is None and intake._first_text(value, intake._has_delimiter) is None
    assert intake._plain_texts(value) == neither
