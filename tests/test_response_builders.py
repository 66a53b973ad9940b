"""271 and 278 response builders: trace echo, benefits, HCR decisions, AAA levels, and IG-clean output."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payersim.build271 import build_271_body
from payersim.build278resp import build_278_response_body
from payersim.build_responses import (
    EligibilityResponse,
    Response,
    ReviewResponse,
    build_response_interchange,
)
from tests.conftest import ROOT, SAMPLE_EDI
from tests.strategies import delimiters, inquiries, review_requests
from transactions.decisions import (
    AuthPlacement,
    Benefit,
    DecisionError,
    EligibilityAnswer,
    EventAction,
    LineAction,
    LineDecision,
    Rejection,
    RelatedEntity,
    ReviewDecision,
)
from transactions.envelope_reader import read_interchanges
from transactions.envelope_writer import InterchangeHeader
from transactions.findings import ValidationReport
from transactions.models import (
    DateRange,
    EligibilityInquiry,
    Procedure,
    ServiceReviewRequest,
)
from transactions.placed import Placed
from transactions.requests_json import parse_request_document
from transactions.segment import Delimiters, Segment
from transactions.validation import Options, validate, validate_detailed

WHEN = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
HCR_CODES: tuple[EventAction, ...] = ("A1", "A2", "A3", "A4", "A6", "C", "CT", "NA")


def _request(stem: str) -> EligibilityInquiry | ServiceReviewRequest:
    parsed = parse_request_document((SAMPLE_EDI / "requests" / f"{stem}.json").read_text())[0]
    assert not isinstance(parsed, Exception)
    return parsed


def _inquiry(stem: str) -> EligibilityInquiry:
    req = _request(stem)
    assert isinstance(req, EligibilityInquiry)
    return req


def _review(stem: str) -> ServiceReviewRequest:
    req = _request(stem)
    assert isinstance(req, ServiceReviewRequest)
    return req


def _interchange(responses: Sequence[Response], d: Delimiters | None = None) -> bytes:
    header = InterchangeHeader("ZZ", "CLEARING", "ZZ", "GATEWAY", 42, WHEN)
    return build_response_interchange(
        responses,
        header,
        application_sender="CLEARING",
        application_receiver="GATEWAY",
        group_controls=[7, 8],
        set_controls=list(range(1, len(responses) + 1)),
        delimiters=d,
    ).data


def _findings(report: ValidationReport) -> list[str]:
    return [
        f"{s.set_id}:{f.segment}@{f.position}:{f.loop}:{f.element}:{f.code}:{f.message}"
        for i in report.interchanges
        for g in i.groups
        for s in g.sets
        for f in s.findings
    ]


def _placed(data: bytes) -> list[Placed]:
    """Validate with zero findings and return every segment placed in its loops."""
    result = validate_detailed(data, Options(keep_placed=True))
    assert _findings(result.report) == []
    assert result.report.all_accepted
    return [p for s in result.sets for p in s.placed]


def _loop_of(placed: list[Placed], tag: str, qualifier: str | None = None) -> list[str | None]:
    return [
        p.loops[-1] if p.loops else None
        for p in placed
        if p.segment.tag == tag and (qualifier is None or p.segment.get(1) == qualifier)
    ]


def _tags(body: tuple[Segment, ...], tag: str) -> list[Segment]:
    return [s for s in body if s.tag == tag]


def _el(segment: Segment) -> tuple[object, ...]:
    """The elements without the trailing empty ones (which the writer drops anyway)."""
    values = list(segment.elements)
    while values and values[-1] in ("", ()):
        values.pop()
    return tuple(values)


# ---------------------------------------------------------------- 271


@pytest.mark.parametrize("stem", ["270-subscriber", "270-dependent", "270-several-service-types"])
def test_271_echoes_bht03_and_trn_at_the_patient_level(stem: str) -> None:
    """BHT03 is the 270's; TRN*2 returns the 270 trace unchanged at 2000C/D, then the payer's TRN*1."""
    inquiry = _inquiry(stem)
    body = build_271_body(inquiry, EligibilityAnswer(benefits=(Benefit.active("PLAN"),)), WHEN, "PAYERTRC1")
    assert _el(body[0])[:3] == ("0022", "11", inquiry.trace_number)
    placed = _placed(_interchange([EligibilityResponse(inquiry, EligibilityAnswer(), "PAYERTRC1")]))
    trns = [(_el(p.segment), p.loops[-1]) for p in placed if p.segment.tag == "TRN"]
    level = "2000D" if inquiry.dependent else "2000C"
    assert trns == [
        (("2", inquiry.trace_number, inquiry.trace_assigner), level),
        (("1", "PAYERTRC1", "9SIMPAYER1"), level),
    ]


def test_271_benefits_are_written_as_the_guide_shows() -> None:
    """Each Benefit factory produces the EB the TR3 examples show, and the 271 validates."""
    pcp = RelatedEntity("P3", "CANARYTEST", "PCP", "XX", "1234567893")
    answer = EligibilityAnswer(
        benefits=(
            Benefit.active("GOLD PLAN", insurance_type="HM"),
            Benefit.copay(25, ("98",)),
            Benefit.coinsurance(Decimal(".2"), ("98",), in_network=False),
            Benefit.deductible(500),
            Benefit.deductible(125, remaining=True),
            Benefit.out_of_pocket(3000),
            Benefit.limitation(("PT",), 20),
            Benefit.non_covered(("AL",)),
            Benefit.authorization(Procedure("70553"), service_types=("62",)),
            Benefit(code="B", service_types=("1", "33", "35"), amount=Decimal(10), period="27"),
            Benefit.primary_care_provider(pcp),
        )
    )
    inquiry = _inquiry("270-subscriber")
    body = build_271_body(inquiry, answer, WHEN, None)
    written = [_el(s) for s in _tags(body, "EB")]
    assert written[:9] == [
        ("1", "IND", "30", "HM", "GOLD PLAN"),
        ("B", "IND", "98", "", "", "27", "25", "", "", "", "", "Y"),
        ("A", "IND", "98", "", "", "", "", ".2", "", "", "", "N"),
        ("C", "IND", "30", "", "", "23", "500", "", "", "", "", "Y"),
        ("C", "IND", "30", "", "", "29", "125", "", "", "", "", "Y"),
        ("G", "IND", "30", "", "", "23", "3000", "", "", "", "", "Y"),
        ("F", "IND", "PT", "", "", "23", "", "", "VS", "20"),
        ("I", "", "AL"),
        ("1", "", "62", "", "", "", "", "", "", "", "Y", "Y", ("HC", "70553")),
    ]
    assert _tags(body, "EB")[9].repeats(3) == ("1", "33", "35")
    assert [s.tag for s in body[-3:]] == ["LS", "NM1", "LE"]
    assert _el(_tags(body, "HSD")[0]) == ("VS", "20", "", "", "23")
    placed = _placed(_interchange([EligibilityResponse(inquiry, answer)]))
    assert set(_loop_of(placed, "EB")) == {"2110C"}
    assert _loop_of(placed, "NM1", "P3") == ["2120C"]


def test_271_plan_references_and_coverage_dates() -> None:
    """Plan/group go to REF*18/REF*6P with names in REF03; plan and eligibility dates to DTP*346/347/356."""
    from transactions.decisions import Reference  # noqa: PLC0415 - used by this test only

    answer = EligibilityAnswer(
        benefits=(Benefit.active(),),
        plan=Reference("18", "PLAN01", "GOLD PLAN"),
        group=Reference("6P", "GRP9", "CANARY GROUP"),
        plan_dates=DateRange(date(2026, 1, 1), date(2026, 12, 31)),
        eligibility_dates=DateRange(date(2020, 5, 1)),
    )
    inquiry = _inquiry("270-dependent")
    body = build_271_body(inquiry, answer, WHEN, None)
    assert [_el(s) for s in _tags(body, "REF")] == [
        ("18", "PLAN01", "GOLD PLAN"),
        ("6P", "GRP9", "CANARY GROUP"),
    ]
    assert [_el(s) for s in _tags(body, "DTP")] == [
        ("346", "D8", "20260101"),
        ("347", "D8", "20261231"),
        ("356", "D8", "20200501"),
    ]
    placed = _placed(_interchange([EligibilityResponse(inquiry, answer)]))
    assert set(_loop_of(placed, "REF") + _loop_of(placed, "DTP")) == {"2100D"}


@pytest.mark.parametrize(
    ("stem", "level", "reason", "last_hl"),
    [
        ("270-subscriber", "2000A", "42", "20"),
        ("270-subscriber", "2100A", "80", "20"),
        ("270-subscriber", "2100B", "51", "21"),
        ("270-subscriber", "2100C", "75", "22"),
        ("270-dependent", "2100C", "75", "22"),
        ("270-dependent", "2100D", "67", "23"),
    ],
)
def test_271_rejection_ends_the_response_at_its_loop(
    stem: str, level: str, reason: str, last_hl: str
) -> None:
    """AAA sits in the rejected loop, the last HL there has HL04 0, no benefit follows, and it validates."""
    inquiry = _inquiry(stem)
    answer = EligibilityAnswer.reject(level, reason)
    body = build_271_body(inquiry, answer, WHEN, None)
    hls = _tags(body, "HL")
    assert hls[-1].get(3) == last_hl
    assert hls[-1].get(4) == "0"
    assert not _tags(body, "EB")
    placed = _placed(_interchange([EligibilityResponse(inquiry, answer)]))
    assert _loop_of(placed, "AAA") == [level]
    aaa = next(p.segment for p in placed if p.segment.tag == "AAA")
    assert aaa.get(3) == reason


def test_271_subscriber_rejection_keeps_the_dependent_trace() -> None:
    """A dependent inquiry whose subscriber is not found drops 2000D and returns TRN*2 at 2000C."""
    inquiry = _inquiry("270-dependent")
    placed = _placed(_interchange([EligibilityResponse(inquiry, EligibilityAnswer.subscriber_not_found())]))
    assert [(p.segment.get(2), p.loops[-1]) for p in placed if p.segment.tag == "TRN"] == [
        (inquiry.trace_number, "2000C")
    ]
    aaa = next(p.segment for p in placed if p.segment.tag == "AAA")
    assert _el(aaa) == ("N", "", "75", "C")


def test_271_dependent_rejection_needs_a_dependent() -> None:
    """A 2100D rejection for a subscriber-only inquiry is refused rather than written in the wrong loop."""
    with pytest.raises(DecisionError):
        build_271_body(_inquiry("270-subscriber"), EligibilityAnswer.reject("2100D", "67"), WHEN, None)


@pytest.mark.parametrize(
    ("level", "reason", "follow_up"),
    [
        ("2000A", "42", "P"),
        ("2100C", "42", "R"),
        ("2010A", "80", "P"),
        ("2010A", "79", "N"),
        ("2100C", "75", "C"),
    ],
)
def test_rejection_follow_up_defaults(level: str, reason: str, follow_up: str) -> None:
    """AAA04 defaults: resubmit for 'try later' reasons, else correct-and-resubmit (N where C is barred)."""
    assert Rejection(level, reason).aaa04 == follow_up


def test_rejections_at_two_levels_are_refused() -> None:
    """Only the first rejected loop is sent, so a second, deeper rejection would be lost: refuse it."""
    with pytest.raises(DecisionError):
        EligibilityAnswer(rejections=(Rejection("2100B", "51"), Rejection("2100C", "75")))
    with pytest.raises(DecisionError):
        ReviewDecision(action=None, rejections=(Rejection("2010B", "51"), Rejection("2000E", "AA")))


# ---------------------------------------------------------------- 278


def _hcr_by_loop(placed: list[Placed]) -> list[tuple[str | None, tuple[str, ...]]]:
    return [(p.loops[-1], tuple(str(e) for e in _el(p.segment))) for p in placed if p.segment.tag == "HCR"]


def test_278_response_echoes_request_and_line_traces() -> None:
    """BHT03 and TRN*2 (2000E) echo the request trace; each line trace comes back as TRN*2 in its 2000F."""
    req = _review("278-outpatient-mri")
    body = build_278_response_body(req, ReviewDecision("A1", "CERT1"), WHEN, "UMO77")
    assert _el(body[0]) == ("0007", "11", req.trace_number, "20261126", "1430", "18")
    placed = _placed(_interchange([ReviewResponse(req, ReviewDecision("A1", "CERT1"), "UMO77")]))
    trns = [(_el(p.segment), p.loops[-1]) for p in placed if p.segment.tag == "TRN"]
    assert trns == [
        (("2", req.trace_number, req.trace_assigner), "2000E"),
        (("1", "UMO77", "9SIMPAYER1"), "2000E"),
        (("2", "AU-0001-1", req.trace_assigner), "2000F"),
    ]
    um = next(s for s in body if s.tag == "UM")
    assert um.elements[:4] == ("HS", "I", "73", ("22", "B"))


@pytest.mark.parametrize("code", HCR_CODES)
def test_each_hcr01_code_is_written_and_validates(code: EventAction) -> None:
    """Every HCR01 action validates at 2000E; certified actions carry the certification number in HCR02."""
    req = _review("278-inpatient-admission")
    lines = (LineDecision("A1"), LineDecision("A3")) if code == "A2" else ()
    certifying = code in ("A1", "A2", "A6")
    decision = ReviewDecision(code, "CERT9" if certifying else None, lines=lines)
    placed = _placed(_interchange([ReviewResponse(req, decision)]))
    hcrs = _hcr_by_loop(placed)
    assert hcrs[0][0] == "2000E"
    assert hcrs[0][1][0] == code
    assert (hcrs[0][1][1:2] == ("CERT9",)) is certifying
    assert [h[1][0] for h in hcrs[1:]] == (["A1", "A3"] if code == "A2" else [code, code])
    bht = next(p.segment for p in placed if p.segment.tag == "BHT")
    assert bht.get(6) == ("19" if code == "A4" else "18")


def test_line_decisions_may_differ_from_the_event() -> None:
    """Event A6 with line 1 A1 (approved quantity in HSD, event certification number) and line 2 A3."""
    req = _review("278-dme-rental")
    decision = ReviewDecision(
        "A6", "CERT6", lines=(LineDecision("A1", Decimal(2)), LineDecision("A3", reason="0F"))
    )
    body = build_278_response_body(req, decision, WHEN, None)
    assert [_el(s) for s in _tags(body, "HCR")] == [("A6", "CERT6"), ("A1", "CERT6"), ("A3", "", "0F")]
    assert [_el(s) for s in _tags(body, "HSD")] == [("FL", "2")]
    assert [s.get(1, 2) for s in _tags(body, "SV1")] == ["E0601", "A7030"]
    placed = _placed(_interchange([ReviewResponse(req, decision)]))
    assert [h[0] for h in _hcr_by_loop(placed)] == ["2000E", "2000F", "2000F"]


def test_admission_days_and_certification_dates() -> None:
    """Approved days go to 2000E HSD*DY; DTP*007 is RD8 for a range, 036 and 102 are D8."""
    req = _review("278-inpatient-admission")
    decision = ReviewDecision(
        "A6",
        "CERT2",
        effective=DateRange(date(2026, 12, 2), date(2026, 12, 4)),
        expiration=date(2026, 12, 4),
        approved_days=2,
        lines=(LineDecision("A6", Decimal(2)), LineDecision("A1")),
    )
    body = build_278_response_body(req, decision, WHEN, None)
    dates = {s.get(1): _el(s) for s in _tags(body, "DTP")}
    assert dates["007"] == ("007", "RD8", "20261202-20261204")
    assert dates["036"] == ("036", "D8", "20261204")
    assert dates["102"] == ("102", "D8", "20261126")
    assert _el(_tags(body, "HSD")[0]) == ("DY", "2")
    assert _el(_tags(body, "HSD")[1]) == ("DY", "2")  # the room-and-board line: 2 of 4 days
    _placed(_interchange([ReviewResponse(req, decision)]))


def test_pended_review_asks_for_documentation() -> None:
    """A4 sets BHT06 19 and lists the wanted documentation in PWK; further_updates can override BHT06."""
    from transactions.models import Attachment  # noqa: PLC0415 - used by this test only

    req = _review("278-outpatient-mri")
    decision = ReviewDecision(
        "A4", reason="0U", admin_reference="P1", documentation=(Attachment("09", "FX"),)
    )
    body = build_278_response_body(req, decision, WHEN, None)
    assert body[0].get(6) == "19"
    assert [_el(s) for s in _tags(body, "PWK")] == [("09", "FX")]
    assert _el(_tags(body, "REF")[0]) == ("NT", "P1")
    _placed(_interchange([ReviewResponse(req, decision)]))
    final = dataclasses.replace(decision, further_updates=False)
    assert build_278_response_body(req, final, WHEN, None)[0].get(6) == "18"


@pytest.mark.parametrize(("placement", "ref"), [("HCR02", None), ("REF_BB", "BB"), ("REF_NT", "NT")])
def test_certification_number_placement(placement: AuthPlacement, ref: str | None) -> None:
    """Payers that send the authorization number in REF*BB or REF*NT instead of HCR02 can be simulated."""
    req = _review("278-outpatient-mri")
    decision = ReviewDecision("A1", "AUTH5", certification_in=placement)
    body = build_278_response_body(req, decision, WHEN, None)
    hcrs = [_el(s) for s in _tags(body, "HCR")]
    refs = [_el(s) for s in _tags(body, "REF")]
    if ref is None:
        assert hcrs == [("A1", "AUTH5"), ("A1", "AUTH5")]
        assert refs == []
    else:
        assert hcrs == [("A1",), ("A1",)]
        assert refs == [(ref, "AUTH5"), (ref, "AUTH5")]
    _placed(_interchange([ReviewResponse(req, decision)]))


@pytest.mark.parametrize(
    ("stem", "level", "reason", "last_hl"),
    [
        ("278-outpatient-mri", "2000A", "42", "20"),
        ("278-outpatient-mri", "2010A", "80", "20"),
        ("278-outpatient-mri", "2010B", "51", "21"),
        ("278-outpatient-mri", "2010C", "75", "22"),
        ("278-retroactive", "2010D", "77", "23"),
        ("278-cancel", "2000E", "AA", "EV"),
    ],
)
def test_278_rejection_replaces_hcr_at_its_loop(stem: str, level: str, reason: str, last_hl: str) -> None:
    """AAA sits in the rejected loop instead of HCR, lower loops are not sent, and the response validates."""
    req = _review(stem)
    decision = ReviewDecision.reject(level, reason)
    body = build_278_response_body(req, decision, WHEN, None)
    hls = _tags(body, "HL")
    assert (hls[-1].get(3), hls[-1].get(4)) == (last_hl, "0")
    assert not _tags(body, "HCR")
    placed = _placed(_interchange([ReviewResponse(req, decision)]))
    assert _loop_of(placed, "AAA") == [level]
    if level == "2000E":
        assert [p.segment.tag for p in placed if p.loops and p.loops[-1] == "2000E"] == [
            "HL",
            "TRN",
            "AAA",
            "UM",
        ]


def test_line_rejection_sends_aaa_at_2000f() -> None:
    """A line the UMO cannot review gets AAA (e.g. AG procedure code invalid) in its 2000F, the others HCR."""
    req = _review("278-dme-rental")
    decision = ReviewDecision(
        "A6", "CERT3", lines=(LineDecision("A1"), LineDecision(None, rejection=Rejection("2000F", "AG")))
    )
    placed = _placed(_interchange([ReviewResponse(req, decision)]))
    assert _loop_of(placed, "AAA") == ["2000F"]
    assert [h[0] for h in _hcr_by_loop(placed)] == ["2000E", "2000F"]


def test_decisions_that_cannot_be_written_are_refused() -> None:
    """Wrong line counts, A2 without line decisions, and 2010D without a dependent raise DecisionError."""
    admit = _review("278-inpatient-admission")
    with pytest.raises(DecisionError):
        build_278_response_body(admit, ReviewDecision("A1", lines=(LineDecision(),)), WHEN, None)
    with pytest.raises(DecisionError):
        build_278_response_body(admit, ReviewDecision("A2", "C1"), WHEN, None)
    with pytest.raises(DecisionError):
        build_278_response_body(admit, ReviewDecision.reject("2010D", "77"), WHEN, None)


def test_one_interchange_holds_271s_and_278s() -> None:
    """The facade puts 271s in an HB group and 278 responses in an HI group, and reports ST02 per trace."""
    inquiry, req = _inquiry("270-subscriber"), _review("278-cancel")
    responses: list[Response] = [
        ReviewResponse(req, ReviewDecision("C", "CERT123456")),
        EligibilityResponse(inquiry, EligibilityAnswer(benefits=(Benefit.active(),))),
    ]
    header = InterchangeHeader("ZZ", "CLEARING", "ZZ", "GATEWAY", 9, WHEN)
    batch = build_response_interchange(
        responses,
        header,
        application_sender="C",
        application_receiver="G",
        group_controls=[1, 2],
        set_controls=[5, 6],
    )
    assert batch.set_controls == ((req.trace_number, 5), (inquiry.trace_number, 6))
    (ic,) = read_interchanges(batch.data, strict=True)
    assert [(g.gs.get(1), g.gs.get(8)) for g in ic.groups] == [("HB", "005010X279A1"), ("HI", "005010X217")]
    assert _findings(validate(batch.data)) == []


# ---------------------------------------------------------------- property


@given(inquiries(), st.booleans(), delimiters())
def test_271_for_any_inquiry_validates_and_echoes(
    inquiry: EligibilityInquiry, found: bool, d: Delimiters
) -> None:
    """For random inquiries, a 271 answering exactly what was asked validates with no finding, echoes the
    trace at the patient level and returns the asked service types (EB03, repeated) or procedure (EB13)."""
    asked = Benefit.active(service_types=inquiry.service_types or ("30",))
    answer = EligibilityAnswer(benefits=(asked,)) if found else EligibilityAnswer.subscriber_not_found()
    if inquiry.procedure is not None and found:
        answer = EligibilityAnswer(benefits=(asked, Benefit.authorization(inquiry.procedure)))
    placed = _placed(_interchange([EligibilityResponse(inquiry, answer, "PT1")], d))
    trn = next(p for p in placed if p.segment.tag == "TRN")
    level = "2000D" if inquiry.dependent is not None and found else "2000C"
    assert (_el(trn.segment), trn.loops[-1]) == (("2", inquiry.trace_number, inquiry.trace_assigner), level)
    ebs = [p.segment for p in placed if p.segment.tag == "EB"]
    if not found:
        assert ebs == []
        return
    assert ebs[0].repeats(3) == (inquiry.service_types or ("30",))
    if inquiry.procedure is not None:
        assert ebs[1].composite(13)[:2] == (inquiry.procedure.qualifier, inquiry.procedure.code)


@given(review_requests(), st.sampled_from(HCR_CODES), st.booleans(), delimiters())
def test_response_to_any_valid_request_validates_and_echoes(
    req: ServiceReviewRequest, code: EventAction, payer_trace: bool, d: Delimiters
) -> None:
    """For random valid requests, a response built from the request's own values validates with no finding
    and echoes the trace, each line's procedure code and requested quantity, and the approved quantity."""
    line_action: LineAction = "A1" if code == "A2" else code
    lines = tuple(LineDecision(line_action, line.quantity) for line in req.lines)
    decision = ReviewDecision(code, f"CERT{len(req.lines)}", lines=lines)
    data = _interchange([ReviewResponse(req, decision, "UMO1" if payer_trace else None)], d)
    placed = _placed(data)
    assert next(p.segment for p in placed if p.segment.tag == "BHT").get(3) == req.trace_number
    trn = next(p for p in placed if p.segment.tag == "TRN")
    assert (_el(trn.segment), trn.loops[-1]) == (("2", req.trace_number, req.trace_assigner), "2000E")
    services = [p.segment for p in placed if p.segment.tag in ("SV1", "SV2")]
    echoed = [
        (s.get(1, 2) if s.tag == "SV1" else s.get(2, 2), s.get(4) if s.tag == "SV1" else s.get(5))
        for s in services
    ]
    assert echoed == [
        (line.procedure.code if line.procedure else "", format(line.quantity, "f")) for line in req.lines
    ]
    approved = [p.segment.get(2) for p in placed if p.segment.tag == "HSD" and p.loops[-1] == "2000F"]
    assert approved == [format(line.quantity, "f") for line in req.lines]


