"""Segment helpers shared by the 270 and 278 builders and their readers (names, dates, addresses)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import date, datetime

from transactions.models import Address, DateRange, Payer, Person, Provider
from transactions.segment import Segment, seg

X12_DATE = "%Y%m%d"


def d8(value: date) -> str:
    """CCYYMMDD. Formatted from the fields: ``strftime`` costs ~3 us a call, a tenth of a whole 270 body.
    Years before 1000 keep ``strftime``'s own (unpadded) form so the output never changes."""
    if value.year < 1000:  # the first four-digit year
        return value.strftime(X12_DATE)
    return f"{value.year}{value.month:02d}{value.day:02d}"


def hhmm(value: datetime) -> str:
    """HHMM, as ``strftime("%H%M")`` writes it, without its cost."""
    return f"{value.hour:02d}{value.minute:02d}"


def parse_d8(text: str) -> date:
    return datetime.strptime(text, X12_DATE).date()  # noqa: DTZ007 - a calendar date, no time zone


def dtp(qualifier: str, value: date | DateRange) -> Segment:
    """DTP with D8 for a single date (or a range of one day) and RD8 for a range.

    Kept, as segments are immutable and a batch repeats its dates of service (a bare date identifies
    no one): a segment not built again is one the collector need not scan either."""
    try:
        return _kept_dtp(qualifier, value)
    except TypeError:  # a value that cannot be a key (not what the models hold): built afresh
        return _dtp(qualifier, value)


def _dtp(qualifier: str, value: date | DateRange) -> Segment:
    if isinstance(value, DateRange):
        if value.end is not None and value.end != value.start:
            return seg("DTP", qualifier, "RD8", f"{d8(value.start)}-{d8(value.end)}")
        value = value.start
    return seg("DTP", qualifier, "D8", d8(value))


_kept_dtp = functools.lru_cache(maxsize=1024)(_dtp)


def parse_dtp(segment: Segment) -> DateRange:
    """DTP02/DTP03 as a range (a single D8 date is a range whose end is ``None``)."""
    fmt, text = segment.get(2), segment.get(3)
    if fmt == "RD8" and "-" in text:
        start, end = text.split("-", 1)
        return DateRange(parse_d8(start), parse_d8(end))
    return DateRange(parse_d8(text))


def provider_segments(entity: str, p: Provider, *, contact: bool = True) -> Iterator[Segment]:
    """NM1 (+ N3/N4 + PER + PRV) for a provider identified by NPI."""
    yield _provider_nm1(entity, p.name, p.first_name, p.npi)
    if p.address is not None:
        yield from address_segments(p.address)
    if contact and p.contact_phone:
        yield seg("PER", "IC", p.contact_name, "TE", p.contact_phone)


@functools.lru_cache(maxsize=1024)
def _provider_nm1(entity: str, name: str, first_name: str | None, npi: str) -> Segment:
    """A provider's NM1 (a person when it has a first name); kept, as a batch names the same few."""
    if first_name:
        return seg("NM1", entity, "1", name, first_name, None, None, None, "XX", npi)
    return seg("NM1", entity, "2", name, None, None, None, None, "XX", npi)


@functools.lru_cache(maxsize=1024)
def _payer_nm1(entity: str, name: str, qualifier: str, payer_id: str) -> Segment:
    """A payer's NM1; kept, as a batch is mostly for one payer."""
    return seg("NM1", entity, "2", name, None, None, None, None, qualifier, payer_id)


def address_segments(a: Address) -> Iterator[Segment]:
    yield seg("N3", a.line1, a.line2)
    yield seg("N4", a.city, a.state, a.postal_code)


def read_provider(segments: Sequence[Segment], start: int) -> Provider:
    """The provider whose NM1 is at ``segments[start]`` with its following N3/N4/PER/PRV."""
    nm1 = segments[start]
    address = None
    taxonomy = contact_name = contact_phone = None
    line1 = line2 = ""
    for s in segments[start + 1 :]:
        if s.tag == "N3":
            line1, line2 = s.get(1), s.get(2)
        elif s.tag == "N4":
            address = Address(line1, s.get(1), s.get(2), s.get(3), line2 or None)
        elif s.tag == "PER":
            contact_name, contact_phone = s.get(2) or None, s.get(4) or None
        elif s.tag == "PRV":
            taxonomy = s.get(3) or None
        elif s.tag in ("REF",):
            continue
        else:
            break
    first = nm1.get(4) if nm1.get(2) == "1" else None
    return Provider(nm1.get(3), nm1.get(9), first or None, address, taxonomy, contact_name, contact_phone)


def person_name(entity: str, p: Person, *, with_id: bool) -> Segment:
    if with_id and p.member_id:
        return seg(
            "NM1", entity, "1", p.last_name, p.first_name, p.middle_name, None, None, "MI", p.member_id
        )
    return seg("NM1", entity, "1", p.last_name, p.first_name, p.middle_name)


def dmg(p: Person) -> Iterator[Segment]:
    if p.birth_date is not None:
        yield seg("DMG", "D8", d8(p.birth_date), p.gender)


def read_person(nm1: Segment, following: Sequence[Segment]) -> Person:
    birth = gender = None
    for s in following:
        if s.tag == "DMG":
            birth = parse_d8(s.get(2)) if s.get(2) else None
            gender = s.get(3) or None
            break
    return Person(
        last_name=nm1.get(3),
        first_name=nm1.get(4),
        member_id=nm1.get(9) or None,
        middle_name=nm1.get(5) or None,
        birth_date=birth,
        gender=gender,  # type: ignore[arg-type]
    )


def hl_blocks(body: Sequence[Segment]) -> list[tuple[Segment, list[Segment]]]:
    """Split a transaction body into (HL, segments until the next HL) blocks."""
    blocks: list[tuple[Segment, list[Segment]]] = []
    for s in body:
        if s.tag == "HL":
            blocks.append((s, []))
        elif blocks:
            blocks[-1][1].append(s)
    return blocks


def payer_and_provider(
    hls: HLCounter,
    *,
    structure: str,
    req_id: str,
    created: datetime,
    payer: Payer,
    payer_entity: str,
    provider: Provider,
    contact: bool,
) -> tuple[list[Segment], int]:
    """BHT (request, purpose 13), the 2000A/2100A payer and the 2000B/2100B provider shared by 270s and
    278s; returns the segments and the provider level's HL01 (the subscriber's parent)."""
    out = [seg("BHT", structure, "13", req_id, d8(created), hhmm(created))]
    source, hl = hls.hl(None, "20", True)
    out += [
        hl,
        _payer_nm1(payer_entity, payer.name, payer.id_qualifier, payer.id),
    ]
    receiver, hl = hls.hl(source, "21", True)
    out += [hl, *provider_segments("1P", provider, contact=contact)]
    if provider.taxonomy:
        out.append(seg("PRV", "PE", "PXC", provider.taxonomy))
    return out, receiver


class HLCounter:
    """Numbers HL segments: HL01 sequential from 1, HL02 the parent's HL01."""

    def __init__(self) -> None:
        self.next_id = 1

    def hl(self, parent: int | None, level: str, has_children: bool) -> tuple[int, Segment]:
        number = self.next_id
        self.next_id += 1
        return number, _hl_segment(number, parent, level, has_children)


@functools.lru_cache(maxsize=1024)
def _hl_segment(number: int, parent: int | None, level: str, has_children: bool) -> Segment:
    """One HL; kept, as segments are immutable and every request of a batch has the same few HLs."""
    return seg("HL", str(number), str(parent) if parent else None, level, "1" if has_children else "0")
