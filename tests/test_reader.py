"""The streaming reader: delimiter detection, tolerated whitespace, streaming, and clear errors."""

from __future__ import annotations

import tracemalloc
from dataclasses import astuple
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import public_files
from tests.strategies import delimiters
from transactions.envelope_reader import read_interchanges
from transactions.errors import DelimiterError, IsaError, NotX12Error, TruncatedError, X12SyntaxError
from transactions.reader import SegmentReader, iter_segments
from transactions.segment import Delimiters, Repetition
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


Trace = list[tuple[str, tuple[object, ...], int, int, object]]


def trace(source: bytes | list[bytes], window: int = 1 << 20) -> Trace:
    """Every segment with the position bookkeeping the reader reports after it."""
    reader = SegmentReader(source, window=window)
    return [(s.tag, s.elements, reader.offset, reader.number, reader.delimiters) for s in reader]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("path", public_files(), ids=lambda p: f"{p.parent.name}/{p.name[:40]}")
def test_bulk_split_equals_one_segment_at_a_time_on_public_files(path: Path) -> None:
    """Windows cut in bulk give the same segments, offsets and numbers as reading one segment at a time."""
    data = path.read_bytes() + b"\r\n" + path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    reference = trace(data, window=1)
    assert trace(data) == reference
    assert trace(data, window=97) == reference
    assert trace(chunked(data, 61), window=300) == reference


@settings(max_examples=40)
@given(
    st.lists(st.tuples(delimiters(), st.sampled_from(["", "\n", "\r\n", " \n "])), min_size=1, max_size=3),
    st.integers(1, 400),
    st.integers(1, 200),
    st.sampled_from(["X1", "X\xe9\u20ac1", "LISA", "~ISA"]),
)
def test_bulk_split_equals_one_segment_at_a_time_on_mixed_interchanges(
    parts: list[tuple[Delimiters, str]], window: int, chunk: int, value: str
) -> None:
    """Interchanges with different delimiters, line breaks and non-ASCII data read the same in bulk."""
    docs = []
    for d, sep in parts:
        text = redelimit(ISA + sep + BODY.replace("~", "~" + sep), *astuple(d))
        docs.append(text.replace("X1", value.replace("~", d.element)))
    data = "\n".join(docs).encode("utf-8")
    reference = trace(data, window=1)
    assert [t[0] for t in reference].count("ISA") == len(parts)
    assert trace(data) == reference
    assert trace(chunked(data, chunk), window=window) == reference
    for tag, _elements, offset, _number, _d in reference:
        assert data[offset : offset + len(tag)] == tag.encode()


def test_error_positions_are_the_same_in_bulk() -> None:
    """A bad segment id deep in a window is reported at its own byte offset and segment number."""
    data = (DOC + "\n" + DOC.replace("SV1*", "S V*")).encode()
    errors = []
    for window in (1, 1 << 20):
        with pytest.raises(X12SyntaxError) as err:
            trace(data, window=window)
        errors.append((err.value.offset, err.value.segment))
    assert errors[0] == errors[1] == (data.rindex(b"S V*"), 15)


def test_reading_one_large_bytes_object_holds_one_window() -> None:
    """Memory stays bounded by the window, not the input, when the whole file is one bytes object."""
    one_set = BODY[BODY.index("ST*") : BODY.index("GE*")]
    data = (ISA + BODY[: BODY.index("ST*")] + one_set * 8000 + "GE*1*1~IEA*1*000000001~").encode()
    tracemalloc.start()
    try:
        count = sum(1 for _ in SegmentReader(data, window=1 << 15))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count > 40_000
    assert len(data) > 500_000
    assert peak < 400_000, peak
