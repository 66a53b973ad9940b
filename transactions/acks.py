"""Acknowledgments both ways: build 999 (005010X231A1) and TA1 from validation reports, and parse
inbound 999/TA1 into structured verdicts about what we sent.

Control numbers and the timestamp are inputs (the gateway allocates them persistently); the 999 is
addressed back to the sender of the acknowledged interchange. IK404 (a copy of the bad data) is never
written: it would copy PHI into the acknowledgment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from transactions.envelope_reader import Interchange, read_interchanges
from transactions.envelope_writer import GroupHeader, InterchangeHeader, TransactionBody, build_interchange
from transactions.findings import Finding, GroupReport, InterchangeReport, SetReport
from transactions.segment import Delimiters, Segment, seg

VERSION_999 = "005010X231A1"


def _ik4_position(f: Finding) -> tuple[str, ...] | str:
    element, component, repetition = f.element_position or (1, None, None)
    parts = [str(element), str(component) if component else "", str(repetition) if repetition else ""]
    while parts and parts[-1] == "":
        parts.pop()
    return tuple(parts) if len(parts) > 1 else parts[0]


def _loop_code(loop: str | None) -> str | None:
    """IK303 is element 447 (AN 1-4): TR3 loop ids such as 2000F or 2010EA keep their first four
    characters, the numeric loop family, which is what fits."""
    return loop[:4] if loop else None


def _set_segments(s: SetReport) -> Iterator[Segment]:
    yield seg("AK2", s.set_id, s.control_number, s.version or None)
    errors = [f for f in s.findings if f.severity == "error"]
    by_segment: dict[tuple[int, str], list[Finding]] = {}
    for f in errors:
        by_segment.setdefault((f.position, f.segment), []).append(f)
    for (position, segment_id), items in sorted(by_segment.items()):
        element_items = [f for f in items if f.is_element]
        for f in (f for f in items if not f.is_element):
            yield seg("IK3", segment_id, str(position), _loop_code(f.loop), f.code)
        if element_items:
            yield seg("IK3", segment_id, str(position), _loop_code(element_items[0].loop), "8")
            for f in element_items:
                ref = (
                    f.element_ref if f.element_ref and f.element_ref.isdigit() else None
                )  # composites (C003) have none
                yield seg("IK4", _ik4_position(f), ref, f.code)
    yield seg("IK5", s.ack_code, *s.set_codes)


def ack_999_body(group: GroupReport) -> tuple[Segment, ...]:
    """The 999 body (between ST and SE) for one received functional group."""
    out: list[Segment] = [seg("AK1", group.functional_id, group.control_number, group.version)]
    for s in group.sets:
        out += _set_segments(s)
    received = str(group.declared_count if group.declared_count is not None else len(group.sets))
    out.append(
        seg(
            "AK9",
            group.ack_code,
            received,
            str(len(group.sets)),
            str(group.accepted_count),
            *group.group_codes,
        )
    )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AckEnvelope:
    """Our identity and the control numbers the gateway allocated for an outgoing acknowledgment."""

    our_qualifier: str
    our_id: str
    interchange_control: int
    group_control: int
    timestamp: datetime
    usage: str = "P"


def _reply_header(report: InterchangeReport, env: AckEnvelope) -> InterchangeHeader:
    """The ISA of an acknowledgment: from us, back to the sender of the acknowledged interchange."""
    return InterchangeHeader(
        env.our_qualifier,
        env.our_id,
        report.sender_qualifier,
        report.sender,
        env.interchange_control,
        env.timestamp,
        env.usage,
    )


def build_999(
    report: InterchangeReport, env: AckEnvelope, first_set_control: int, delimiters: Delimiters | None = None
) -> bytes | None:
    """One interchange holding a 999 per received group (None when there is no group to acknowledge:
    groups of acknowledgments, GS01 FA, are never acknowledged)."""
    groups = [g for g in report.groups if g.functional_id != "FA"]
    if not groups:
        return None
    sets = [
        TransactionBody("999", first_set_control + i, VERSION_999, ack_999_body(g))
        for i, g in enumerate(groups)
    ]
    header = _reply_header(report, env)
    group = GroupHeader("FA", env.our_id, report.sender, env.group_control, VERSION_999, env.timestamp)
    return build_interchange(header, [(group, sets)], delimiters or Delimiters())


def ta1_segment(report: InterchangeReport) -> Segment | None:
    """The TA1 for an interchange, or None when none is due."""
    if report.ta1 is None:
        return None
    return seg(
        "TA1", report.control_number, report.date, report.time, report.ta1.ack_code, report.ta1.note_code
    )


def build_ta1(
    report: InterchangeReport, env: AckEnvelope, delimiters: Delimiters | None = None
) -> bytes | None:
    """A TA1-only interchange (no functional group, IEA01 = 0) answering ``report``."""
    ta1 = ta1_segment(report)
    if ta1 is None:
        return None
    header = _reply_header(report, env)
    return build_interchange(header, [], delimiters or Delimiters(), extra=[ta1])


# ---------------------------------------------------------------- inbound acknowledgments


@dataclass(frozen=True, slots=True)
class AckError:
    segment: str
    position: int
    loop: str | None
    code: str
    element: str | None = None
    element_ref: str | None = None


@dataclass(frozen=True, slots=True)
class SetAck:
    set_id: str
    control_number: str
    ack_code: str
    codes: tuple[str, ...]
    errors: tuple[AckError, ...]


@dataclass(frozen=True, slots=True)
class GroupAck:
    """A 999's verdict on one of our functional groups."""

    functional_id: str
    group_control: str
    version: str
    ack_code: str
    received: int
    accepted: int
    codes: tuple[str, ...]
    sets: tuple[SetAck, ...]
    ack_interchange: str  # ISA13 of the interchange that carried this 999
    ack_set_control: str


