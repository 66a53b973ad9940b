"""JSON -> dataclass conversion: exact error paths, pass-through of plain values, one plan per class."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from tests.strategies import inquiries, review_requests
from transactions.errors import RequestError
from transactions.jsonform import _BUILDERS, _plan, from_dict, to_dict
from transactions.models import (
    Address,
    DateRange,
    EligibilityInquiry,
    Payer,
    Person,
    Procedure,
    Provider,
    ServiceReviewRequest,
)
from transactions.requests_json import parse_request_document, request_to_obj

SAMPLES = Path(__file__).resolve().parent.parent / "sample_edi" / "responses"
INQUIRY: dict[str, Any] = {
    "trace_number": "T-1",
    "payer": {"name": "ACME", "id": "ACME01"},
    "provider": {"name": "CLINIC", "npi": "1234567893"},
    "subscriber": {"last_name": "DOE", "first_name": "JO", "member_id": "M1", "birth_date": "1970-01-01"},
    "service_types": ["30", "1"],
}


def with_(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(INQUIRY))
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "field", "reason"),
    [
        (("subscriber", "birth_date"), "1970-13-01", "subscriber.birth_date", "not an ISO date"),
        (("subscriber", "birth_date"), 19700101, "subscriber.birth_date", "expected an ISO date string"),
        (("service_types", 1), 30, "service_types[1]", "expected a string"),
        (("service_types",), "30", "service_types", "expected a list"),
        (("payer", "id_qualifier"), "ZZ", "payer.id_qualifier", "must be one of PI, XV"),
        (("payer", "name"), None, "payer.name", "expected a string"),
        (("provider", "npi"), "1234567890", "provider.npi", "not a valid NPI"),
        (("subscriber", "gender"), "F", "subscriber", ""),
        (("subscriber", "shoe_size"), 9, "subscriber", "unknown field(s) shoe_size"),
        (("provider",), [], "provider", "expected an object"),
        (("trace_number",), True, "trace_number", "expected a string"),
        (("payer", "id_qualifier"), ["PI"], "payer.id_qualifier", "must be one of PI, XV"),
        (("service_types",), ["30", None], "service_types[1]", "expected a string"),
    ],
)
def test_error_names_the_exact_field(
    path: tuple[str | int, ...], value: Any, field: str, reason: str
) -> None:
    """Each kind of bad value is refused with the dotted/indexed path of the field that is wrong."""
    doc = with_(path, value)
    if field == "subscriber" and not reason:
        doc["subscriber"].pop("birth_date")
        field, reason = "subscriber.gender", "gender needs birth_date"
    with pytest.raises(RequestError) as err:
        from_dict(EligibilityInquiry, doc)
    assert err.value.field == field
    assert err.value.reason.startswith(reason)


def test_missing_and_top_level_errors() -> None:
    """A missing required field is named; a non-object or unknown key at the top names the class."""
    doc = dict(INQUIRY)
    del doc["payer"]
    with pytest.raises(RequestError, match=r"^payer: required field is missing$"):
        from_dict(EligibilityInquiry, doc)
    with pytest.raises(RequestError, match=r"^EligibilityInquiry: expected an object$"):
        from_dict(EligibilityInquiry, [])
    with pytest.raises(RequestError, match=r"^EligibilityInquiry: unknown field"):
        from_dict(EligibilityInquiry, {**INQUIRY, "x": 1})
    [unknown] = parse_request_document(json.dumps({**INQUIRY, "type": "270", "x": 1}))
    assert str(unknown) == "EligibilityInquiry: unknown field(s) x"  # "type" is not an unknown field
    bad = {**INQUIRY, "subscriber": {"last_name": "A", "first_name": "B"}, "type": "270"}
    results = parse_request_document(json.dumps([{**INQUIRY, "type": "270"}, bad]))
    assert isinstance(results[1], RequestError)
    assert str(results[1]) == "requests[1].subscriber.member_id: required for the subscriber"


def test_values_come_back_typed() -> None:
    """Dates become dates, lists become tuples, absent optional fields take their defaults."""
    inquiry = from_dict(EligibilityInquiry, INQUIRY)
    assert inquiry.subscriber.birth_date == date(1970, 1, 1)
    assert inquiry.service_types == ("30", "1")
    assert inquiry.dependent is None
    assert inquiry.trace_assigner == "9999999999"


@given(inquiries())
def test_270_json_round_trip(inquiry: EligibilityInquiry) -> None:
    """Any valid inquiry survives to_dict -> JSON -> from_dict unchanged."""
    assert parse_request_document(json.dumps(request_to_obj(inquiry))) == [inquiry]


@given(review_requests())
def test_278_json_round_trip(request: ServiceReviewRequest) -> None:
    """Any valid service review request survives to_dict -> JSON -> from_dict unchanged."""
    assert from_dict(ServiceReviewRequest, to_dict(request)) == request


def test_type_hints_are_resolved_once_per_class() -> None:
    """Each class's compiled builder (its nested classes' with it) is made once and reused; a bad
    document's generic walk makes each
    class's plan once too, not on every call."""
    _BUILDERS.clear()
    _plan.cache_clear()
    from_dict(EligibilityInquiry, INQUIRY)
    made = dict(_BUILDERS)
    assert set(made) == {EligibilityInquiry, Payer, Provider, Person, Address, DateRange, Procedure}
    for _ in range(4):
        from_dict(EligibilityInquiry, INQUIRY)
    assert all(_BUILDERS[cls] is builder for cls, builder in made.items())
    assert len(_BUILDERS) == len(made)
    bad = with_(("payer", "name"), None)
    for _ in range(5):
        with pytest.raises(RequestError, match=r"^payer\.name: expected a string$"):
            from_dict(EligibilityInquiry, bad)
    info = _plan.cache_info()
    assert (info.misses, info.hits) == (2, 8)  # inquiry, payer: once each


def _to_dict_by_fields(obj: Any) -> Any:
    """The plain definition to_dict must agree with: dataclasses.fields on every object."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_dict_by_fields(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [_to_dict_by_fields(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_dict_by_fields(v) for k, v in obj.items()}
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return format(obj, "f")
    return obj


@given(review_requests())
def test_to_dict_with_field_names_per_class_matches_fields_per_object(request: ServiceReviewRequest) -> None:
    """Field names cached per class give exactly what reading dataclasses.fields per object gives
    (nested dataclasses, tuples, dates, Decimals, None), in the same key order."""
    got, want = to_dict(request), _to_dict_by_fields(request)
    assert got == want
    assert json.dumps(got) == json.dumps(want)


def test_to_dict_of_mapped_records_matches_fields_per_object() -> None:
    """Every record mapped from the sample 271/278 responses turns into the same JSON as before."""
    from mappings.mapper import default_rules, map_set  # noqa: PLC0415 - only this test maps
    from transactions.validation import Options, validate_detailed  # noqa: PLC0415

    records = []
    for path in sorted(SAMPLES.glob("*.x12")):
        report = validate_detailed([path.read_bytes()], Options(keep_placed=True))
        for placed in report.sets:
            records.extend(map_set(placed, "1", "1", default_rules()))
    assert len(records) > 10
    for record in records:
        assert json.dumps(to_dict(record)) == json.dumps(_to_dict_by_fields(record))
