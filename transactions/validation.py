"""Validate X12 against the implementation guides: envelope checks (TA1), group and set checks (999),
and the IG walk of every transaction set.

``validate(data)`` streams the input (memory is bounded by the largest transaction set) and returns a
:class:`ValidationReport`; findings are data, never exceptions. Unreadable input (no ISA, a broken ISA,
truncated data) is reported as ``fatal`` or as a TA1 023 on the interchange it cut short.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from transactions import envelope_reader as env
from transactions.errors import X12SyntaxError
from transactions.findings import (
    GROUP_CODES,
    QUIRKS,
    SET_CODES,
    TA1_CODES,
    Finding,
    GroupReport,
    InterchangeReport,
    SetReport,
    Ta1Verdict,
    ValidationReport,
)
from transactions.maps import MapEntry
from transactions.maps import index as map_index
from transactions.placed import Placed, WalkResult
from transactions.segment import Delimiters, Segment

__all__ = [
    "ENGINES",
    "QUIRKS",
    "Options",
    "ValidatedSet",
    "Validation",
    "validate",
    "validate_detailed",
    "validate_set",
]

ENGINES = ("compiled", "pyx12")
ID_QUALIFIERS = frozenset({"01", "14", "20", "27", "28", "29", "30", "33", "ZZ"})


@dataclass(frozen=True, slots=True)
class Options:
    """``leniency``: the :data:`QUIRKS` reported as warnings instead of errors (the default accepts
    only other errata version codes; a partner config starts strict). ``our_ids``: ISA08 receiver ids
    we answer to (empty: any); ``our_gs_ids``: GS03 ids (empty: any). ``seen_interchanges``: ISA13s
    already received from this sender (duplicates get TA1 025). ``engine``: which walker checks the
    sets against the guide, :data:`ENGINES`; both give the same findings."""

    leniency: frozenset[str] = frozenset({"version"})
    our_ids: frozenset[str] = frozenset()
    seen_interchanges: frozenset[str] = frozenset()
    keep_placed: bool = False
    our_gs_ids: frozenset[str] = frozenset()
    engine: str = "compiled"  # "compiled" (transactions.engine) or "pyx12" (the reference walker)


@dataclass(frozen=True, slots=True, init=False)
class ValidatedSet:
    """A transaction set with its verdict and (when asked for) its segments placed in loops."""

    report: SetReport
    segments: tuple[Segment, ...]
    placed: Sequence[Placed]  # a tuple, or the compiled engine's PlacedSegments (read alike)
    # the reader found every string of the set plain (``TransactionSet.plain``): a hint, not compared
    plain: bool = field(default=False, compare=False)

    def __init__(
        self, report: SetReport, segments: tuple[Segment, ...], placed: Sequence[Placed], plain: bool = False
    ) -> None:
        """Fills the slots through their descriptors (one is made per set validated; a frozen
        dataclass's own ``__init__`` goes through ``object.__setattr__`` per field)."""
        _SET_REPORT(self, report)
        _SET_SEGMENTS(self, segments)
        _SET_PLACED(self, placed)
        _SET_PLAIN(self, plain)


_SET_REPORT = ValidatedSet.__dict__["report"].__set__
_SET_SEGMENTS = ValidatedSet.__dict__["segments"].__set__
_SET_PLACED = ValidatedSet.__dict__["placed"].__set__
_SET_PLAIN = ValidatedSet.__dict__["plain"].__set__


@dataclass
class _Group:
    start: env.GroupStart
    sets: list[SetReport] = field(default_factory=list)
    control_numbers: set[str] = field(default_factory=set)  # a set: membership per set must stay O(1)
    foreign: bool = False  # GS03 is not one of our application ids


def _isa_checks(isa: Segment, opts: Options) -> list[str]:
    """TA105 codes for a syntactically readable but invalid ISA."""
    codes: list[str] = []
    if isa.get(12) != "00501" and not (isa.get(12).isdigit() and "isa12" in opts.leniency):
        codes.append("017" if not isa.get(12).isdigit() else "003")
    if isa.get(5) not in ID_QUALIFIERS:
        codes.append("005")
    if isa.get(7) not in ID_QUALIFIERS:
        codes.append("007")
    if opts.our_ids and isa.get(8).strip() not in opts.our_ids:
        codes.append("009")
    if not _valid_isa_date(isa.get(9)):
        codes.append("014")
    if not _valid_isa_time(isa.get(10)):
        codes.append("015")
    if not re.fullmatch(r"\d{9}", isa.get(13)):
        codes.append("018")
    if isa.get(14) not in ("0", "1"):
        codes.append("019")
    if isa.get(15) not in ("P", "T"):
        codes.append("020")
    if isa.get(13) in opts.seen_interchanges:
        codes.append("025")
    return codes


def _isa_warnings(isa: Segment, opts: Options) -> tuple[str, ...]:
    if isa.get(12) != "00501" and isa.get(12).isdigit() and "isa12" in opts.leniency:
        return (f"ISA12 is {isa.get(12)}, not 00501; content read as 5010 (isa12 leniency)",)
    return ()


def _valid_datetime(text: str, fmt: str) -> bool:
    """Whether ``datetime.strptime`` reads ``text`` with ``fmt``: the reference of the two checks
    below, and what they fall back to for any text not made of exactly their ASCII digits."""
    try:
        datetime.strptime(text, fmt)  # noqa: DTZ007 - only the format is checked
    except ValueError:
        return False
    return True


_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ASCII_DIGITS = frozenset("0123456789")


def _valid_isa_date(text: str) -> bool:
    """``_valid_datetime(text, "%y%m%d")`` without strptime for the ISA09 every interchange has (six
    ASCII digits): a month 01-12 and a day of it (%y: 00-68 are 20xx, 69-99 19xx, so a year is leap
    when divisible by 4, 2000 included). strptime's regex can only match all six digits as two each
    (a one-digit month or day leaves at most five), so the same texts pass; any other text is
    strptime's to judge."""
    if len(text) != 6 or not _ASCII_DIGITS.issuperset(text):
        return _valid_datetime(text, "%y%m%d")
    month, day = int(text[2:4]), int(text[4:6])
    if not 1 <= month <= 12:
        return False
    last = 29 if month == 2 and int(text[:2]) % 4 == 0 else _DAYS[month - 1]
    return 1 <= day <= last


def _valid_isa_time(text: str) -> bool:
    """``_valid_datetime(text, "%H%M")`` without strptime for four ASCII digits (ISA10): hour 00-23,
    minute 00-59 (as for the date, only two digits each match all four); other texts go to strptime."""
    if len(text) != 4 or not _ASCII_DIGITS.issuperset(text):
        return _valid_datetime(text, "%H%M")
    return int(text[:2]) <= 23 and int(text[2:]) <= 59


def _family(version: str) -> str:
    """The guide a version code names, without its errata suffix (005010X279A1 -> 005010X279)."""
    m = re.match(r"\d{6}X\d{3}", version)
    return m.group(0) if m else version


@dataclass(frozen=True, slots=True)
class _Choice:
    """The map for a set, chosen from ST01, ST03 (GS08 when ST03 is empty) and BHT02, with the envelope
    quirks met on the way as (IK502 code, quirk, message)."""

    entry: MapEntry | None
    quirks: tuple[tuple[str, str, str], ...]


def _value(segment: Segment, position: int) -> str:
    """``segment.get(position)``, a plain value read without the call's checks (the usual case)."""
    elements = segment.elements
    if position <= len(elements):
        value = elements[position - 1]
        if value.__class__ is str:
            return value
    return segment.get(position)


@functools.lru_cache(maxsize=256)
def _choose(set_id: str, st03: str, gs01: str, gs08: str, bht02: str | None) -> _Choice:
    """The choice depends on these five values only, and a batch repeats them set after set."""
    version = st03 or gs08
    same_set = [e for e in map_index() if e.abbr[:3] == set_id]
    exact = [e for e in same_set if e.vriic == version]
    quirks: list[tuple[str, str, str]] = []
    if not exact:
        exact = [e for e in same_set if _family(e.vriic) == _family(version)]
        if exact:
            msg = f"version {version} is another errata of {exact[0].vriic}; read with that guide"
            quirks.append(("19", "version", msg))
    if any(e.tspc for e in exact):
        exact = [e for e in exact if e.tspc == bht02] or [e for e in exact if e.tspc == "13"]
    entry = exact[0] if exact else None
    if entry is not None and gs01 != entry.fic:
        msg = f"a {entry.abbr} belongs in a functional group {entry.fic}, not {gs01} (GS01)"
        quirks.append(("18", "gs01", msg))
    if st03 and st03 != gs08:
        quirks.append(("19", "gs08", f"ST03 {st03} differs from GS08 {gs08}"))
    return _Choice(entry, tuple(quirks))


@functools.cache
def _walker(engine: str) -> Callable[..., WalkResult]:
    """The walk function of an engine (imported on first use: the pyx12 walker loads pyx12)."""
    if engine == "pyx12":
        from transactions.ig_walk import walk_transaction_set  # noqa: PLC0415

        return walk_transaction_set
    if engine == "compiled":
        from transactions.engine import walk_transaction_set as compiled  # noqa: PLC0415

        return compiled
    raise ValueError(f"unknown validation engine {engine!r}; one of {', '.join(ENGINES)}")


_CONTROL_NUMBER = re.compile(r"[A-Za-z0-9]{4,9}")


def _set_codes(tset: env.TransactionSet, seen: Collection[str]) -> list[str]:
    codes: list[str] = []
    st = tset.st
    set_id, control = _value(st, 1), _value(st, 2)
    if not set_id.isdigit() or len(set_id) != 3:
        codes.append("6")
    if not _CONTROL_NUMBER.fullmatch(control):
        codes.append("7")
    if control in seen:
        codes.append("23")
    se = tset.se
    if se is None:
        codes.append("2")
    else:
        if _value(se, 2) != control:
            codes.append("3")
        if _value(se, 1) != str(len(tset.segments)):
            codes.append("4")
    return codes


def validate_set(
    tset: env.TransactionSet, gs: Segment, d: Delimiters, seen: Collection[str], opts: Options
) -> ValidatedSet:
    """Verdict for one transaction set: envelope codes plus the IG walk."""
    codes = _set_codes(tset, seen)
    segments = tset.segments
    st = segments[0]
    set_id, version = _value(st, 1), _value(st, 3)
    second = segments[1] if len(segments) > 1 else None
    bht02 = _value(second, 2) if second is not None and second.tag == "BHT" else None
    choice = _choose(set_id, version, _value(gs, 1), _value(gs, 8), bht02)  # the set's map, chosen inline
    entry = choice.entry
    findings: tuple[Finding, ...] = ()
    placed: Sequence[Placed] = ()
    if entry is None:
        codes.insert(0, "1")
    else:
        result = _walker(opts.engine)(
            tset.segments, entry.file, entry.source, d, keep_placed=opts.keep_placed
        )
        findings, placed = result.findings, result.placed
        if choice.quirks and any(quirk == "version" for _, quirk, _ in choice.quirks):  # reported once
            findings = tuple(f for f in findings if f.element != "ST03")
    warnings, notes = [], []
    for code, quirk, message in choice.quirks:
        if quirk in opts.leniency:
            warnings.append(Finding("ST", 1, None, code, message, severity="warning"))
        else:
            codes.append(code)
            notes.append(f"{message} (IK502 {code}; leniency '{quirk}' would accept it)")
    if warnings:
        findings = (*warnings, *findings)
    if findings and any(f.severity == "error" for f in findings):
        codes.append("5")
    ack = "R" if codes else ("E" if findings else "A")
    report = SetReport(
        set_id,
        _value(st, 2),
        version,
        ack,
        tuple(dict.fromkeys(codes))[:5],
        findings,
        entry.abbr if entry else None,
        tset.offset,
        len(tset.segments),
        tuple(notes),
    )
    return ValidatedSet(report, tset.segments, placed if opts.keep_placed else (), tset.plain)


def _group_report(group: _Group, ge: Segment | None, seen_groups: Sequence[str]) -> GroupReport:
    gs = group.start.gs
    codes: list[str] = ["1"] if group.foreign else []  # not addressed to us: not supported here
    declared: int | None = None
    if ge is None:
        codes.append("3")
    else:
        if ge.get(2) != gs.get(6):
            codes.append("4")
        count = ge.get(1)  # ASCII digits only: "²".isdigit() is true, and int() refuses > 4300 digits
        declared = int(count) if count.isascii() and count.isdigit() and len(count) <= 18 else None
        if declared != len(group.sets):
            codes.append("5")
    if not gs.get(6).isdigit():
        codes.append("6")
    if gs.get(6) in seen_groups:
        codes.append("19")
    sets = group.sets
    if codes or not sets:
        ack = "R"
    elif all(s.ack_code == "A" for s in sets):
        ack = "A"
    elif all(s.accepted for s in sets):
        ack = "E"
    elif any(s.accepted for s in sets):
        ack = "P"
    else:
        ack = "R"
    return GroupReport(gs.get(1), gs.get(6), gs.get(8), ack, tuple(codes)[:5], declared, tuple(sets))


class _Validator:
    """Consumes envelope events and accumulates reports; one instance per input."""

    def __init__(self, opts: Options, *, keep_sets: bool = True) -> None:
        self.opts = opts
        self.keep_sets = keep_sets
        self.reports: list[InterchangeReport] = []
        self.sets: list[ValidatedSet] = []
        self.start: env.InterchangeStart | None = None
        self.groups: list[GroupReport] = []
        self.group: _Group | None = None
        self.envelope_codes: list[str] = []
        self.misaddressed: str | None = None

    def feed(self, event: env.Event) -> None:
        if event.__class__ is env.TransactionSet:  # most events: looked at first (the types are disjoint)
            self._set(event)
        elif isinstance(event, env.InterchangeStart):
            self.start, self.groups, self.group = event, [], None
            self.envelope_codes = _isa_checks(event.isa, self.opts)
            self.misaddressed = None
            if "009" in self.envelope_codes:
                self.misaddressed = "ISA08 receiver id is not ours"
        elif isinstance(event, env.GroupStart):
            foreign = bool(self.opts.our_gs_ids) and event.gs.get(3) not in self.opts.our_gs_ids
            if foreign and self.misaddressed is None:
                self.misaddressed = "GS03 application receiver is not ours"
            self.group = _Group(event, foreign=foreign)
        elif isinstance(event, env.TransactionSet):
            self._set(event)
        elif isinstance(event, env.GroupEnd) and self.group is not None:
            seen = [g.control_number for g in self.groups]
            self.groups.append(_group_report(self.group, event.ge, seen))
            self.group = None
        elif isinstance(event, env.StraySegment):
            self.envelope_codes.append("024")
        elif isinstance(event, env.InterchangeEnd):
            self._close(event.iea)

    def _set(self, tset: env.TransactionSet) -> None:
        if self.group is None or self.start is None:
            return
        validated = validate_set(
            tset, self.group.start.gs, self.start.delimiters, self.group.control_numbers, self.opts
        )
        self.group.sets.append(validated.report)
        self.group.control_numbers.add(tset.control_number)
        if self.keep_sets:
            self.sets.append(validated)

    def _close(self, iea: Segment | None, *, premature: bool = False) -> None:
        if self.start is None:
            return
        isa, codes = self.start.isa, list(self.envelope_codes)
        if any("6" in g.group_codes for g in self.groups):
            codes.append("024")  # a group control number that AK102 cannot echo: reject the interchange
        if premature or iea is None:
            codes.append("023")
        else:
            if iea.get(2) != isa.get(13):
                codes.append("001")
            if iea.get(1) != str(len(self.groups)):
                codes.append("021")
        ta1 = None
        if codes:
            ta1 = Ta1Verdict("R", codes[0], "; ".join(TA1_CODES.get(c, c) for c in dict.fromkeys(codes)))
        elif isa.get(14) == "1":
            ta1 = Ta1Verdict("A", "000", TA1_CODES["000"])
        self.reports.append(
            InterchangeReport(
                isa.get(13),
                isa.get(5),
                isa.get(6).strip(),
                isa.get(7),
                isa.get(8).strip(),
                isa.get(9),
                isa.get(10),
                isa.get(15),
                isa.get(14) == "1",
                ta1,
                tuple(self.groups),
                self.start.offset,
                _isa_warnings(isa, self.opts),
                self.misaddressed,
            )
        )
        self.start = None

    def abort(self) -> None:
        """The data ended or broke inside an interchange: close what is open as premature."""
        if self.group is not None:
            self.groups.append(_group_report(self.group, None, []))
            self.group = None
        self._close(None, premature=True)


@dataclass(frozen=True, slots=True)
class Validation:
    """The report plus each transaction set's segments, for callers that go on to map them."""

    report: ValidationReport
    sets: tuple[ValidatedSet, ...]


def validate_detailed(source: bytes | Iterable[bytes], opts: Options | None = None) -> Validation:
    """Validate and keep every set's segments (and placed loops when ``opts.keep_placed``)."""
    return _run(source, opts or Options(), keep_sets=True)


def validate(source: bytes | Iterable[bytes], opts: Options | None = None) -> ValidationReport:
    """Validate every interchange in ``source`` (see module docstring); keeps no segments, so memory
    stays bounded by the largest transaction set whatever the size of the input."""
    return _run(source, opts or Options(), keep_sets=False).report


def _run(source: bytes | Iterable[bytes], opts: Options, *, keep_sets: bool) -> Validation:
    v = _Validator(opts, keep_sets=keep_sets)
    fatal = None
    try:
        for event in env.iter_envelope(source):
            v.feed(event)
    except X12SyntaxError as exc:
        fatal = _recover(v, exc)
    finally:
        _forget_values(opts)
    return Validation(ValidationReport(tuple(v.reports), fatal), tuple(v.sets))


def _forget_values(opts: Options) -> None:
    """The compiled engine remembers check results by value during a run; none outlive it."""
    if opts.engine == "compiled":
        from transactions.engine.compile import forget_values  # noqa: PLC0415

        forget_values()


@dataclass(frozen=True, slots=True, init=False)
class SetInContext:
    """A validated transaction set with the control numbers of its interchange (ISA13) and group (GS06)."""

    interchange: str
    group: str
    validated: ValidatedSet

    def __init__(self, interchange: str, group: str, validated: ValidatedSet) -> None:
        """Fills the slots through their descriptors, as :class:`ValidatedSet` does."""
        _SET_INTERCHANGE(self, interchange)
        _SET_GROUP(self, group)
        _SET_VALIDATED(self, validated)


_SET_INTERCHANGE = SetInContext.__dict__["interchange"].__set__
_SET_GROUP = SetInContext.__dict__["group"].__set__
_SET_VALIDATED = SetInContext.__dict__["validated"].__set__


class ValidationStream:
    """Validate ``source`` set by set: iterating yields each transaction set as soon as it is validated,
    so a caller can print or map it and let it go; ``report`` is complete once iteration ends. Only the
    current set's segments are held (the report keeps one small verdict per set)."""

    def __init__(self, source: bytes | Iterable[bytes], opts: Options | None = None) -> None:
        self._source = source
        self._opts = opts or Options()
        self.report: ValidationReport | None = None

    def __iter__(self) -> Iterator[SetInContext]:
        v = _Validator(self._opts, keep_sets=True)
        fatal = None
        try:
            group: _Group | None = None
            ids = ("", "")
            for event in env.iter_envelope(self._source):
                v.feed(event)
                if v.sets and v.start is not None and v.group is not None:
                    if v.group is not group:  # the same two numbers for every set of a group
                        group, ids = v.group, (_value(v.start.isa, 13), _value(v.group.start.gs, 6))
                    yield from (SetInContext(*ids, validated) for validated in v.sets)
                    v.sets.clear()
        except X12SyntaxError as exc:
            fatal = _recover(v, exc)
        finally:
            _forget_values(self._opts)
        self.report = ValidationReport(tuple(v.reports), fatal)


def _recover(v: _Validator, exc: X12SyntaxError) -> str | None:
    """Turn a read failure into a TA1 where an interchange can still be named; else a fatal reason."""
    if v.start is not None:
        v.abort()
    if exc.raw_isa is not None and len(exc.raw_isa) >= 106:
        v.reports.append(_broken_isa_report(exc.raw_isa, exc.offset or 0))
        return None
    return None if v.reports else str(exc)


def _broken_isa_report(raw: bytes, offset: int) -> InterchangeReport:
    """Report for an ISA whose delimiters or widths are wrong: fields are read at their fixed offsets."""
    text = raw.decode("latin-1")
    element, component, terminator = text[3], text[104], text[105]
    if text[84:89] >= "00501" and (text[82].isalnum() or text[82] == " "):
        message = (
            f"ISA11 is {text[82]!r}, a 4010 standards id; ISA12 {text[84:89]} needs a repetition separator"
        )
        return _isa_report(text, offset, Ta1Verdict("R", "024", f"{TA1_CODES['024']}: {message}"))
    if component == element:
        code = "027"
    elif terminator in (element, component, text[82]) or terminator.isalnum():
        code = "004"
    else:
        code = "026"
    return _isa_report(text, offset, Ta1Verdict("R", code, TA1_CODES[code]))


def _isa_report(text: str, offset: int, ta1: Ta1Verdict) -> InterchangeReport:
    return InterchangeReport(
        text[90:99],
        text[32:34],
        text[35:50].strip(),
        text[51:53],
        text[54:69].strip(),
        text[70:76],
        text[77:81],
        text[102:103],
        False,
        ta1,
        (),
        offset,
    )


def group_set_codes() -> dict[str, str]:
    """Plain-language texts for AK905 and IK502 codes (for CLI output)."""
    return {
        **{f"AK905-{k}": v for k, v in GROUP_CODES.items()},
        **{f"IK502-{k}": v for k, v in SET_CODES.items()},
    }


def validate_written(
    groups: Iterable[tuple[Segment, Sequence[Sequence[Segment]]]],
    delimiters: Delimiters,
    opts: Options | None = None,
) -> list[SetReport]:
    """The verdicts ``validate`` gives the sets of an interchange just written, from its segments
    instead of its bytes: each group's GS with its sets (ST..SE), every segment as a reader reads it
    back (``transactions.outbound.as_read``). Only the sets' verdicts (their ``offset`` is 0): the
    envelope around them was written by us. For a writer checking what it built without reading it
    again; ``validate`` stays the reference."""
    opts = opts or Options()
    out: list[SetReport] = []
    try:
        for gs, sets in groups:
            seen: set[str] = set()
            for segments in sets:
                tset = env.TransactionSet(
                    tuple(segments), 0, segments[-1] if segments[-1].tag == "SE" else None
                )
                out.append(validate_set(tset, gs, delimiters, seen, opts).report)
                seen.add(tset.control_number)
    finally:
        _forget_values(opts)
    return out
