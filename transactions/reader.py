"""Streaming X12 reader: bytes in, segments and envelope events out.

The reader never holds more than one chunk plus one segment in memory, so a 100 MB file is read in
bounded memory. Delimiters are taken from each ISA (element separator at offset 3, repetition
separator ISA11 at 82, component separator ISA16 at 104, segment terminator at 105), so a file may
hold several interchanges with different delimiters. CR/LF (or any whitespace that is not itself a
delimiter) between segments, a UTF-8 byte-order mark and blank lines between interchanges are
tolerated. Element bytes are decoded as UTF-8 with ``surrogateescape`` so that any byte sequence
round-trips exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from transactions.errors import DelimiterError, IsaError, NotX12Error, TruncatedError, X12SyntaxError
from transactions.segment import Composite, Delimiters, Element, Repetition, Segment

ISA_LENGTH = 106
ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
BOM = b"\xef\xbb\xbf"
_WHITESPACE = frozenset(b" \t\r\n")
# 4010 interchanges carry a standards id ("U") in ISA11 instead of a repetition separator.
NO_REPETITION = "\x00"


def _chunks(source: bytes | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield bytes(source)
        return
    for chunk in source:
        if chunk:
            yield bytes(chunk)


def parse_isa(header: bytes, offset: int, number: int) -> tuple[Segment, Delimiters]:
    """Read the fixed-width ISA header (exactly 106 bytes) into a segment and its delimiters."""
    element = header[3:4]
    # ISA16 is itself a delimiter, so only the first 15 fields are split on the element separator.
    fields = header[:103].split(element)
    if (
        header[103:104] != element
        or len(fields) != 16
        or tuple(len(f) for f in fields[1:]) != ISA_WIDTHS[:15]
    ):
        raise IsaError(
            "ISA segment is not the fixed 106 characters (16 fixed-width fields)",
            offset=offset,
            segment=number,
            raw_isa=header,
        )
    values = (*(f.decode("latin-1") for f in fields[1:]), chr(header[104]))
    repetition = values[10]
    if values[11] < "00501" and (repetition.isalnum() or repetition == " "):
        repetition = NO_REPETITION
    try:
        delimiters = Delimiters(element.decode("latin-1"), repetition, values[15], chr(header[105]))
    except DelimiterError as exc:
        raise DelimiterError(exc.reason, offset=offset, segment=number, raw_isa=header) from None
    return Segment("ISA", values), delimiters


def split_elements(text: str, delimiters: Delimiters) -> tuple[str, tuple[Element, ...]]:
    """Split one segment's text (without terminator) into its id and structured element values."""
    parts = text.split(delimiters.element)
    rep, comp = delimiters.repetition, delimiters.component
    values: list[Element] = []
    for raw in parts[1:]:
        if rep in raw:
            values.append(Repetition(_component_value(r, comp) for r in raw.split(rep)))
        elif comp in raw:
            values.append(tuple(raw.split(comp)))
        else:
            values.append(raw)
    return parts[0], tuple(values)


def _component_value(raw: str, comp: str) -> str | Composite:
    return tuple(raw.split(comp)) if comp in raw else raw


class SegmentReader:
    """Iterate the segments of one or more interchanges.

    After each yielded segment, ``offset`` is its byte offset, ``number`` its 1-based position in the
    stream and ``delimiters`` the delimiters of the interchange it belongs to.
    """

    def __init__(self, source: bytes | Iterable[bytes]) -> None:
        self._chunks = _chunks(source)
        self._buf = b""
        self._pos = 0
        self._base = 0  # stream offset of self._buf[0]
        self._eof = False
        self.offset = 0
        self.number = 0
        self.delimiters: Delimiters | None = None

    def _more(self) -> bool:
        """Append the next chunk to the buffer, dropping what was consumed; False at end of data."""
        if self._eof:
            return False
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._eof = True
            return False
        self._base += self._pos
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def _skip_filler(self) -> bool:
        """Skip whitespace (and a leading BOM) before a segment; False when only filler remains."""
        delims = self.delimiters.all() if self.delimiters else frozenset()
        skip = frozenset(b for b in _WHITESPACE if chr(b) not in delims)
        while True:
            if self._base == 0 and self._pos == 0:
                if len(self._buf) < 3 and self._more():
                    continue
                if self._buf.startswith(BOM):
                    self._pos = 3
            buf, pos = self._buf, self._pos
            while pos < len(buf) and buf[pos] in skip:
                pos += 1
            self._pos = pos
            if pos < len(buf):
                return True
            if not self._more():
                return False

    def _need(self, count: int) -> bool:
        while len(self._buf) - self._pos < count:
            if not self._more():
                return False
        return True

    def __iter__(self) -> Iterator[Segment]:
        while self._skip_filler():
            self.offset = self._base + self._pos
            self.number += 1
            self._need(3)
            if self._buf[self._pos : self._pos + 3] == b"ISA":
                yield self._read_isa()
            else:
                yield self._read_segment()

    def _read_isa(self) -> Segment:
        if not self._need(ISA_LENGTH):
            raise TruncatedError("data ends inside the ISA segment", offset=self.offset, segment=self.number)
        header = self._buf[self._pos : self._pos + ISA_LENGTH]
        segment, self.delimiters = parse_isa(header, self.offset, self.number)
        self._pos += ISA_LENGTH
        return segment

    def _read_segment(self) -> Segment:
        if self.delimiters is None:
            raise NotX12Error(
                "data does not start with an ISA segment", offset=self.offset, segment=self.number
            )
        term = self.delimiters.segment.encode("latin-1")
        end = self._buf.find(term, self._pos)
        while end < 0:
            searched = len(self._buf) - self._pos
            if not self._more():
                raise TruncatedError(
                    "data ends inside a segment (no segment terminator)",
                    offset=self.offset,
                    segment=self.number,
                )
            end = self._buf.find(term, self._pos + searched)
        text = self._buf[self._pos : end].decode("utf-8", "surrogateescape")
        self._pos = end + 1
        tag, elements = split_elements(text, self.delimiters)
        if not _is_segment_id(tag):
            raise X12SyntaxError(
                "segment id is not 2-3 letters or digits", offset=self.offset, segment=self.number
            )
        return Segment(tag, elements)


def _is_segment_id(tag: str) -> bool:
    """2-3 ASCII letters or digits; lower case is read too, so that the validator can reject the one
    set holding it (IK304 1) instead of the whole interchange."""
    return 2 <= len(tag) <= 3 and tag.isascii() and tag.isalnum()


def iter_segments(source: bytes | Iterable[bytes]) -> Iterator[Segment]:
    """Convenience wrapper: the segments of ``source`` without position bookkeeping."""
    return iter(SegmentReader(source))


def detect_delimiters(data: bytes) -> Delimiters:
    """Delimiters of the first interchange in ``data`` (which must start with an ISA)."""
    reader = SegmentReader(data[: ISA_LENGTH + 8])
    first = next(iter(reader), None)
    if first is None or first.tag != "ISA" or reader.delimiters is None:
        raise NotX12Error("data does not start with an ISA segment", offset=0)
    return reader.delimiters