# ---------------------------------------------------------------- samples


def _sample_files(kind: str) -> list[Path]:
    return sorted((SAMPLE_EDI / kind).glob("*.x12"))


@pytest.mark.parametrize("path", _sample_files("requests") + _sample_files("responses"), ids=lambda p: p.name)
def test_sample_file_validates_with_zero_findings(path: Path) -> None:
    """Every synthetic request and response sample is accepted with no finding at all."""
    report = validate(path.read_bytes())
    assert _findings(report) == []
    assert report.all_accepted
    assert all(i.ta1 is None for i in report.interchanges)


def _first_segments(path: Path, tag: str) -> list[Segment]:
    return [
        s
        for ic in read_interchanges(path.read_bytes())
        for t in ic.transaction_sets()
        for s in t.body
        if s.tag == tag
    ]


def test_every_response_sample_answers_a_request_sample() -> None:
    """Each response's BHT03 and TRN*2 trace is the BHT03 of a request sample: files pair by trace number."""
    request_traces = {s.get(3) for p in _sample_files("requests") for s in _first_segments(p, "BHT")}
    for path in _sample_files("responses"):
        bhts = _first_segments(path, "BHT")
        assert bhts
        assert {b.get(3) for b in bhts} <= request_traces, path.name
        echoed = {s.get(2) for s in _first_segments(path, "TRN") if s.get(1) == "2"}
        assert echoed <= request_traces | {f"{t}-1" for t in request_traces}, path.name