@dataclass(frozen=True, slots=True)
class InterchangeAck:
    """A TA1's verdict on one of our interchanges."""

    interchange_control: str
    date: str
    time: str
    ack_code: str
    note_code: str
    ack_interchange: str


def _int(text: str) -> int:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else 0


def _parse_999(body: Iterable[Segment], ic: Interchange, st_control: str) -> Iterator[GroupAck]:
    ak1: Segment | None = None
    sets: list[SetAck] = []
    cur: Segment | None = None
    errors: list[AckError] = []
    last_ik3: Segment | None = None
    for s in body:
        if s.tag == "AK1":
            ak1, sets = s, []
        elif s.tag == "AK2":
            cur, errors, last_ik3 = s, [], None
        elif s.tag == "IK3":
            last_ik3 = s
            errors.append(AckError(s.get(1), _int(s.get(2)), s.get(3) or None, s.get(4)))
        elif s.tag == "IK4" and last_ik3 is not None:
            pos = s.get(1, 1)
            comp = s.get(1, 2)
            element = f"{last_ik3.get(1)}{_int(pos):02d}" + (f"-{_int(comp):02d}" if comp else "")
            errors.append(
                AckError(
                    last_ik3.get(1),
                    _int(last_ik3.get(2)),
                    last_ik3.get(3) or None,
                    s.get(3),
                    element,
                    s.get(2) or None,
                )
            )
        elif s.tag == "IK5" and cur is not None:
            codes = tuple(c for c in (s.get(i) for i in range(2, 7)) if c)
            sets.append(SetAck(cur.get(1), cur.get(2), s.get(1), codes, tuple(errors)))
            cur = None
        elif s.tag == "AK9" and ak1 is not None:
            codes = tuple(c for c in (s.get(i) for i in range(5, 10)) if c)
            yield GroupAck(
                ak1.get(1),
                ak1.get(2),
                ak1.get(3),
                s.get(1),
                _int(s.get(2)),
                _int(s.get(4)),
                codes,
                tuple(sets),
                ic.control_number,
                st_control,
            )


@dataclass(frozen=True, slots=True)
class ParsedAcks:
    groups: tuple[GroupAck, ...]
    interchanges: tuple[InterchangeAck, ...]


def parse_acks(data: bytes) -> ParsedAcks:
    """Every 999 group verdict and every TA1 in ``data``."""
    groups: list[GroupAck] = []
    ta1s: list[InterchangeAck] = []
    for ic in read_interchanges(data):
        for s in ic.extra:
            if s.tag == "TA1":
                ta1s.append(
                    InterchangeAck(s.get(1), s.get(2), s.get(3), s.get(4), s.get(5), ic.control_number)
                )
        for t in ic.transaction_sets():
            if t.set_id == "999":
                groups.extend(_parse_999(t.body, ic, t.control_number))
    return ParsedAcks(tuple(groups), tuple(ta1s))
