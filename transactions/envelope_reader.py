"""Envelope structure: group a segment stream into interchanges, functional groups and transaction sets.

:func:`iter_envelope` is a streaming walk that yields one event per envelope boundary and one
:class:`TransactionSet` per ST..SE, so memory is bounded by the largest transaction set.
:func:`read_interchanges` assembles the events into whole :class:`Interchange` objects for callers that
want a tree. Missing trailers are represented (``se``/``ge``/``iea`` is ``None``) rather than raised,
because the validator turns them into 999/TA1 findings; pass ``strict=True`` to raise instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from transactions.errors import TruncatedError
from transactions.reader import SegmentReader
from transactions.segment import Delimiters, Segment


@dataclass(frozen=True, slots=True, init=False)
class TransactionSet:
    """ST..SE inclusive (``se`` is ``None`` when the trailer is missing)."""

    segments: tuple[Segment, ...]
    offset: int
    se: Segment | None
    # every string of the set passes ``mappings.mapper.plain_texts`` (False: not known): a hint the
    # reader gives where it knows (``reader.plain_window``), so the mapper need not ask; not compared
    plain: bool = field(default=False, compare=False)

    def __init__(
        self, segments: tuple[Segment, ...], offset: int, se: Segment | None, plain: bool = False
    ) -> None:
        """Fills the slots through their descriptors (one set of each is made per set read; a frozen
        dataclass's own ``__init__`` goes through ``object.__setattr__`` per field)."""
        _SET_SEGMENTS(self, segments)
        _SET_OFFSET(self, offset)
        _SET_SE(self, se)
        _SET_PLAIN(self, plain)

    @property
    def st(self) -> Segment:
        return self.segments[0]

    @property
    def set_id(self) -> str:
        return self.st.get(1)

    @property
    def control_number(self) -> str:
        return self.st.get(2)

    @property
    def version(self) -> str:
        return self.st.get(3)

    @property
    def body(self) -> tuple[Segment, ...]:
        """Segments between ST and SE."""
        return self.segments[1:-1] if self.se is not None else self.segments[1:]


_SET_SEGMENTS = TransactionSet.__dict__["segments"].__set__
_SET_OFFSET = TransactionSet.__dict__["offset"].__set__
_SET_SE = TransactionSet.__dict__["se"].__set__
_SET_PLAIN = TransactionSet.__dict__["plain"].__set__


@dataclass(frozen=True, slots=True)
class InterchangeStart:
    isa: Segment
    delimiters: Delimiters
    offset: int


@dataclass(frozen=True, slots=True)
class InterchangeEnd:
    iea: Segment | None
    offset: int


@dataclass(frozen=True, slots=True)
class GroupStart:
    gs: Segment
    offset: int


@dataclass(frozen=True, slots=True)
class GroupEnd:
    ge: Segment | None
    offset: int


@dataclass(frozen=True, slots=True)
class InterchangeSegment:
    """A segment directly inside ISA..IEA outside any group, e.g. a TA1."""

    segment: Segment
    offset: int


@dataclass(frozen=True, slots=True)
class StraySegment:
    """A segment where the envelope allows none (between sets, or outside a group)."""

    segment: Segment
    offset: int
    number: int
    reason: str


Event = (
    InterchangeStart
    | InterchangeEnd
    | GroupStart
    | GroupEnd
    | InterchangeSegment
    | StraySegment
    | TransactionSet
)


class _Walk:
    """State machine behind :func:`iter_envelope`."""

    def __init__(self, reader: SegmentReader | None = None) -> None:
        self.in_isa = False
        self.in_gs = False
        self.st_segments: list[Segment] | None = None
        self.st_offset = 0
        self.st_number = 0
        self.reader = reader  # asked whether a set is plain (``SegmentReader.unplain``); None: not

    def close_set(self, se: Segment | None) -> Iterator[Event]:
        if self.st_segments is not None:
            if se is not None:
                self.st_segments.append(se)
            reader = self.reader
            plain = reader is not None and reader.unplain < self.st_number
            yield TransactionSet(tuple(self.st_segments), self.st_offset, se, plain)
            self.st_segments = None

    def close_group(self, ge: Segment | None, offset: int) -> Iterator[Event]:
        yield from self.close_set(None)
        if self.in_gs:
            yield GroupEnd(ge, offset)
            self.in_gs = False

    def close_interchange(self, iea: Segment | None, offset: int) -> Iterator[Event]:
        yield from self.close_group(None, offset)
        if self.in_isa:
            yield InterchangeEnd(iea, offset)
            self.in_isa = False

    def step(  # noqa: PLR0912 - one branch per envelope segment id reads better than a dispatch table
        self, seg: Segment, offset: int, number: int, delimiters: Delimiters | None
    ) -> Iterator[Event]:
        tag = seg.tag
        if tag == "ISA":
            yield from self.close_interchange(None, offset)
            if delimiters is None:  # the reader always sets them when it yields an ISA
                raise TruncatedError("ISA without delimiters", offset=offset, segment=number)
            self.in_isa = True
            yield InterchangeStart(seg, delimiters, offset)
        elif tag == "IEA":
            yield from self.close_interchange(seg, offset)
        elif tag == "GS":
            yield from self.close_group(None, offset)
            self.in_gs = True
            yield GroupStart(seg, offset)
        elif tag == "GE":
            if not self.in_gs:
                yield StraySegment(seg, offset, number, "GE without a matching GS")
            yield from self.close_group(seg, offset)
        elif tag == "ST":
            yield from self.close_set(None)
            if not self.in_gs:
                yield StraySegment(seg, offset, number, "ST outside a functional group")
            self.st_segments, self.st_offset, self.st_number = [seg], offset, number
        elif tag == "SE":
            if self.st_segments is None:
                yield StraySegment(seg, offset, number, "SE without a matching ST")
            yield from self.close_set(seg)
        elif self.st_segments is not None:
            self.st_segments.append(seg)
        elif self.in_isa and not self.in_gs:
            yield InterchangeSegment(seg, offset)
        else:
            yield StraySegment(seg, offset, number, "segment outside a transaction set")


_ENVELOPE_TAGS = frozenset({"ISA", "IEA", "GS", "GE", "ST", "SE"})  # the ids _Walk.step does more with


def iter_envelope(source: bytes | Iterable[bytes], *, strict: bool = False) -> Iterator[Event]:
    """Walk ``source`` and yield envelope events in order (see module docstring)."""
    reader = SegmentReader(source)
    walk = _Walk(reader)
    envelope = _ENVELOPE_TAGS
    for seg in reader:
        inside = walk.st_segments
        if inside is not None and seg.tag not in envelope:  # what step does with it, without a
            inside.append(seg)  # generator per segment: most segments are inside a set
            continue
        yield from walk.step(seg, reader.offset, reader.number, reader.delimiters)
    if strict and walk.in_isa:
        raise TruncatedError(
            "data ends inside an interchange (no IEA)", offset=reader.offset, segment=reader.number
        )
    end = reader.offset
    yield from walk.close_interchange(None, end)


@dataclass(frozen=True, slots=True)
class FunctionalGroup:
    gs: Segment
    transaction_sets: tuple[TransactionSet, ...]
    ge: Segment | None
    offset: int

    @property
    def functional_id(self) -> str:
        return self.gs.get(1)

    @property
    def control_number(self) -> str:
        return self.gs.get(6)

    @property
    def version(self) -> str:
        return self.gs.get(8)


@dataclass(frozen=True, slots=True)
class Interchange:
    isa: Segment
    delimiters: Delimiters
    groups: tuple[FunctionalGroup, ...]
    iea: Segment | None
    offset: int
    extra: tuple[Segment, ...] = field(default=())  # TA1 and other segments outside groups
    stray: tuple[StraySegment, ...] = field(default=())

    @property
    def control_number(self) -> str:
        return self.isa.get(13)

    @property
    def sender(self) -> tuple[str, str]:
        return self.isa.get(5), self.isa.get(6).rstrip()

    @property
    def receiver(self) -> tuple[str, str]:
        return self.isa.get(7), self.isa.get(8).rstrip()

    def transaction_sets(self) -> Iterator[TransactionSet]:
        for group in self.groups:
            yield from group.transaction_sets


@dataclass
class _OpenInterchange:
    start: InterchangeStart
    groups: list[FunctionalGroup] = field(default_factory=list)
    extra: list[Segment] = field(default_factory=list)
    stray: list[StraySegment] = field(default_factory=list)
    group: GroupStart | None = None
    sets: list[TransactionSet] = field(default_factory=list)


def read_interchanges(source: bytes | Iterable[bytes], *, strict: bool = False) -> list[Interchange]:
    """Every interchange in ``source`` as a tree (holds the whole file; use iter_envelope for big ones)."""
    result: list[Interchange] = []
    cur: _OpenInterchange | None = None
    for event in iter_envelope(source, strict=strict):
        if isinstance(event, InterchangeStart):
            cur = _OpenInterchange(event)
        elif cur is None:
            continue  # stray segments before any ISA cannot occur: the reader refuses them
        elif isinstance(event, GroupStart):
            cur.group, cur.sets = event, []
        elif isinstance(event, TransactionSet):
            cur.sets.append(event)
        elif isinstance(event, GroupEnd) and cur.group is not None:
            cur.groups.append(FunctionalGroup(cur.group.gs, tuple(cur.sets), event.ge, cur.group.offset))
            cur.group, cur.sets = None, []
        elif isinstance(event, InterchangeSegment):
            cur.extra.append(event.segment)
        elif isinstance(event, StraySegment):
            cur.stray.append(event)
        elif isinstance(event, InterchangeEnd):
            s = cur.start
            result.append(
                Interchange(
                    s.isa,
                    s.delimiters,
                    tuple(cur.groups),
                    event.iea,
                    s.offset,
                    tuple(cur.extra),
                    tuple(cur.stray),
                )
            )
            cur = None
    return result
