"""``transactions.jsoncheck``: every problem of a JSON request at once, by path, never a value."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import inquiries, review_requests
from tests.test_jsonform_fast import damaged
from transactions.jsoncheck import Problem, problems, problems_walked
from transactions.requests_json import parse_request_document

REQUESTS = Path(__file__).resolve().parent.parent / "sample_edi" / "requests"


@pytest.mark.parametrize("path", sorted(REQUESTS.glob("*.json")), ids=lambda p: p.stem)
def test_every_sample_request_has_no_problem(path: Path) -> None:
    """What the inbox accepts, the check accepts (the same converters and rules)."""
    doc = json.loads(path.read_text())
    assert not any(isinstance(r, Exception) for r in parse_request_document(path.read_bytes()))
    assert problems(doc) == []


def test_problems_in_several_parts_are_all_listed() -> None:
    """Unknown keys, missing fields, wrong shapes and a cross-field rule, in nested objects and list
    items, come back together; the values sent appear nowhere."""
    doc = json.loads((REQUESTS / "278-outpatient-mri.json").read_text())
    doc["requester"]["npi"] = "1234567890"
    doc["lines"][0]["quantity"] = "many"
    doc["lines"].append({"procedure": {"code": "72148", "modifiers": "SECRETVALUE"}})
    doc["subscriber"] = {**doc["subscriber"], "gender": "F", "birth_date": None, "nickname": "SECRETVALUE"}
    del doc["request_category"]
    found = problems(doc)
    fields = [f for f, _ in found]
    assert set(fields) >= {
        "request_category",
        "requester.npi",
        "lines[0].quantity",
        "lines[1].procedure.modifiers",
        "subscriber.nickname",
    }
    assert "SECRETVALUE" not in json.dumps(found)


def test_the_kind_an_endpoint_expects_is_enforced() -> None:
    """A 278 sent where a 270 is expected is one problem on ``type``; no type at all takes the kind."""
    doc = json.loads((REQUESTS / "270-subscriber.json").read_text())
    assert problems(doc, kind="278") == [("type", 'must be "278"')]
    del doc["type"]
    assert problems(doc, kind="270") == []
    assert problems(doc) == [("type", 'must be "270" or "278"')]
    assert problems([doc]) == [("request", "expected an object")]


REQUEST_DOCS = st.one_of(damaged(inquiries()), damaged(review_requests()))


def _outcome(check: Callable[..., list[Problem]], doc: Any, kind: str | None) -> tuple[Any, ...]:
    try:
        return ("found", check(doc, kind=kind))
    except Exception as exc:  # noqa: BLE001 - whatever either raises, the other must raise the same
        return ("raised", type(exc).__name__, str(exc))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(REQUEST_DOCS, st.sampled_from([None, "270", "278"]), st.sampled_from(["keep", "drop", "270", "278"]))
def test_the_builder_shortcut_lists_what_the_walk_lists(
    doc: dict[str, Any], kind: str | None, typ: str
) -> None:
    """Any damaged request, with any declared type and expected kind, gets the very problems (or
    error) the field-by-field walk gives: the builder's answer stands only where the walk finds none."""
    if typ == "drop":
        doc.pop("type", None)
    elif typ != "keep":
        doc["type"] = typ
    assert _outcome(problems, doc, kind) == _outcome(problems_walked, doc, kind)
