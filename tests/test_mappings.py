"""Mapping rules as data: the engine, per-payer overrides, refusal of unsafe rule files, status rules
and correlation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cli.map_cmd import map_bytes
from mappings.authorization import overall_status
from mappings.codes import ELIGIBILITY, text
from mappings.convert import decimal
from mappings.correlate import ResponseKey, SentRequest, correlate
from mappings.eligibility import _benefit
from mappings.engine import MappingRuleError, load_overrides, load_rules
from mappings.mapper import default_rules, with_overrides
from mappings.records import AuthorizationRecord, BenefitEntity, EligibilityResult, ServiceDecision

ROOT = Path(__file__).resolve().parent.parent
RESPONSES = ROOT / "sample_edi" / "responses"
OVERRIDES = ROOT / "sample_edi" / "overrides" / "alternate-payers.xml"
PUBLIC = ROOT / "tests" / "public_x12"


def _auths(path: Path, with_sample_overrides: bool = False) -> list[AuthorizationRecord]:
    rules = default_rules()
    if with_sample_overrides:
        rules = with_overrides(rules, [(OVERRIDES.name, OVERRIDES.read_bytes())])
    report, records = map_bytes(path.read_bytes(), rules)
    assert report.all_accepted
    return [r for r in records if isinstance(r, AuthorizationRecord)]


def test_admission_response_maps_event_and_line_decisions() -> None:
    """The TR3 admission response: event A6 (modified) with AUTH0002, its line A1 with the same number."""
    (rec,) = _auths(PUBLIC / "278resp" / "kputnam-stupidedi__admission-response-to-request-for-review.edi")
    assert (rec.status, rec.action_code, rec.certification_number) == ("modified", "A6", "AUTH0002")
    assert rec.trace_number == "97021001"
    assert rec.days_approved == 5
    assert rec.admission_date == date(2005, 5, 16)
    (line,) = rec.services
    assert (line.procedure_code, line.status, line.certification_number) == ("33510", "approved", "AUTH0002")


def test_pended_response_lists_requested_documentation() -> None:
    """A pended (A4) response keeps the reason and the documentation the payer asks for."""
    (rec,) = _auths(
        PUBLIC / "278resp" / "kputnam-stupidedi__emergency-admission-response-to-request-for-review.edi"
    )
    assert (rec.status, rec.reason_code, rec.admin_reference) == ("pended", "0U", "P20030216001")
    assert [(d.report_type, d.transmission) for d in rec.documentation_requested] == [("AS", "VO")]


def test_payer_override_reads_authorization_number_from_ref() -> None:
    """ALTPAYER1 returns its number in REF*BB: only its override finds it, other payers are untouched."""
    path = RESPONSES / "278resp-ALTPAYER1-auth-in-REF-BB.x12"
    (plain,) = _auths(path)
    (overridden,) = _auths(path, with_sample_overrides=True)
    assert plain.certification_number is None
    assert overridden.certification_number == "ALTPAYER1AUTH77"
    assert {s.certification_number for s in overridden.services} == {"ALTPAYER1AUTH77"}
    other = RESPONSES / "278resp-A1-certified.x12"
    assert _auths(other, with_sample_overrides=True) == _auths(other)


def test_eligibility_result_from_public_271() -> None:
    """A TR3 271 maps to active coverage with the plan, the echoed trace and the PCP entity."""
    _, records = map_bytes(
        (PUBLIC / "271" / "LinuxForHealth-x12__subscriber-health-benefit-check.271").read_bytes(),
        default_rules(),
    )
    (res,) = [r for r in records if isinstance(r, EligibilityResult)]
    assert res.coverage == "active"
    assert res.trace_numbers == ("93175-012547",)
    copay = [b for b in res.benefits if b.code == "B"]
    assert copay
    assert copay[0].amount == Decimal("10.00")
    assert any(e.entity_code == "P3" for b in res.benefits for e in b.entities)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE overrides [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<overrides><payer id="X"><field record="authorization" name="certification_number" path="&xxe;"/>
</payer></overrides>"""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (XXE, "DTDs and entities"),
        (b"<overrides><payer id='X'>", "not well-formed"),
        (
            b"<overrides><payer id='X'><field record='nope' name='a' path='b'/></payer></overrides>",
            "unknown record",
        ),
        (
            b"<overrides><payer id='X'><field record='authorization' name='nope' path='b'/>"
            b"</payer></overrides>",
            "unknown field",
        ),
        (
            b"<overrides><payer id='X'><field record='authorization' name='status' path='(('/>"
            b"</payer></overrides>",
            "invalid XPath",
        ),
    ],
)
def test_unsafe_or_broken_override_files_are_refused(data: bytes, message: str) -> None:
    """Override files with an XXE payload, bad XML, unknown names or bad XPath are refused clearly."""
    with pytest.raises(MappingRuleError, match=message):
        load_overrides(data, default_rules().default)


