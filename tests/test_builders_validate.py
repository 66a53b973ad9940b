"""Every builder output validates against the implementation-guide maps with zero findings."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import delimiters, inquiries, review_requests
from transactions.envelope_writer import InterchangeHeader
from transactions.findings import ValidationReport
from transactions.models import EligibilityInquiry, ServiceReviewRequest
from transactions.outbound import build_request_interchange
from transactions.segment import Delimiters
from transactions.validation import validate

WHEN = datetime(2026, 11, 26, 8, 15, tzinfo=UTC)


def _build(reqs: list[EligibilityInquiry] | list[ServiceReviewRequest], d: Delimiters) -> bytes:
    header = InterchangeHeader("ZZ", "GATEWAY", "ZZ", "CLEARING", 3, WHEN)
    return build_request_interchange(
        reqs,
        header,
        application_sender="GATEWAY",
        application_receiver="CLEARING",
        group_controls=[3],
        set_controls=list(range(1, len(reqs) + 1)),
        delimiters=d,
    ).data


def _all_findings(report: ValidationReport) -> list[str]:
    return [
        f"{s.control_number}:{f.segment}@{f.position}:{f.element}:{f.code}:{f.message}"
        for i in report.interchanges
        for g in i.groups
        for s in g.sets
        for f in s.findings
    ]


@settings(max_examples=40)
@given(st.lists(inquiries(), min_size=1, max_size=3), delimiters())
def test_built_270s_validate_clean(reqs: list[EligibilityInquiry], d: Delimiters) -> None:
    """Random valid inquiries build into 270s with no finding at all, with any delimiters."""
    report = validate(_build(reqs, d))
    assert _all_findings(report) == []
    assert report.all_accepted


@settings(max_examples=40)
@given(st.lists(review_requests(), min_size=1, max_size=2), delimiters())
def test_built_278s_validate_clean(reqs: list[ServiceReviewRequest], d: Delimiters) -> None:
    """Random valid review requests build into 278s with no finding at all, with any delimiters."""
    report = validate(_build(reqs, d))
    assert _all_findings(report) == []
    assert report.all_accepted
