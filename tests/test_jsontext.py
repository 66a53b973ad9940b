"""The result files' fast JSON writer against ``json.dumps(indent=2, sort_keys=True)``: same bytes."""

from __future__ import annotations

import enum
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.runtime.jsontext import dumps_indent2_sorted
from gateway.stages.outbox import render_result
from tests.test_golden import RESPONSE_FILES, expected_path


def reference(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


class Level(enum.IntEnum):
    LOW = 1


class State(enum.StrEnum):
    ANSWERED = "answered"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),  # control characters, quotes, backslashes and non-ASCII all need escaping
    st.sampled_from([Level.LOW, State.ANSWERED]),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=6),
    ),
    max_leaves=40,
)


@given(json_like)
def test_fast_writer_spells_every_json_value_as_json_dumps(value: Any) -> None:
    """Strings, numbers (NaN and infinities too), bools, nulls, enums, lists, tuples and dicts at any
    depth: the same text as json.dumps with indent=2 and sorted keys."""
    assert dumps_indent2_sorted(value) == reference(value)


@given(st.dictionaries(st.one_of(st.integers(), st.booleans(), st.none()), st.integers(), min_size=1))
def test_non_string_keys_fall_back_to_json_dumps(value: dict[Any, int]) -> None:
    """Keys json converts itself (ints, bools, null) give json's own text, or its own error."""
    try:
        expected = reference(value)
    except TypeError:
        with pytest.raises(TypeError):
            dumps_indent2_sorted(value)
        return
    assert dumps_indent2_sorted(value) == expected


def test_values_json_cannot_encode_raise_as_json_does() -> None:
    """A Decimal or a cycle is not ours to spell: json.dumps's TypeError / ValueError comes out."""
    with pytest.raises(TypeError, match="Decimal"):
        dumps_indent2_sorted({"amount": Decimal("1.50")})
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular"):
        dumps_indent2_sorted({"a": cycle})


def test_shared_non_circular_values_are_written_twice() -> None:
    """The same list under two keys is not a cycle (json accepts it; so does the fast writer)."""
    shared = [1, math.pi, "x"]
    assert dumps_indent2_sorted({"a": shared, "b": shared}) == reference({"a": shared, "b": shared})


@pytest.mark.parametrize("path", RESPONSE_FILES, ids=lambda p: p.name[:60])
def test_every_golden_record_renders_as_before(path: Path) -> None:
    """Every golden mapping (the records result files carry), inside a result document, gives the
    bytes json.dumps gave."""
    golden = json.loads(expected_path(path).read_text())
    for record in golden["eligibility"] + golden["authorizations"]:
        doc = {"tracking_number": "GW-1", "state": "answered", "eligibility": record, "reason": None}
        assert render_result(doc) == reference(doc).encode()
