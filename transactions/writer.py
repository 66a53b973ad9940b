"""Serialise segments with chosen delimiters.

Refuses (with :class:`X12WriteError`) any value containing a delimiter: silently escaping or dropping
characters would change what the payer reads. Trailing empty elements and components are trimmed, as
X12 requires. The ISA is written as given: it must already be padded to its fixed widths.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain

from transactions.errors import X12WriteError
from transactions.reader import ISA_WIDTHS, NO_REPETITION
from transactions.segment import Composite, Delimiters, Element, Repetition, Segment


def _check(text: str, forbidden: frozenset[str], tag: str, position: int) -> str:
    if forbidden.intersection(text):
        raise X12WriteError(f"{tag}{position:02d} contains a delimiter character")
    return text


def _composite(value: Composite, d: Delimiters, forbidden: frozenset[str], tag: str, pos: int) -> str:
    parts = list(value)
    while parts and parts[-1] == "":
        parts.pop()
    return d.component.join(_check(p, forbidden, tag, pos) for p in parts)


def _element(value: Element, d: Delimiters, forbidden: frozenset[str], tag: str, pos: int) -> str:
    if isinstance(value, Repetition):
        if d.repetition == NO_REPETITION:
            raise X12WriteError(f"{tag}{pos:02d} repeats but the interchange has no repetition separator")
        return d.repetition.join(
            _check(v, forbidden, tag, pos) if isinstance(v, str) else _composite(v, d, forbidden, tag, pos)
            for v in value
        )
    if isinstance(value, str):
        return _check(value, forbidden, tag, pos)
    return _composite(value, d, forbidden, tag, pos)


def format_segment(segment: Segment, d: Delimiters) -> str:
    """One segment as text, without its terminator."""
    if segment.tag == "ISA":
        return _format_isa(segment, d)
    return _plain_segment(segment, d) or _format_elements(segment, d)


def _format_elements(segment: Segment, d: Delimiters) -> str:
    """Element by element: composites, repetitions, and the error naming a value with a delimiter."""
    forbidden = d.all()
    values = [_element(v, d, forbidden, segment.tag, i) for i, v in enumerate(segment.elements, 1)]
    while values and values[-1] == "":
        values.pop()
    return d.element.join([segment.tag, *values])


def _plain_segment(segment: Segment, d: Delimiters) -> str | None:
    """The common case in one join: every element a plain string and none holding a delimiter (the
    joined text has exactly one element separator between elements and no other delimiter). None
    otherwise, and the element-by-element path writes the segment or names the offending element."""
    elements = segment.elements
    try:
        body = d.element.join(elements)  # type: ignore[arg-type]  # a non-string raises TypeError
    except TypeError:  # a composite or repetition
        return None
    if (
        body.count(d.element) != len(elements) - 1
        or d.component in body
        or d.repetition in body
        or d.segment in body
    ):
        return None
    return f"{segment.tag}{d.element}{body}".rstrip(d.element)


def _format_isa(segment: Segment, d: Delimiters) -> str:
    values = [v if isinstance(v, str) else "" for v in segment.elements]
    if len(values) != 16 or tuple(len(v) for v in values) != ISA_WIDTHS:
        raise X12WriteError("ISA fields must be exactly 16 values padded to their fixed widths")
    values[10] = d.repetition if d.repetition != NO_REPETITION else values[10]
    values[15] = d.component
    forbidden = d.all()
    for i, v in enumerate(values[:10] + values[11:15], 1):
        _check(v, forbidden, "ISA", i)
    return d.element.join(["ISA", *values])


def serialize(segments: Iterable[Segment], delimiters: Delimiters, *, newline: str = "") -> bytes:
    """Segments as bytes; ``newline`` (e.g. ``"\\n"`` or ``"\\r\\n"``) is written after each terminator.

    Written in bulk (:func:`_bulk_text`); when that finds a value holding a delimiter, or a segment
    source fails part-way, the segments are written one by one (:func:`_each_text`) so the error raised
    is the one for the first offending segment, as if they had been written in order.
    """
    if newline and delimiters.all().intersection(newline):
        raise X12WriteError("newline characters may not be delimiters")
    end = delimiters.segment + newline
    seen: list[Segment] = []
    try:
        seen.extend(segments)
    except Exception:
        _each_text(seen, delimiters, end)  # a writer error before the failure is raised first
        raise
    try:
        text = _bulk_text(seen, delimiters, end)
    except X12WriteError:
        text = None
    if text is None:
        text = _each_text(seen, delimiters, end)
    return text.encode("utf-8", "surrogateescape")


def _each_text(segments: Iterable[Segment], d: Delimiters, end: str) -> str:
    """The reference form: each segment checked and written on its own, in order."""
    return "".join(format_segment(s, d) + end for s in segments)


def _bulk_text(
    segments: Sequence[Segment | str], d: Delimiters, end: str, checked: Iterable[str] = ()
) -> str | None:
    """Every segment written without per-segment checks, then all plain values checked at once.

    Plain segments (every element a string) are joined and right-stripped of element separators, which
    trims the trailing empty elements only if no value holds a separator; so all their values are then
    searched for any delimiter in one pass, and None (write one by one) when one holds any. The others
    (ISA, composites, repetitions) take :func:`format_segment` with its own checks, once per segment
    object: the builders keep the segments a batch repeats (an EQ, UM, HI, SV1 ...), so the same
    immutable object comes again and again, and its text with it (``segments`` holds every object for
    the whole call, so no ``id`` is reused meanwhile).

    A ``str`` among ``segments`` is a line its caller wrote already (the envelope writer's ST and SE);
    the values it wrote into it come in ``checked``, searched for delimiters with the others.
    """
    sep = d.element
    lines: list[str] = []
    plain: list[tuple[Element, ...]] = []
    written: dict[int, str] = {}  # id of a segment taken by format_segment -> its text
    for s in segments:
        if s.__class__ is str:
            lines.append(s)  # a line written by the caller
            continue
        text = written.get(id(s))
        if text is not None:
            lines.append(text)
            continue
        tag, elements = s.tag, s.elements  # type: ignore[union-attr]  # a Segment
        if tag != "ISA":
            try:
                lines.append(f"{tag}{sep}{sep.join(elements)}".rstrip(sep))  # type: ignore[arg-type]
            except TypeError:  # a composite or repetition
                pass
            else:
                plain.append(elements)
                continue
        text = written[id(s)] = format_segment(s, d)  # type: ignore[arg-type]  # a Segment
        lines.append(text)
    values = "".join(chain(checked, chain.from_iterable(plain)))  # type: ignore[arg-type]  # strings only
    if any(c in values for c in (sep, d.component, d.repetition, d.segment)):
        return None
    lines.append("")
    return end.join(lines)
