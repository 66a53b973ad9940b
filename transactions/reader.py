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

import re
from collections.abc import Generator, Iterable, Iterator

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
        if rep in raw:  # occurrences split at once when none holds a component separator
            occurrences = raw.split(rep)
            if comp in raw:
                values.append(Repetition(_component_value(r, comp) for r in occurrences))
            else:
                values.append(Repetition(occurrences))
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

    Segments are cut in bulk: once an ISA has given the delimiters, a window of up to ``window`` bytes
    ending at a segment terminator is decoded once and split with ``str.split`` (segments, then
    elements), so the Python work is per segment, never per character. The window bounds memory when
    the source is one large ``bytes``; a segment longer than the window, a non-ASCII terminator or the
    incomplete tail of a chunk falls back to reading one segment at a time.
    """

    def __init__(self, source: bytes | Iterable[bytes], *, window: int = 1 << 20) -> None:
        self._chunks = _chunks(source)
        self._buf = b""
        self._pos = 0
        self._base = 0  # stream offset of self._buf[0]
        self._eof = False
        self._window = max(1, window)
        self._tags: set[str] = set()  # segment ids already checked, so each is checked once
        self._filler = _filler(None)
        self._isa_start = _isa_start(None, self._filler)
        self.offset = 0
        self.number = 0
        self.delimiters: Delimiters | None = None
        self.unplain = 0
        """The number of the last segment read, or to be read from the current window, that may hold
        a string :func:`plain_window` does not pass (a window that failed it, a segment read on its
        own, an ISA): a transaction set that starts after it is plain throughout."""

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
        skip = self._filler.encode("ascii")
        while True:
            if self._base == 0 and self._pos == 0:
                if len(self._buf) < 3 and self._more():
                    continue
                if self._buf.startswith(BOM):
                    self._pos = 3
            # Filler is a few bytes, so strip a short head rather than copying the whole buffer.
            head = self._buf[self._pos : self._pos + 64]
            skipped = len(head) - len(head.lstrip(skip))
            self._pos += skipped
            if skipped < len(head):
                return True
            if self._pos < len(self._buf):
                continue
            if not self._more():
                return False

    def _need(self, count: int) -> bool:
        while len(self._buf) - self._pos < count:
            if not self._more():
                return False
        return True

    def __iter__(self) -> Iterator[Segment]:
        while self._skip_filler():
            self._need(3)
            if self._buf.startswith(b"ISA", self._pos):
                self._start_segment()
                yield self._read_isa()
                continue
            bulk = self.delimiters is not None and self.delimiters.segment.isascii()
            if not bulk or not (yield from self._read_block()):
                self._start_segment()
                yield self._read_segment()

    def _start_segment(self) -> None:
        """Before a segment read on its own (an ISA, or outside a window): not known to be plain."""
        self.offset = self._base + self._pos
        self.number += 1
        self.unplain = self.number

    def _read_block(self) -> Generator[Segment, None, bool]:
        """Yield the complete segments of one window, up to the next ISA; False if there are none."""
        assert self.delimiters is not None  # noqa: S101 - guarded by the caller
        d = self.delimiters
        buf, pos, term = self._buf, self._pos, d.segment.encode("ascii")
        last = buf.rfind(term, pos, pos + self._window)
        if last < 0:
            return False
        # A new interchange may change the delimiters: stop at the terminator before its ISA.
        isa = self._isa_start.search(buf, pos, last)
        if isa is not None:
            last = isa.start()
        block = buf[pos:last]
        decoded = block.decode("utf-8", "surrogateescape")
        pieces = decoded.split(d.segment)
        # Offsets count bytes: for ASCII data the decoded pieces have the same lengths.
        raws: list[str] | list[bytes] = pieces if block.isascii() else block.split(term)
        if not plain_window(block, term):
            self.unplain = self.number + len(pieces)
        filler, tags, element, rep, comp = self._filler, self._tags, d.element, d.repetition, d.component
        # a separator the whole window lacks is not looked for segment by segment
        has_rep, has_comp = rep in decoded, comp in decoded
        offset = self._base + pos
        number = self.number
        for piece, raw in zip(pieces, raws, strict=True):
            text = piece.lstrip(filler)
            number += 1
            self.offset = offset + len(piece) - len(text)
            self.number = number
            offset += len(raw) + 1
            parts = text.split(element)
            tag = parts[0]
            if tag not in tags:
                self._check_tag(tag)
            if (has_rep and rep in text) or (has_comp and comp in text):
                yield Segment(*split_elements(text, d))
            else:
                del parts[0]  # the elements: no slice copied
                yield Segment(tag, tuple(parts))
        self._pos = last + 1
        return True

    def _check_tag(self, tag: str) -> None:
        if not _is_segment_id(tag):
            raise X12SyntaxError(
                "segment id is not 2-3 letters or digits", offset=self.offset, segment=self.number
            )
        self._tags.add(tag)

    def _read_isa(self) -> Segment:
        if not self._need(ISA_LENGTH):
            raise TruncatedError("data ends inside the ISA segment", offset=self.offset, segment=self.number)
        header = self._buf[self._pos : self._pos + ISA_LENGTH]
        segment, self.delimiters = parse_isa(header, self.offset, self.number)
        self._filler = _filler(self.delimiters)
        self._isa_start = _isa_start(self.delimiters, self._filler)
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
        if tag not in self._tags:
            self._check_tag(tag)
        return Segment(tag, elements)


def _filler(delimiters: Delimiters | None) -> str:
    """Whitespace tolerated between segments: the blanks that are not delimiters themselves."""
    delims = delimiters.all() if delimiters else frozenset()
    return "".join(chr(b) for b in sorted(_WHITESPACE) if chr(b) not in delims)


def _isa_start(delimiters: Delimiters | None, filler: str) -> re.Pattern[bytes]:
    """A segment terminator, then filler, then ``ISA``: where the next interchange starts."""
    term = re.escape(delimiters.segment.encode("latin-1")) if delimiters else b"~"
    return re.compile(term + b"[" + re.escape(filler.encode("ascii")) + b"]*ISA")


def plain_window(block: bytes, terminator: bytes) -> bool:
    """Whether every string read from ``block`` (a window of whole segments, without its last
    terminator) is one ``mappings.mapper.plain_texts`` passes, answered for the window at once: its
    bytes are printable ASCII but for line breaks right after a terminator (CR LF or LF: the filler
    each segment's ``lstrip`` takes off), with no backslash, and not both quote characters.
    Delimiters are no part of any string, so a window whose delimiters fail this (a control
    character, a backslash, a quote) answers False, as does any other filler: the mapper then asks
    ``plain_texts`` itself, as it always did. False may be wrong; True never is."""
    other = block.translate(None, _PRINTABLE)  # the bytes that are not printable ASCII
    if other:
        if other.strip(b"\r\n"):
            return False
        crlf = block.count(terminator + b"\r\n")
        if block.count(b"\r") != crlf or block.count(b"\n") != crlf + block.count(terminator + b"\n"):
            return False
    return b"\\" not in block and not (b"'" in block and b'"' in block)


_PRINTABLE = bytes(range(0x20, 0x7F))


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
