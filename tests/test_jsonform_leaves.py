"""``jsonform.to_dict`` keeps leaf values (texts, numbers, None) without a call per value: the same
JSON as the recursive form it replaced, for every record the samples map to and any nested value."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mappings.mapper import map_set
from transactions.jsonform import to_dict
from transactions.validation import Options, validate_detailed

ROOT = Path(__file__).resolve().parent.parent
RESPONSES = sorted((ROOT / "sample_edi" / "responses").glob("*.x12"))


def reference(obj: Any) -> Any:  # noqa: PLR0911 - one exit per kind of value
    """``to_dict`` as it was: every value through the recursive call."""
    if type(obj) in {str, int, bool, float, type(None)}:
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: reference(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [reference(v) for v in obj]
    if isinstance(obj, dict):
        return {k: reference(v) for k, v in obj.items()}
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return format(obj, "f")
    return obj


class _Text(str):
    """A str subclass: not a leaf by class, returned as it is by both."""

    __slots__ = ()


@dataclasses.dataclass(frozen=True)
class _Box:
    value: Any
    items: tuple[Any, ...] = ()


def test_every_sample_record_gives_the_reference_json() -> None:
    """Every record mapped from the response samples: the JSON of the recursive form, exactly."""
    count = 0
    for path in RESPONSES:
        for s in validate_detailed(path.read_bytes(), Options(keep_placed=True)).sets:
            for record in map_set(s, "1", "1"):
                made = to_dict(record)
                assert made == reference(record)
                assert repr(made) == repr(reference(record))  # same types too (1 == True, 1 == 1.0)
                count += 1
    assert count >= 20


_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.text(max_size=5).map(_Text),
    st.dates(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
)
_VALUES = st.recursive(
    _LEAF,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.lists(kids, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=3), kids, max_size=3),
        st.builds(_Box, kids, st.lists(kids, max_size=3).map(tuple)),
    ),
    max_leaves=12,
)


@given(_VALUES)
def test_any_nested_value_gives_the_reference_json(value: Any) -> None:
    """Any nesting of dataclasses, tuples, lists, dicts and leaves: the recursive form's JSON."""
    assert repr(to_dict(value)) == repr(reference(value))
    assert repr(to_dict(_Box(value, (value,)))) == repr(reference(_Box(value, (value,))))
