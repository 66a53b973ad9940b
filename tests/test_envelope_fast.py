"""build_interchange's one-pass writer against its reference, serialize over interchange_segments.

Headers, control numbers, set ids, versions, bodies and newlines are drawn with values that hold
delimiters, fail their widths or leave their ranges, so every way of writing or refusing an interchange
is compared: the same bytes, or the same error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_writer import _SEGMENT
from transactions.envelope_writer import (
    GroupHeader,
    InterchangeHeader,
    TransactionBody,
    _interchange_text,
    build_interchange,
    interchange_segments,
)
from transactions.errors import X12WriteError
from transactions.segment import Delimiters, seg
from transactions.writer import serialize

WHEN = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CLEAN = st.text(alphabet="AB1 ", max_size=3)
TEXT = st.one_of(*[CLEAN] * 9, st.text(alphabet="AB1 *^:~|", max_size=3))  # mostly writable
CONTROL = st.one_of(*[st.integers(1, 999_999_999)] * 3, st.sampled_from([0, -1, 1_000_000_000]))
PLAIN = st.builds(lambda tag, vs: seg(tag, *vs), st.sampled_from(["NM1", "TRN"]), st.lists(TEXT, max_size=4))
BODY = st.lists(st.one_of(*[PLAIN] * 9, _SEGMENT), max_size=4).map(tuple)
SETS = st.lists(
    st.builds(
        TransactionBody, st.sampled_from(["270", "278", "2*0"]), CONTROL, TEXT | st.just("005010X279A1"), BODY
    ),
    max_size=3,
)
GROUPS = st.lists(
    st.tuples(st.builds(GroupHeader, TEXT, TEXT, TEXT, CONTROL, TEXT, st.just(WHEN)), SETS),
    min_size=1,
    max_size=2,
)
HEADERS = st.builds(
    InterchangeHeader,
    st.just("ZZ") | TEXT,
    st.just("S") | TEXT,
    st.just("ZZ"),
    st.just("R"),
    CONTROL,
    st.just(WHEN),
)
DELIMITERS = st.sampled_from(
    [Delimiters(), Delimiters("|", "*", "^", "~"), Delimiters("*", "\x00", ":", "~")]
)


def outcome(write: Any) -> tuple[str, ...]:
    """The bytes written, or the error raised (its class and message)."""
    try:
        return ("wrote", write().decode("utf-8", "surrogateescape"))
    except Exception as exc:  # noqa: BLE001 - whatever one raises, the other must raise the same
        return ("raised", type(exc).__name__, str(exc))


@settings(max_examples=500)
@given(HEADERS, GROUPS, DELIMITERS, st.sampled_from(["", "\n", "~"]), st.lists(PLAIN, max_size=1))
def test_one_pass_interchange_is_the_reference(
    header: InterchangeHeader, groups: list[Any], d: Delimiters, newline: str, extra: list[Any]
) -> None:
    """Any interchange is written to the same bytes, or refused with the same error, as serialize over
    its segments writes or refuses it."""
    fast = outcome(lambda: build_interchange(header, groups, d, newline=newline, extra=extra))
    reference = outcome(lambda: serialize(interchange_segments(header, groups, d, extra), d, newline=newline))
    assert fast == reference


def test_a_batch_of_built_sets_takes_the_one_pass_writer() -> None:
    """A batch the builders made is written by the one-pass writer itself (not left to the reference),
    to the reference's bytes."""
    from bench.corpus import inquiry  # noqa: PLC0415 - valid inquiries, as a batch has them
    from transactions.build270 import VERSION_270, build_270_body  # noqa: PLC0415

    sets = [TransactionBody("270", i + 1, VERSION_270, build_270_body(inquiry(i), WHEN)) for i in range(5)]
    header = InterchangeHeader("ZZ", "S", "ZZ", "R", 7, WHEN)
    groups = [(GroupHeader("HS", "S", "R", 3, VERSION_270, WHEN), sets)]
    text = _interchange_text(header, groups, Delimiters(), "\n", ())
    assert text is not None
    assert text.encode() == serialize(
        interchange_segments(header, groups, Delimiters()), Delimiters(), newline="\n"
    )


@pytest.mark.parametrize(
    ("set_id", "version"), [("2*0", "005010X279A1"), ("270", "0050~10"), ("270", "00501:")]
)
def test_a_delimiter_in_st01_or_st03_is_refused_as_the_reference_refuses_it(
    set_id: str, version: str
) -> None:
    """ST values the caller gives are searched for delimiters too: the same error as the reference's."""
    header = InterchangeHeader("ZZ", "S", "ZZ", "R", 1, WHEN)
    groups = [
        (GroupHeader("HS", "S", "R", 1, "X", WHEN), [TransactionBody(set_id, 1, version, (seg("NM1", "A"),))])
    ]
    with pytest.raises(X12WriteError) as reference:
        serialize(interchange_segments(header, groups, Delimiters()), Delimiters())
    with pytest.raises(X12WriteError, match=f"^{re.escape(str(reference.value))}$"):
        build_interchange(header, groups, Delimiters())
