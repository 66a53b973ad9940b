"""Assemble whole interchanges of requests: 270s in an HS group, 278s in an HI group.

What goes into the envelopes for a kind of request (GS01, GS08, ST01, ST03) is decided here, once
(:data:`REQUEST_KINDS`); a built :class:`OutboundBatch` says which group and ST02 each request got,
so the gateway records the envelopes from what was written instead of working it out again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from transactions.build270 import VERSION_270, build_270_body
from transactions.build278 import VERSION_278, build_278_body
from transactions.envelope_writer import (
    InterchangeHeader,
    TransactionBody,
    build_interchange,
    functional_groups,
    gs_segment,
    st_number,
    transaction_segments,
)
from transactions.models import EligibilityInquiry, ServiceReviewRequest
from transactions.reader import split_elements
from transactions.segment import Delimiters, Segment
from transactions.writer import format_segment

Request = EligibilityInquiry | ServiceReviewRequest


@dataclass(frozen=True, slots=True)
class RequestKind:
    """The envelope values of one kind of request: ST01, GS01 and the version in GS08 and ST03."""

    set_id: Literal["270", "278"]  # ST01
    functional_id: str  # GS01: HS or HI
    version: str  # GS08 = ST03: the implementation guide


REQUEST_KINDS: dict[str, RequestKind] = {
    "270": RequestKind("270", "HS", VERSION_270),
    "278": RequestKind("278", "HI", VERSION_278),
}


def request_kind(req: Request) -> RequestKind:
    """The envelope values for ``req`` (a 270 inquiry or a 278 request)."""
    return REQUEST_KINDS["270" if isinstance(req, EligibilityInquiry) else "278"]


@dataclass(frozen=True, slots=True)
class OutboundGroup:
    """One functional group as written: GS01, GS08 and GS06."""

    functional_id: str
    version: str
    control_number: int


@dataclass(frozen=True, slots=True)
class OutboundSet:
    """One transaction set as written: whose request it carries, ST01, ST02 (as text) and its group."""

    trace_number: str
    set_id: str
    control_number: str
    functional_id: str


@dataclass(frozen=True, slots=True)
class OutboundBatch:
    """The bytes of one interchange and which control numbers each request got."""

    data: bytes
    interchange_control: int
    group_controls: tuple[int, ...]
    set_controls: tuple[tuple[str, int], ...]  # (trace number, ST02) per request, in order
    groups: tuple[OutboundGroup, ...] = ()  # as written, in order (filled for request batches)
    sets: tuple[OutboundSet, ...] = ()  # one per request, in request order (filled for request batches)
    # each group's GS and its sets (ST..SE) as a reader reads them back from ``data`` (``as_read``),
    # in order: filled when asked (``keep_segments``), for validating them without reading ``data``
    written: tuple[tuple[Segment, tuple[tuple[Segment, ...], ...]], ...] = ()


def request_body(req: Request, timestamp: datetime) -> tuple[Segment, ...]:
    """The segments of ``req``'s transaction set between ST and SE (a 270's or a 278's)."""
    if isinstance(req, EligibilityInquiry):
        return build_270_body(req, timestamp)
    return build_278_body(req, timestamp)


def build_request_interchange(
    requests: Sequence[Request],
    header: InterchangeHeader,
    *,
    application_sender: str,
    application_receiver: str,
    group_controls: Sequence[int],
    set_controls: Sequence[int],
    delimiters: Delimiters | None = None,
    newline: str = "",
    keep_segments: bool = False,
) -> OutboundBatch:
    """One interchange with a group per request type; ``group_controls`` gives one number per type
    present (270 group first), ``set_controls`` one ST02 per request in order. ``keep_segments``:
    the batch's ``written`` holds the groups and sets as read back from its bytes."""
    if len(set_controls) != len(requests):
        raise ValueError("one ST control number per request")
    d = delimiters or Delimiters()
    bodies: dict[str, list[TransactionBody]] = {k.functional_id: [] for k in REQUEST_KINDS.values()}
    assigned: list[tuple[str, int]] = []
    written_sets: list[OutboundSet] = []
    for req, number in zip(requests, set_controls, strict=True):
        kind = request_kind(req)
        body = request_body(req, header.timestamp)
        bodies[kind.functional_id].append(TransactionBody(kind.set_id, number, kind.version, body))
        assigned.append((req.trace_number, number))
        written_sets.append(OutboundSet(req.trace_number, kind.set_id, st_number(number), kind.functional_id))
    groups = functional_groups(
        bodies,
        {k.functional_id: k.version for k in REQUEST_KINDS.values()},
        group_controls,
        application_sender=application_sender,
        application_receiver=application_receiver,
        timestamp=header.timestamp,
    )
    data = build_interchange(header, groups, d, newline=newline)
    written = (
        tuple(
            (
                as_read(gs_segment(g), d),
                tuple(tuple(as_read(x, d) for x in transaction_segments(t)) for t in sets),
            )
            for g, sets in groups
        )
        if keep_segments
        else ()
    )
    return OutboundBatch(
        data,
        header.control_number,
        tuple(g.control_number for g, _ in groups),
        tuple(assigned),
        groups=tuple(OutboundGroup(g.functional_id, g.version, g.control_number) for g, _ in groups),
        sets=tuple(written_sets),
        written=written,
    )


def as_read(segment: Segment, d: Delimiters) -> Segment:
    """``segment`` as a reader reads it back once written with ``d``: for a segment that was written
    (no value holds a delimiter). Trailing empty elements are trimmed; a segment with a composite or
    a repetition is written and split again by the writer's and the reader's own functions (a
    composite's trailing empty components trimmed, one component or occurrence read as a plain value)."""
    elements = segment.elements
    for value in elements:
        if value.__class__ is not str:
            tag, values = split_elements(format_segment(segment, d), d)
            return Segment(tag, values)
    end = len(elements)
    while end and elements[end - 1] == "":
        end -= 1
    return segment if end == len(elements) else Segment(segment.tag, elements[:end])
