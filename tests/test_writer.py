"""The writer and envelope builder: delimiter safety, trimming, ISA padding, counts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transactions.envelope_reader import read_interchanges
from transactions.envelope_writer import GroupHeader, InterchangeHeader, TransactionBody, build_interchange
from transactions.errors import DelimiterError, X12WriteError
from transactions.segment import Delimiters, Repetition, Segment, seg
from transactions.writer import _each_text, _format_elements, format_segment, serialize

D = Delimiters()
WHEN = datetime(2026, 11, 26, 9, 5, tzinfo=UTC)


def test_refuses_data_containing_a_delimiter() -> None:
    """A value containing a delimiter is refused, naming the element but not the value."""
    with pytest.raises(X12WriteError, match="NM103") as err:
        format_segment(seg("NM1", "IL", "1", "O*BRIEN"), D)
    assert "BRIEN" not in str(err.value)


def test_trims_trailing_empty_elements_and_components() -> None:
    """Trailing empty elements and components are not written."""
    assert format_segment(seg("NM1", "PR", "2", "ACME", None, None, None), D) == "NM1*PR*2*ACME"
    assert format_segment(seg("SV1", ("HC", "99213", ""), None, "UN", "1"), D) == "SV1*HC:99213**UN*1"


def test_repetitions_use_the_repetition_separator() -> None:
    """A Repetition is joined with ISA11."""
    assert format_segment(seg("EQ", Repetition(("30", "1"))), D) == "EQ*30^1"


def test_delimiters_must_be_distinct_single_characters() -> None:
    """Delimiters that repeat or are letters are refused."""
    with pytest.raises(DelimiterError):
        Delimiters("*", "*", ":", "~")
    with pytest.raises(DelimiterError):
        Delimiters("A", "^", ":", "~")


def test_envelope_counts_and_padding() -> None:
    """ISA fields are padded, SE/GE/IEA counts computed and control numbers echoed in trailers."""
    header = InterchangeHeader("ZZ", "SENDER", "ZZ", "RECEIVER", 42, WHEN)
    group = GroupHeader("HS", "SENDER", "RECEIVER", 7, "005010X279A1", WHEN)
    sets = [TransactionBody("270", n, "005010X279A1", (seg("BHT", "0022", "13"),)) for n in (1, 2)]
    data = build_interchange(header, [(group, sets)], D)
    assert data[:106].decode().endswith(":~")
    ic = read_interchanges(data, strict=True)[0]
    assert ic.isa.get(6) == "SENDER         "
    assert ic.isa.get(9) == "261126"
    assert ic.isa.get(10) == "0905"
    assert ic.iea is not None
    assert ic.iea.elements == ("1", "000000042")
    g = ic.groups[0]
    assert g.ge is not None
    assert g.ge.elements == ("2", "7")
    assert [t.se.elements if t.se else None for t in g.transaction_sets] == [("3", "0001"), ("3", "0002")]


def test_isa_field_too_long_is_refused() -> None:
    """A sender id longer than 15 characters cannot be padded and is refused."""
    header = InterchangeHeader("ZZ", "S" * 16, "ZZ", "R", 1, WHEN)
    with pytest.raises(X12WriteError, match="ISA06"):
        build_interchange(header, [], D)


def test_control_numbers_must_fit_nine_digits() -> None:
    """Control numbers outside 1..999999999 are refused rather than truncated."""
    header = InterchangeHeader("ZZ", "S", "ZZ", "R", 1_000_000_000, WHEN)
    with pytest.raises(X12WriteError, match="control number"):
        build_interchange(header, [], D)


_VALUE = st.text(alphabet="AB1 *^:~|\u00e9", max_size=4)


@given(
    st.lists(st.one_of(_VALUE, st.tuples(_VALUE, _VALUE).map(tuple)), max_size=6),
    st.sampled_from([Delimiters(), Delimiters("|", "*", "^", "~"), Delimiters("*", "\x00", ":", "~")]),
)
def test_one_join_fast_path_writes_what_element_by_element_writes(
    elements: list[str | tuple[str, ...]], d: Delimiters
) -> None:
    """Plain segments written in one join equal the element-by-element form, errors included."""
    segment = seg("NM1", *elements)
    try:
        expected: str | type[Exception] = _format_elements(segment, d)
    except X12WriteError as exc:
        with pytest.raises(X12WriteError, match=f"^{exc}$"):
            format_segment(segment, d)
        return
    assert format_segment(segment, d) == expected


_ELEMENT = st.one_of(
    _VALUE,
    st.tuples(_VALUE, _VALUE).map(tuple),
    st.lists(_VALUE, min_size=1, max_size=3).map(lambda vs: Repetition(tuple(vs))),
)
_TAGS = st.sampled_from(["NM1", "HL", "EQ", "ISA"])  # a random ISA fails its widths: an error among others
_SEGMENT = st.builds(lambda tag, els: seg(tag, *els), _TAGS, st.lists(_ELEMENT))


@settings(max_examples=400)
@given(
    st.lists(_SEGMENT, max_size=8),
    st.sampled_from([Delimiters(), Delimiters("|", "*", "^", "~"), Delimiters("*", "\x00", ":", "~")]),
    st.sampled_from(["", "\n"]),
)
def test_bulk_serialize_writes_what_segment_by_segment_writes(
    segments: list[Segment], d: Delimiters, newline: str
) -> None:
    """serialize (bulk join, one delimiter scan) gives the bytes, or the first error, of writing each
    segment on its own in order."""
    try:
        expected = _each_text(segments, d, d.segment + newline).encode("utf-8", "surrogateescape")
    except X12WriteError as exc:
        with pytest.raises(X12WriteError, match=f"^{re.escape(str(exc))}$"):
            serialize(segments, d, newline=newline)
        return
    assert serialize(segments, d, newline=newline) == expected


@settings(max_examples=300)
@given(
    st.lists(_SEGMENT, min_size=1, max_size=4).flatmap(
        lambda pool: st.lists(st.sampled_from(pool), max_size=10)
    ),
    st.sampled_from([Delimiters(), Delimiters("|", "*", "^", "~")]),
)
def test_bulk_serialize_of_repeated_segment_objects(segments: list[Segment], d: Delimiters) -> None:
    """The same segment objects written many times (as the builders' kept segments are) give the bytes,
    or the first error, of writing each occurrence on its own."""
    try:
        expected = _each_text(segments, d, d.segment).encode("utf-8", "surrogateescape")
    except X12WriteError as exc:
        with pytest.raises(X12WriteError, match=f"^{re.escape(str(exc))}$"):
            serialize(segments, d)
        return
    assert serialize(segments, d) == expected


def test_a_failing_segment_source_raises_an_earlier_writer_error_first() -> None:
    """When the segments' source fails part-way, a bad value before the failure is still the error."""

    def source() -> Iterator[Segment]:
        yield seg("NM1", "O*BRIEN")
        raise ValueError("source failed")

    with pytest.raises(X12WriteError, match="NM101"):
        serialize(source(), D)

    def clean_then_fail() -> Iterator[Segment]:
        yield seg("NM1", "OBRIEN")
        raise ValueError("source failed")

    with pytest.raises(ValueError, match="source failed"):
        serialize(clean_then_fail(), D)
