"""Property: a 278 response built from a random request's own values maps back to a record whose trace
number, codes and quantities equal the request's; a 271 built from a random inquiry echoes its trace."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings

from gateway.cli.map_cmd import map_bytes
from mappings.mapper import default_rules
from mappings.records import AuthorizationRecord, EligibilityResult
from payersim.build_responses import EligibilityResponse, ReviewResponse, build_response_interchange
from tests.strategies import inquiries, review_requests
from transactions.decisions import Benefit, EligibilityAnswer, ReviewDecision
from transactions.envelope_writer import InterchangeHeader
from transactions.models import EligibilityInquiry, ServiceReviewRequest

WHEN = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _interchange(response: EligibilityResponse | ReviewResponse) -> bytes:
    header = InterchangeHeader("ZZ", "PAYER", "ZZ", "X12GATEWAY", 7, WHEN)
    return build_response_interchange(
        [response],
        header,
        application_sender="PAYER",
        application_receiver="X12GATEWAY",
        group_controls=[7],
        set_controls=[1],
    ).data


@settings(max_examples=40)
@given(review_requests())
def test_278_response_maps_back_to_the_requests_values(req: ServiceReviewRequest) -> None:
    """Trace number, request category, certification type, procedure codes and quantities survive."""
    decision = ReviewDecision(action="A1", certification_number="CERT42")
    report, records = map_bytes(_interchange(ReviewResponse(req, decision)), default_rules())
    assert report.all_accepted
    (record,) = [r for r in records if isinstance(r, AuthorizationRecord)]
    assert record.trace_number == req.trace_number
    assert record.bht_reference == req.trace_number
    assert (record.request_category, record.certification_type, record.service_type) == (
        req.request_category,
        req.certification_type,
        req.service_type,
    )
    assert record.status == "approved"
    assert record.certification_number == "CERT42"
    assert [s.procedure_code for s in record.services] == [
        line.procedure.code if line.procedure else None for line in req.lines
    ]
    assert [s.quantity for s in record.services] == [line.quantity for line in req.lines]
    assert [s.trace_number for s in record.services] == [line.trace_number for line in req.lines]
    assert tuple(record.diagnoses) == tuple(d.code for d in req.diagnoses)


@settings(max_examples=40)
@given(inquiries())
def test_271_maps_back_to_the_inquiry_trace(inquiry: EligibilityInquiry) -> None:
    """A 271 answering a random inquiry maps to an active result that echoes its trace number."""
    answer = EligibilityAnswer(benefits=(Benefit.active(),))
    report, records = map_bytes(_interchange(EligibilityResponse(inquiry, answer)), default_rules())
    assert report.all_accepted
    (result,) = [r for r in records if isinstance(r, EligibilityResult)]
    assert result.trace_numbers == (inquiry.trace_number,)
    assert result.coverage == "active"
    assert result.member_id == inquiry.subscriber.member_id
