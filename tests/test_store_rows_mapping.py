"""``rows.from_mapping`` (fields picked by remembered column positions) against the way it replaced,
kept here as the reference (a dict of the whole row per row): the same row objects for any column
order, extra columns, missing optional fields and repeated column names, for every row class."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Row
from sqlalchemy.engine.result import SimpleResultMetaData

from gateway.store import rows
from gateway.store.rows import from_mapping

ROW_CLASSES = [
    c
    for c in vars(rows).values()
    if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__name__.endswith("Row")
]


def reference(cls: type[Any], row: Row[Any], **extra: Any) -> Any:
    """The former ``from_mapping``: a plain dict of the row, then the fields it has."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    keys = row._fields
    mapping: Any = dict(zip(keys, row, strict=True)) if len(keys) == len(row) else row._mapping
    return cls(**{name: mapping[name] for name in names if name in mapping}, **extra)


def make_row(keys: list[str], values: list[Any]) -> Row[Any]:
    metadata = SimpleResultMetaData(tuple(keys))
    return Row(metadata, None, metadata._key_to_index, tuple(values))


@st.composite
def cases(draw: st.DrawFn) -> tuple[type[Any], list[str], list[Any], dict[str, Any]]:
    cls = draw(st.sampled_from(ROW_CLASSES))
    names = [f.name for f in dataclasses.fields(cls)]
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    extra = (
        {name: f"extra-{name}" for name in draw(st.sets(st.sampled_from(required))) if required}
        if required
        else {}
    )
    keys = [n for n in names if n not in extra]
    keys += draw(
        st.lists(st.sampled_from([*keys, "other", "unused_col"]), max_size=4)
    )  # extra and repeated columns
    keys = draw(st.permutations(keys))
    values = [f"{k}#{i}" for i, k in enumerate(keys)]
    return cls, keys, values, extra


@given(cases())
def test_from_mapping_builds_what_the_whole_row_dict_built(
    case: tuple[type[Any], list[str], list[Any], dict[str, Any]],
) -> None:
    """Twice (the second from the remembered positions), the same object as the reference."""
    cls, keys, values, extra = case
    row = make_row(keys, values)
    expected = reference(cls, row, **extra)
    assert from_mapping(cls, row, **extra) == expected
    assert from_mapping(cls, make_row(keys, values), **extra) == expected