def test_rules_file_with_entity_is_refused() -> None:
    """The rules loader refuses entity declarations too (no file or network is ever read)."""
    with pytest.raises(MappingRuleError):
        load_rules(b'<!DOCTYPE m [<!ENTITY a "b">]><mappings/>')


def _line(status: str, action: str | None) -> ServiceDecision:
    return ServiceDecision(
        None,
        "HC",
        "70553",
        (),
        None,
        None,
        None,
        None,
        status,
        action,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        (),
        (),
        (),
    )


@pytest.mark.parametrize(
    ("event", "lines", "rejected", "expected"),
    [
        ("A1", [("approved", "A1")], False, "approved"),
        ("A1", [("approved", "A1"), ("denied", "A3")], False, "partially_approved"),
        ("A2", [], False, "partially_approved"),
        ("A3", [], False, "denied"),
        ("A4", [], False, "pended"),
        ("A6", [("approved", "A1")], False, "modified"),
        ("C", [], False, "cancelled"),
        ("CT", [], False, "contact_payer"),
        ("NA", [], False, "no_action_required"),
        (None, [], True, "rejected"),
        (None, [("approved", "A1"), ("approved", "A1")], False, "approved"),
        (None, [("approved", "A1"), ("denied", "A3")], False, "partially_approved"),
        (None, [("denied", "A3"), ("pended", "A4")], False, "pended"),
        (None, [], False, "no_decision"),
    ],
)
def test_overall_status_rules(
    event: str | None, lines: list[tuple[str, str]], rejected: bool, expected: str
) -> None:
    """The request's status follows HCR01 at 2000E; approved means every line approved."""
    assert overall_status(event, tuple(_line(s, a) for s, a in lines), rejected) == expected


REQUESTS = [
    SentRequest("GW-1", "270", "TR-1", "TR-1"),
    SentRequest("GW-2", "278", "TR-2", "BHT-2"),
]


def test_correlation_by_trace_bht_and_kind() -> None:
    """Trace echo wins, BHT03 is the fallback, kinds must pair, and strangers stay unmatched."""
    responses = [
        ResponseKey("271", ("TR-1",), "other", "f1"),
        ResponseKey("278resp", (), "BHT-2", "f2"),
        ResponseKey("271", ("TR-2",), None, "f3"),  # a 271 cannot answer a 278
        ResponseKey("278resp", ("NOPE",), "NOPE", "f4"),
    ]
    result = correlate(REQUESTS, responses)
    assert result.matched == ((0, "GW-1", "trace"), (1, "GW-2", "bht03"))
    assert result.unmatched == (2, 3)
    assert result.duplicates == ()


def test_correlation_duplicates_and_later_updates() -> None:
    """The same response twice is a duplicate; a different later response (pended, then approved) is not."""
    pended = ResponseKey("278resp", ("TR-2",), "BHT-2", "pended")
    approved = ResponseKey("278resp", ("TR-2",), "BHT-2", "approved")
    result = correlate(REQUESTS, [pended, pended, approved], seen=[])
    assert [m[0] for m in result.matched] == [0, 2]
    assert result.duplicates == ((1, "GW-2"),)
    again = correlate(REQUESTS, [approved], seen=[("GW-2", "approved")])
    assert again.duplicates == ((0, "GW-2"),)


_FIELD = st.one_of(st.none(), st.sampled_from(["", "0", "12.50", "1E3", "abc", ".5", "-7", "1.0"]))


@settings(max_examples=300, deadline=None)
@given(_FIELD, _FIELD, _FIELD, st.sampled_from([None, "", "1", "6", "ZZ"]), st.integers(0, 2))
def test_benefit_skips_converters_only_where_they_give_none(
    amount: str | None, percent: str | None, quantity: str | None, code: str | None, entities: int
) -> None:
    """A benefit's amounts, description and entities are what the converters give, absent ones too."""
    entity = {"entity_code": "P3", "name": "N", "first_name": None, "id_qualifier": None, "id": None}
    fields: dict[str, Any] = {
        "code": code, "coverage_level": None, "service_types": ["30"], "insurance_type": None,
        "plan_description": None, "time_period": None, "amount": amount, "percent": percent,
        "quantity_qualifier": None, "quantity": quantity, "authorization_required": None,
        "in_network": None, "procedure_qualifier": None, "procedure_code": None, "messages": [],
        "entities": [entity] * entities,
    }  # fmt: skip
    b = _benefit(fields)
    assert (b.amount, b.percent, b.quantity) == (decimal(amount), decimal(percent), decimal(quantity))
    assert b.description == text(ELIGIBILITY, code)
    assert b.entities == tuple(BenefitEntity(**entity) for _ in range(entities))
