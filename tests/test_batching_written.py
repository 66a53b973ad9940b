"""A real-time call's interchange is checked against the guide from the segments it was built from
(``batching._rejected_written``), not by reading its bytes back: the verdicts must be the reference's
(``batching._rejected_sets`` over the bytes), set for set, for accepted and rejected requests alike."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from gateway.stages import batching
from transactions.envelope_writer import InterchangeHeader, isa_segment
from transactions.errors import RequestError, X12WriteError
from transactions.models import Person
from transactions.outbound import OutboundBatch, Request, as_read, build_request_interchange
from transactions.reader import iter_segments
from transactions.requests_json import request_from_obj
from transactions.segment import Delimiters, Repetition, Segment
from transactions.validation import validate, validate_written
from transactions.writer import serialize

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "sample_edi" / "requests").glob("*.json"))
HEADER = InterchangeHeader("ZZ", "X12GATEWAY", "ZZ", "SIMPAYER", 12, datetime(2026, 1, 2, 3, 4, tzinfo=UTC))


def _sample(path: Path) -> Request:
    return request_from_obj(json.loads(path.read_text()))


def _built(requests: list[Request]) -> OutboundBatch:
    kinds = len({type(r) for r in requests})
    return build_request_interchange(
        requests,
        HEADER,
        application_sender="X12GATEWAY",
        application_receiver="SIMPAYER",
        group_controls=list(range(3, 3 + kinds)),
        set_controls=list(range(7, 7 + len(requests))),
        keep_segments=True,
    )


def _verdicts_agree(requests: list[Request]) -> None:
    try:
        batch = _built(requests)
    except X12WriteError:
        return  # not written: neither check runs
    assert batching._rejected_written(batch) == batching._rejected_sets(batch.data)
    reference = [
        replace(s, offset=0) for ic in validate(batch.data).interchanges for g in ic.groups for s in g.sets
    ]
    assert validate_written(batch.written, Delimiters()) == reference


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_each_sample_request_gets_the_same_verdict_from_its_segments(path: Path) -> None:
    """Every sample request's set: the same reports (findings, codes, ack) from its kept segments as
    from reading its bytes."""
    _verdicts_agree([_sample(path)])


def test_a_batch_of_every_sample_gets_the_same_verdicts_from_its_segments() -> None:
    """Several sets in two groups (duplicate-control checks per group included): the same reports."""
    requests = [_sample(p) for p in SAMPLES]
    _verdicts_agree(requests)
    _verdicts_agree(requests[::-1])


def test_a_request_the_guide_rejects_is_rejected_from_its_segments_too() -> None:
    """A member id longer than the guide allows: rejected by both checks, with the same finding."""
    req = _sample(ROOT / "sample_edi" / "requests" / "270-subscriber.json")
    bad = replace(req, subscriber=replace(req.subscriber, member_id="M" * 120))
    batch = _built([bad])
    assert batching._rejected_sets(batch.data)  # the case is a rejection
    _verdicts_agree([bad])


def test_segments_are_kept_as_a_reader_reads_them_back() -> None:
    """``as_read``: trailing empty elements and components trimmed, a one-component composite and a
    one-occurrence repetition read as plain values, as the reader reads the written bytes."""
    d = Delimiters()
    cases = [
        Segment("NM1", ("03", "1", "X", "")),
        Segment("UM", ("HS", "3", "", ("22", "B"), "", "")),
        Segment("HI", (("ABK", "", ""), Repetition([("ABF", "X"), "Y"]), Repetition(["Z"]), ("",))),
        Segment("N3", ("", "")),
        Segment("REF", ("EJ", ("A", "", "B"))),
    ]
    for segment in cases:
        data = serialize([isa_segment(HEADER, d), segment, Segment("IEA", ("0", "000000012"))], d)
        read = list(iter_segments(data))[1]
        assert as_read(segment, d) == read
        assert [type(v) for v in as_read(segment, d).elements] == [type(v) for v in read.elements]


_TEXT = st.text(alphabet=st.sampled_from("AZaz09 .-&'/#,\u00e9"), max_size=90)


@st.composite
def _people(draw: Any, base: Person) -> Person:
    return replace(
        base,
        last_name=draw(_TEXT),
        first_name=draw(_TEXT),
        middle_name=draw(st.none() | _TEXT),
        member_id=draw(st.none() | _TEXT),
    )


@given(data=st.data(), which=st.sampled_from(SAMPLES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_names_and_ids_get_the_same_verdict_from_their_segments(data: Any, which: Path) -> None:
    """Names and member ids of any length and characters (empty, too long, lower case, accents):
    the same verdicts from the kept segments as from the bytes."""
    req = _sample(which)
    try:  # the models refuse some (a subscriber without member id): not a request
        subscriber = data.draw(_people(req.subscriber))
        payer = replace(req.payer, name=data.draw(_TEXT))
        changed = replace(req, subscriber=subscriber, payer=payer)
        if req.dependent is not None:
            changed = replace(changed, dependent=data.draw(_people(req.dependent)))
    except RequestError:
        reject()
    _verdicts_agree([changed])