def test_samples_cover_every_hcr01_code_and_the_pended_pair() -> None:
    """The 278 samples hold every event HCR01 code, and the pended/approved pair shares one trace."""
    codes = set()
    for path in _sample_files("responses"):
        if path.name.startswith("278resp"):
            hcrs = _first_segments(path, "HCR")
            if hcrs:
                codes.add(hcrs[0].get(1))
    assert codes == set(HCR_CODES)
    first = SAMPLE_EDI / "responses" / "278resp-A4-pended-documentation.x12"
    second = SAMPLE_EDI / "responses" / "278resp-A4-pended-then-A1-approved.x12"
    (b1,), (b2,) = _first_segments(first, "BHT"), _first_segments(second, "BHT")
    assert b1.get(3) == b2.get(3)
    assert (b1.get(6), b2.get(6)) == ("19", "18")
    assert _first_segments(first, "TRN")[0] == _first_segments(second, "TRN")[0]


def test_batch_samples_hold_100_sets() -> None:
    """The batch 270 and its 271 each hold 100 transaction sets, one patient per set, answering in order."""
    req_bhts = _first_segments(SAMPLE_EDI / "requests" / "270-batch-100.x12", "BHT")
    resp_bhts = _first_segments(SAMPLE_EDI / "responses" / "271-batch-100.x12", "BHT")
    assert len(req_bhts) == len(resp_bhts) == 100
    assert [b.get(3) for b in req_bhts] == [b.get(3) for b in resp_bhts]


