"""Builders: every built interchange reads back to the same model, for random models and delimiters."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import delimiters, inquiries, review_requests
from transactions.build270 import read_270
from transactions.build278 import read_278_request
from transactions.envelope_reader import read_interchanges
from transactions.envelope_writer import InterchangeHeader
from transactions.models import EligibilityInquiry, ServiceReviewRequest
from transactions.outbound import build_request_interchange
from transactions.segment import Delimiters

WHEN = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)


def _build(reqs: list[EligibilityInquiry] | list[ServiceReviewRequest], d: Delimiters, newline: str) -> bytes:
    header = InterchangeHeader("ZZ", "GATEWAY", "ZZ", "CLEARING", 17, WHEN)
    return build_request_interchange(
        reqs,
        header,
        application_sender="GATEWAY",
        application_receiver="CLEARING",
        group_controls=[5],
        set_controls=list(range(1, len(reqs) + 1)),
        delimiters=d,
        newline=newline,
    ).data


@given(st.lists(inquiries(), min_size=1, max_size=3), delimiters(), st.sampled_from(["", "\n", "\r\n"]))
def test_270_round_trip(reqs: list[EligibilityInquiry], d: Delimiters, newline: str) -> None:
    """A 270 interchange reads back to the inquiries it was built from, with any delimiters."""
    if set(newline) & d.all():
        newline = ""
    data = _build(reqs, d, newline)
    ic = read_interchanges(data, strict=True)[0]
    assert ic.delimiters == d
    sets = list(ic.transaction_sets())
    assert [read_270(t.body) for t in sets] == reqs
    assert all(t.se is not None and t.se.get(1) == str(len(t.segments)) for t in sets)


@given(st.lists(review_requests(), min_size=1, max_size=3), delimiters())
def test_278_round_trip(reqs: list[ServiceReviewRequest], d: Delimiters) -> None:
    """A 278 request interchange reads back to the requests it was built from, with any delimiters."""
    data = _build(reqs, d, "")
    ic = read_interchanges(data, strict=True)[0]
    assert [read_278_request(t.body) for t in ic.transaction_sets()] == reqs
