"""The compiled builders of ``from_dict`` against the generic walk: same objects, same errors.

Valid requests are turned into their JSON form and then damaged at random (a value replaced by any JSON
value, a key removed, an unknown or known key added), so both the well-formed case the builders take and
every way of falling back to the walk are compared.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import inquiries, review_requests
from transactions.jsonform import _BUILDERS, from_dict, from_dict_generic
from transactions.models import EligibilityInquiry
from transactions.requests_json import TYPES, request_to_obj

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 120),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.sampled_from(["30", "PI", "HC", "F", "UN", "AR", "I", "B", "ACME", "J45.909", "99213", "1234567893"]),
    st.sampled_from(["1970-01-01", "2026-02-30", "20261201", "1.50", "1E+2"]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["x", "code"]), inner),
    max_leaves=5,
)
KEYS = st.sampled_from(
    ["type", "x", "name", "npi", "code", "birth_date", "member_id", "end", "start", "quantity", "address"]
)


def _slots(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON tree, the root object's own keys included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _slots(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield node, i
            yield from _slots(value)


@st.composite
def damaged(draw: st.DrawFn, requests: st.SearchStrategy[Any]) -> dict[str, Any]:
    """A valid request's JSON form with up to three random edits (possibly none)."""
    doc: dict[str, Any] = copy.deepcopy(request_to_obj(draw(requests)))
    for _ in range(draw(st.integers(0, 3))):
        container, key = draw(st.sampled_from(list(_slots(doc))))
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            container[key] = draw(JSON_VALUES)
        elif action == "remove":
            del container[key]
        elif isinstance(container, dict):
            container[draw(KEYS)] = draw(JSON_VALUES)
        else:
            container.append(draw(JSON_VALUES))
    return doc


def outcome(build: Callable[..., Any], doc: dict[str, Any], kind: str) -> tuple[str, ...]:
    """What building ``doc`` gives: the object's repr (types and Decimal digits included) or the error."""
    try:
        return ("built", repr(build(TYPES[kind], doc, "requests[3]", ignore="type")))
    except Exception as exc:  # noqa: BLE001 - whatever either raises, the other must raise the same
        return ("raised", type(exc).__name__, str(exc))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(damaged(inquiries()))
def test_270_builder_agrees_with_the_generic_walk(doc: dict[str, Any]) -> None:
    """Any damaged 270 request builds the same inquiry, or fails with the same error, on both paths."""
    assert outcome(from_dict, doc, "270") == outcome(from_dict_generic, doc, "270")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(damaged(review_requests()))
def test_278_builder_agrees_with_the_generic_walk(doc: dict[str, Any]) -> None:
    """Any damaged 278 request builds the same review request, or fails with the same error, on both."""
    assert outcome(from_dict, doc, "278") == outcome(from_dict_generic, doc, "278")


@given(inquiries())
def test_valid_270_takes_the_builder(inquiry: EligibilityInquiry) -> None:
    """A well-formed request is built by the compiled builder itself, not left to the fallback walk."""
    doc = json.loads(json.dumps(request_to_obj(inquiry)))
    assert from_dict(EligibilityInquiry, doc, ignore="type") == inquiry  # made the builder if not yet
    assert _BUILDERS[EligibilityInquiry](doc, "type") == inquiry


def test_payers_and_providers_are_shared_but_patients_are_not() -> None:
    """Equal payers, providers and dates of service read from JSON are one instance (a batch repeats
    them); equal subscribers stay distinct objects, so no one's identity is kept in the shared tables."""
    doc = {**request_to_obj(_inquiry()), "type": "270"}
    first, second = (from_dict(EligibilityInquiry, json.loads(json.dumps(doc)), ignore="type") for _ in "ab")
    assert first == second
    assert first.payer is second.payer
    assert first.provider is second.provider
    assert first.subscriber is not second.subscriber
    assert first.service_date is second.service_date


def _inquiry() -> EligibilityInquiry:
    from bench.corpus import inquiry  # noqa: PLC0415 - one fixed, valid inquiry

    return inquiry(7)


@dataclass(frozen=True, slots=True, init=False)
class _Upper:
    """A model with a hand-written ``__init__`` (it changes the value it is given)."""

    code: str

    def __init__(self, code: str) -> None:
        object.__setattr__(self, "code", code.upper())


def test_a_hand_written_init_is_called() -> None:
    """A class whose __init__ is its own (not the dataclass one) is built through it, not slot by slot."""
    assert from_dict(_Upper, {"code": "ab"}).code == "AB"
