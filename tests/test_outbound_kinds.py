"""What the core decides about a request batch's envelopes (GS01, GS08, ST01, ST02, ST03) is what
the bytes say, so the gateway can record envelopes from the batch without deriving them again."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import inquiries, review_requests
from transactions.envelope_writer import InterchangeHeader
from transactions.models import EligibilityInquiry, ServiceReviewRequest
from transactions.outbound import REQUEST_KINDS, build_request_interchange, request_kind
from transactions.validation import validate

WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def test_request_kinds_name_the_guides_envelope_values() -> None:
    """A 270 goes as ST01 270 in an HS group of 005010X279A1; a 278 as 278 in HI of 005010X217."""
    table = {k: (v.set_id, v.functional_id, v.version) for k, v in REQUEST_KINDS.items()}
    assert table == {"270": ("270", "HS", "005010X279A1"), "278": ("278", "HI", "005010X217")}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(inquiries(), review_requests()), min_size=1, max_size=5),
    st.integers(1, 9_999),
)
def test_a_built_batch_says_what_its_envelopes_hold(
    reqs: list[EligibilityInquiry | ServiceReviewRequest], first_set: int
) -> None:
    """Groups (GS01, GS08, GS06) and sets (ST01, ST02 as written, their group) of a mixed batch equal
    what reading the interchange back finds, in order; each request's kind matches its set."""
    header = InterchangeHeader("ZZ", "SENDER", "ZZ", "RECEIVER", 42, WHEN)
    kinds = {request_kind(r).functional_id for r in reqs}
    batch = build_request_interchange(
        reqs,
        header,
        application_sender="SENDER",
        application_receiver="RECEIVER",
        group_controls=list(range(7, 7 + len(kinds))),
        set_controls=list(range(first_set, first_set + len(reqs))),
    )
    (ic,) = validate(batch.data).interchanges
    read_groups = [(g.functional_id, g.version, int(g.control_number)) for g in ic.groups]
    assert [(g.functional_id, g.version, g.control_number) for g in batch.groups] == read_groups
    read_sets = {(s.set_id, s.control_number, g.functional_id) for g in ic.groups for s in g.sets}
    assert {(s.set_id, s.control_number, s.functional_id) for s in batch.sets} == read_sets
    assert [s.trace_number for s in batch.sets] == [r.trace_number for r in reqs]
    for i, (req, written) in enumerate(zip(reqs, batch.sets, strict=True)):
        assert (written.set_id, written.functional_id) == (
            request_kind(req).set_id,
            request_kind(req).functional_id,
        )
        assert written.control_number == f"{first_set + i:04d}"
