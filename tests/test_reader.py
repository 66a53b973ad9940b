"""The streaming reader: delimiter detection, tolerated whitespace, streaming, and clear errors."""

from __future__ import annotations

import pytest

from transactions.envelope_reader import read_interchanges
from transactions.errors import DelimiterError, IsaError, NotX12Error, TruncatedError, X12SyntaxError
from transactions.reader import SegmentReader, iter_segments
from transactions.segment import Repetition
from transactions.writer import serialize

ISA = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261126*1200*^*00501*"
ISA += "000000001*0*T*:~"
BODY = (
    "GS*HS*S*R*20261126*1200*1*X*005010X279A1~ST*270*0001*005010X279A1~BHT*0022*13*X1*20261126*1200~"
    "EQ*30^1^33~SV1*HC:99213:26~SE*4*0001~GE*1*1~IEA*1*000000001~"
)
DOC = ISA + BODY


def redelimit(text: str, element: str, rep: str, comp: str, term: str) -> str:
    table = str.maketrans({"*": element, "^": rep, ":": comp, "~": term})
    return text.translate(table)


def test_reads_segments_and_structures_elements() -> None:
    """Elements come back as plain strings, composites (tuples) and repetitions."""
    segs = list(iter_segments(DOC.encode()))
    assert [s.tag for s in segs] == ["ISA", "GS", "ST", "BHT", "EQ", "SV1", "SE", "GE", "IEA"]
    eq = segs[4]
    assert isinstance(eq.elements[0], Repetition)
    assert eq.repeats(1) == ("30", "1", "33")
    assert segs[5].composite(1) == ("HC", "99213", "26")
    assert segs[0].get(13) == "000000001"


@pytest.mark.parametrize("sep", ["\n", "\r\n", "\r", "", "\n\n  "])
def test_tolerates_line_breaks_and_indentation_after_terminators(sep: str) -> None:
    """CR, LF, CRLF, nothing, or blank lines plus indentation between segments all read the same."""
    text = ISA + sep + BODY.replace("~", "~" + sep)
    assert [s.tag for s in iter_segments(text.encode())] == [s.tag for s in iter_segments(DOC.encode())]


def test_bom_and_blank_lines_between_interchanges() -> None:
    """A UTF-8 BOM and blank lines between two interchanges are skipped."""
    data = b"\xef\xbb\xbf" + DOC.encode() + b"\r\n\r\n" + DOC.encode()
    assert len(read_interchanges(data)) == 2


@pytest.mark.parametrize(
    "delims",
    [
        ("|", "^", ":", "~"),
        ("!", "~", "^", "\n"),
        ("\x1d", "\x1f", "\x1e", "\x1c"),
        ("*", ">", ":", "~"),
        ("^", "!", "|", "\x07"),
    ],
)
def test_any_single_byte_delimiters(delims: tuple[str, str, str, str]) -> None:
    """Any four distinct single-byte delimiters, including control characters and ~ as repetition."""
    text = redelimit(DOC, *delims)
    segs = list(iter_segments(text.encode("latin-1")))
    assert segs[4].repeats(1) == ("30", "1", "33")
    assert segs[5].composite(1) == ("HC", "99213", "26")


def test_interchanges_with_different_delimiters_in_one_file() -> None:
    """Each ISA sets the delimiters for its own interchange."""
    data = DOC.encode() + redelimit(DOC, "|", "!", ">", "\n").encode()
    ics = read_interchanges(data)
    assert [ic.delimiters.element for ic in ics] == ["*", "|"]
    assert [t.set_id for ic in ics for t in ic.transaction_sets()] == ["270", "270"]


def test_streaming_in_tiny_chunks_equals_whole_read() -> None:
    """Segments split across chunk boundaries (even 1-byte chunks) read the same."""
    data = (DOC + "\n" + DOC).encode()
    chunks = [data[i : i + 1] for i in range(len(data))]
    assert list(iter_segments(chunks)) == list(iter_segments(data))


def test_reader_reports_offsets_and_numbers() -> None:
    """After each segment the reader knows its byte offset and 1-based number."""
    reader = SegmentReader(DOC.encode())
    seen = [(s.tag, reader.offset, reader.number) for s in reader]
    assert seen[0] == ("ISA", 0, 1)
    assert seen[1] == ("GS", 106, 2)


def test_not_x12() -> None:
    """Data that does not start with ISA is refused as not X12."""
    with pytest.raises(NotX12Error, match="does not start with an ISA"):
        list(iter_segments(b'{"json": true}'))


def test_isa_wrong_length_names_position_without_data() -> None:
    """A short ISA field is refused with the offset and no element data."""
    bad = DOC.replace("SENDER         ", "SENDER", 1)
    with pytest.raises(IsaError) as err:
        list(iter_segments(bad.encode()))
    assert err.value.offset == 0
    assert "SENDER" not in str(err.value)


def test_delimiters_not_distinct() -> None:
    """An ISA whose component separator equals the element separator is refused."""
    bad = ISA[:104] + "*~" + BODY
    with pytest.raises(DelimiterError):
        list(iter_segments(bad.encode()))


def test_truncated_segment() -> None:
    """Data ending inside a segment is refused with the segment number."""
    with pytest.raises(TruncatedError) as err:
        list(iter_segments(DOC[:-5].encode()))
    assert err.value.segment == 9


def test_truncated_interchange_strict() -> None:
    """In strict mode an interchange without IEA is an error; otherwise it is represented."""
    data = DOC.replace("IEA*1*000000001~", "").encode()
    with pytest.raises(TruncatedError):
        read_interchanges(data, strict=True)
    assert read_interchanges(data)[0].iea is None


def test_truncated_isa() -> None:
    """A file cut inside the ISA is reported as truncated."""
    with pytest.raises(TruncatedError):
        list(iter_segments(DOC[:50].encode()))


def test_garbage_segment_id_does_not_echo_data() -> None:
    """A segment whose id is not 2-3 letters/digits is refused without quoting it."""
    bad = DOC.replace("BHT*", "SECRET NAME*", 1)
    with pytest.raises(X12SyntaxError) as err:
        list(iter_segments(bad.encode()))
    assert "SECRET" not in str(err.value)


def test_non_utf8_bytes_round_trip() -> None:
    """Bytes that are not UTF-8 survive reading and writing unchanged."""
    data = DOC.replace("X1", "X\xe91").encode("latin-1")
    reader = SegmentReader(data)
    segs = list(reader)
    assert reader.delimiters is not None
    assert serialize(segs, reader.delimiters) == data
