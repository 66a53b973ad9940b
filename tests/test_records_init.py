"""The records' descriptor-filling ``__init__`` (``mappings.records._slot_init``) behaves as the one
``dataclasses`` generates: same parameters and defaults, same field values, same errors."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings import records

CLASSES = [
    c
    for c in vars(records).values()
    if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == records.__name__
]


def _reference(cls: type) -> type:
    """The same fields in a frozen, slotted dataclass with the generated ``__init__``."""
    specs = [
        (f.name, f.type, dataclasses.field(default=f.default))
        if f.default is not dataclasses.MISSING
        else (f.name, f.type)
        for f in dataclasses.fields(cls)
    ]
    return dataclasses.make_dataclass(cls.__name__, specs, frozen=True, slots=True)


def test_every_record_class_is_covered() -> None:
    """The classes checked here are the records mapping builds (not an empty list)."""
    names = {c.__name__ for c in CLASSES}
    assert {"Benefit", "EligibilityResult", "AuthorizationRecord", "ServiceDecision"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_signature_is_the_dataclass_one(cls: type) -> None:
    """Parameter names, order, kinds and defaults are those of the generated ``__init__``."""
    ours = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    theirs = inspect.signature(_reference(cls).__init__).parameters  # type: ignore[misc]
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_fields_hold_what_was_given(cls: type, data: st.DataObject) -> None:
    """By keyword or by position, every field holds its argument, as with the generated ``__init__``;
    records stay frozen and compare as before."""
    names = [f.name for f in dataclasses.fields(cls)]
    values = data.draw(
        st.lists(
            st.one_of(st.none(), st.text(max_size=3), st.integers()), min_size=len(names), max_size=len(names)
        )
    )
    kwargs: dict[str, Any] = dict(zip(names, values, strict=True))
    ours, again, theirs = cls(**kwargs), cls(*values), _reference(cls)(**kwargs)
    assert dataclasses.astuple(ours) == dataclasses.astuple(theirs) == tuple(values)
    assert ours == again
    assert hash(ours) == hash(again)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(ours, names[0], "changed")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_missing_and_unknown_arguments_fail_alike(cls: type) -> None:
    """A missing or unknown argument is a TypeError with the same message."""
    reference = _reference(cls)
    for args, kwargs in (((), {}), ((), {"no_such_field": 1})):
        with pytest.raises(TypeError) as ours:
            cls(*args, **kwargs)
        with pytest.raises(TypeError) as theirs:
            reference(*args, **kwargs)
        assert str(ours.value) == str(theirs.value)
