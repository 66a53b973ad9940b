"""ISA09/ISA10 checked by hand (``_valid_isa_date``/``_valid_isa_time``) exactly as strptime checks them."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from transactions.validation import _valid_datetime, _valid_isa_date, _valid_isa_time

# ASCII digits above all (the common shape), plus what strptime's regex also reads: a space (``%d``
# takes " 1"), other Unicode digits (``\\d``), letters and signs
_CHARS = st.sampled_from("0123456789012345678901234567890123456789 +-aZ\u0661\u0969\uff10")
_TEXTS = st.one_of(
    st.text(_CHARS, max_size=8),
    st.from_regex(r"\A[0-9]{6}\Z"),
    st.from_regex(r"\A[0-9]{4}\Z"),
    st.text(max_size=7),
)


@settings(max_examples=3000)
@given(_TEXTS)
@example("000229")  # 2000-02-29: leap
@example("690229")  # 1969: not leap
@example("680229")  # 2068: leap
@example("240231")
@example("241 1")
@example("991231")
@example("2359")
@example("2400")
@example("0060")
@example("123")
def test_isa_date_and_time_pass_exactly_what_strptime_reads(text: str) -> None:
    """Every text is a valid ISA09 date (``%y%m%d``) and ISA10 time (``%H%M``) by the hand checks
    exactly when ``datetime.strptime`` (the reference) reads it with that format."""
    assert _valid_isa_date(text) == _valid_datetime(text, "%y%m%d")
    assert _valid_isa_time(text) == _valid_datetime(text, "%H%M")


def test_every_six_digit_date_and_four_digit_time_agrees_with_strptime() -> None:
    """All 10**6 six-digit dates are too many; every month and day of a leap, a plain and a 19xx
    year (and out-of-range months and days), and every four-digit time, agree with strptime."""
    for year in ("00", "23", "68", "69", "99"):
        for month in range(100):
            for day in range(100):
                text = f"{year}{month:02d}{day:02d}"
                assert _valid_isa_date(text) == _valid_datetime(text, "%y%m%d"), text
    for n in range(10_000):
        text = f"{n:04d}"
        assert _valid_isa_time(text) == _valid_datetime(text, "%H%M"), text