def _make_samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "tools" / "make_samples.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_samples", module)  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_samples_are_up_to_date_and_deterministic() -> None:
    """tools/make_samples.py regenerates exactly the committed files (rerun it after editing a JSON)."""
    generated = _make_samples().generate()
    assert generated == _make_samples().generate()
    on_disk = {
        str(p.relative_to(SAMPLE_EDI)): p.read_bytes()
        for p in [
            *_sample_files("requests"),
            *_sample_files("responses"),
            SAMPLE_EDI / "responses" / "README.md",
        ]
    }
    assert sorted(generated) == sorted(on_disk)
    stale = [name for name, data in generated.items() if on_disk[name] != data]
    assert stale == []


def test_decisions_load_from_json() -> None:
    """Decisions are plain dataclasses: jsonform loads them (simulator configs) and round-trips them."""
    from transactions.jsonform import from_dict, to_dict  # noqa: PLC0415 - used by this test only

    data = {
        "action": "A6",
        "certification_number": "C1",
        "effective": {"start": "2026-12-01", "end": "2027-01-01"},
        "lines": [
            {"action": "A1", "quantity": 3},
            {"action": None, "rejection": {"level": "2000F", "reason": "AG"}},
        ],
        "documentation": [{"report_type": "09", "transmission": "FX"}],
    }
    decision = from_dict(ReviewDecision, data)
    assert decision.lines[0].quantity == Decimal(3)
    assert decision.lines[1].rejection == Rejection("2000F", "AG")
    answer = EligibilityAnswer(
        benefits=(Benefit.copay(25, ("98",)), Benefit.authorization(Procedure("70553")))
    )
    assert from_dict(EligibilityAnswer, to_dict(answer)) == answer
