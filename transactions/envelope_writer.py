"""Build ISA/GS/ST ... SE/GE/IEA around transaction bodies with correct counts.

Control numbers and timestamps are inputs: the gateway allocates control numbers persistently and
reads the clock; the core only formats them. Counts (SE01, GE01, IEA01) are always computed here,
never taken from the caller, so they cannot disagree with what is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from transactions.errors import X12WriteError
from transactions.segment import Delimiters, Segment, seg
from transactions.writer import _bulk_text, serialize

MAX_CONTROL_NUMBER = 999_999_999


@dataclass(frozen=True, slots=True)
class InterchangeHeader:
    """What goes into the ISA besides the delimiters."""

    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    control_number: int
    timestamp: datetime
    usage: str = "P"
    ack_requested: bool = False
    authorization_qualifier: str = "00"
    authorization: str = ""
    security_qualifier: str = "00"
    security: str = ""
    version: str = "00501"


@dataclass(frozen=True, slots=True)
class GroupHeader:
    """What goes into the GS."""

    functional_id: str
    application_sender: str
    application_receiver: str
    control_number: int
    version: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class TransactionBody:
    """One transaction set's content between ST and SE."""

    set_id: str
    control_number: int
    version: str
    body: tuple[Segment, ...]


def _control(value: int, what: str) -> int:
    if not 1 <= value <= MAX_CONTROL_NUMBER:
        raise X12WriteError(f"{what} control number must be between 1 and {MAX_CONTROL_NUMBER}")
    return value


def _pad(value: str, width: int, what: str) -> str:
    if len(value) > width:
        raise X12WriteError(f"{what} is longer than its {width} characters")
    return value.ljust(width)


def isa_segment(h: InterchangeHeader, d: Delimiters) -> Segment:
    """The fixed-width ISA for ``h`` (fields padded to their widths)."""
    ctl = _control(h.control_number, "interchange")
    values = (
        _pad(h.authorization_qualifier, 2, "ISA01"),
        _pad(h.authorization, 10, "ISA02"),
        _pad(h.security_qualifier, 2, "ISA03"),
        _pad(h.security, 10, "ISA04"),
        _pad(h.sender_qualifier, 2, "ISA05"),
        _pad(h.sender_id, 15, "ISA06"),
        _pad(h.receiver_qualifier, 2, "ISA07"),
        _pad(h.receiver_id, 15, "ISA08"),
        h.timestamp.strftime("%y%m%d"),
        h.timestamp.strftime("%H%M"),
        d.repetition,
        h.version,
        f"{ctl:09d}",
        "1" if h.ack_requested else "0",
        _pad(h.usage, 1, "ISA15"),
        d.component,
    )
    return Segment("ISA", values)


def gs_segment(g: GroupHeader) -> Segment:
    return seg(
        "GS",
        g.functional_id,
        g.application_sender,
        g.application_receiver,
        g.timestamp.strftime("%Y%m%d"),
        g.timestamp.strftime("%H%M"),
        str(_control(g.control_number, "group")),
        "X",
        g.version,
    )


def st_number(value: int) -> str:
    """ST02/SE02: at least four digits, zero-padded."""
    return f"{_control(value, 'transaction set'):04d}"


def transaction_segments(t: TransactionBody) -> list[Segment]:
    """ST + body + SE with SE01 counted from ST to SE inclusive."""
    number = st_number(t.control_number)
    return [
        seg("ST", t.set_id, number, t.version),
        *t.body,
        seg("SE", str(len(t.body) + 2), number),
    ]


def interchange_segments(
    header: InterchangeHeader,
    groups: Sequence[tuple[GroupHeader, Sequence[TransactionBody]]],
    delimiters: Delimiters,
    extra: Sequence[Segment] = (),
) -> Iterator[Segment]:
    """Every segment of one interchange; ``extra`` (e.g. a TA1) goes between ISA and the first GS."""
    yield isa_segment(header, delimiters)
    yield from extra
    for group, sets in groups:
        yield gs_segment(group)
        for t in sets:
            yield from transaction_segments(t)
        yield seg("GE", str(len(sets)), str(group.control_number))
    yield seg("IEA", str(len(groups)), f"{header.control_number:09d}")


def functional_groups(
    bodies: dict[str, list[TransactionBody]],
    versions: dict[str, str],
    group_controls: Sequence[int],
    *,
    application_sender: str,
    application_receiver: str,
    timestamp: datetime,
) -> list[tuple[GroupHeader, Sequence[TransactionBody]]]:
    """One group per functional id that has transaction sets (in ``bodies`` order), numbered from
    ``group_controls``."""
    present = [(fid, sets) for fid, sets in bodies.items() if sets]
    if len(group_controls) < len(present):
        raise ValueError("one group control number per functional group present")
    return [
        (GroupHeader(fid, application_sender, application_receiver, ctl, versions[fid], timestamp), sets)
        for (fid, sets), ctl in zip(present, group_controls, strict=False)
    ]


def build_interchange(
    header: InterchangeHeader,
    groups: Sequence[tuple[GroupHeader, Sequence[TransactionBody]]],
    delimiters: Delimiters,
    *,
    newline: str = "",
    extra: Sequence[Segment] = (),
) -> bytes:
    """One complete interchange as bytes.

    Written in one pass by :func:`_interchange_text`; when that pass meets anything it does not write
    plainly, the reference (:func:`serialize` over :func:`interchange_segments`) writes the interchange
    or raises its error, so the bytes and errors are the reference's either way.
    """
    text = _interchange_text(header, groups, delimiters, newline, extra)
    if text is None:
        return serialize(interchange_segments(header, groups, delimiters, extra), delimiters, newline=newline)
    return text.encode("utf-8", "surrogateescape")


def _interchange_text(
    header: InterchangeHeader,
    groups: Sequence[tuple[GroupHeader, Sequence[TransactionBody]]],
    d: Delimiters,
    newline: str,
    extra: Sequence[Segment],
) -> str | None:
    """The interchange's text with each set's ST and SE written as lines, not built as segments (two
    objects fewer per set to make and for the collector to scan); None for the reference to write it."""
    if newline and d.all().intersection(newline):
        return None
    sep = d.element
    items: list[Segment | str] = []
    checked: list[str] = []  # ST01 and ST03 as given: searched for delimiters with the other values
    try:
        items += [isa_segment(header, d), *extra]
        for group, sets in groups:
            items.append(gs_segment(group))
            for t in sets:
                set_id, version, body = t.set_id, t.version, t.body
                if set_id.__class__ is not str or version.__class__ is not str:
                    return None
                number = st_number(t.control_number)
                checked += (set_id, version)
                items.append(f"ST{sep}{set_id}{sep}{number}{sep}{version}".rstrip(sep))
                items += body
                items.append(f"SE{sep}{len(body) + 2}{sep}{number}")
            items.append(seg("GE", str(len(sets)), str(group.control_number)))
        items.append(seg("IEA", str(len(groups)), f"{header.control_number:09d}"))
        return _bulk_text(items, d, d.segment + newline, checked)
    except Exception:  # noqa: BLE001 - whatever it is, the reference meets it too and raises it in order
        return None
