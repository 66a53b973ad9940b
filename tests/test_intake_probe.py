"""The inbox's writability probe: the same verdict as writing the request's whole interchange."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.stages.intake import _unwritable
from tests.strategies import inquiries, review_requests
from transactions.envelope_writer import InterchangeHeader
from transactions.errors import X12WriteError
from transactions.outbound import Request, build_request_interchange
from transactions.requests_json import request_from_obj
from transactions.segment import Delimiters

_HEADER = InterchangeHeader("ZZ", "PROBE", "ZZ", "PROBE", 1, datetime(2000, 1, 1, tzinfo=UTC))
_DELIMITERS = sorted(Delimiters().all())


def _whole_interchange_verdict(req: Request) -> str | None:
    """The reference: the request written in a whole interchange (envelopes and all), as a batch is."""
    probe = replace(req, trace_number="PROBE00001", trace_assigner="9000000000")
    try:
        build_request_interchange(
            [probe],
            _HEADER,
            application_sender="PROBE",
            application_receiver="PROBE",
            group_controls=[1],
            set_controls=[1],
        )
    except X12WriteError as exc:
        return str(exc)
    return None


@st.composite
def maybe_spoiled(draw: st.DrawFn) -> Request:
    """A 270 or 278, sometimes with a delimiter put into the subscriber's last name or the payer's name."""
    req: Request = draw(st.one_of(inquiries(), review_requests()))
    where = draw(st.sampled_from(["none", "subscriber", "payer"]))
    if where == "none":
        return req
    bad = draw(st.sampled_from(_DELIMITERS))
    if where == "subscriber":
        sub = req.subscriber
        return replace(req, subscriber=replace(sub, last_name=sub.last_name + bad + "X"))
    return replace(req, payer=replace(req.payer, name=req.payer.name + bad + "X"))


@settings(max_examples=150, deadline=None)
@given(req=maybe_spoiled())
def test_probe_gives_the_whole_interchange_verdict(req: Request) -> None:
    """Writable or not, and the reason word for word: the probe of the set's segments alone agrees with
    writing the whole interchange."""
    assert _unwritable(req) == _whole_interchange_verdict(req)


def test_probe_names_the_element_holding_a_delimiter() -> None:
    """A last name holding the element separator is refused, naming the NM1 element, not the value."""
    doc = json.loads(
        (Path(__file__).parent.parent / "sample_edi" / "requests" / "270-subscriber.json").read_text()
    )
    req = request_from_obj(doc)
    spoiled = replace(req, subscriber=replace(req.subscriber, last_name="SMITH*JONES"))
    assert _unwritable(spoiled) == "NM103 contains a delimiter character"
    assert _unwritable(req) is None
