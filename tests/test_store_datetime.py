"""``UtcDateTime``'s one-step SQLite bind processor against the reference it replaced (SQLAlchemy's
chain: ``process_bind_param``, then the SQLite ``DATETIME`` text format): the same stored text for
every aware datetime, the same refusal of naive ones, and the same values read back from a store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator

from gateway.lifecycle import FileState
from gateway.store import Store, sqlite_url
from gateway.store.schema import UtcDateTime

DIALECT = sqlite.dialect()

# any moment (microseconds included) in any fixed offset a zone can have, +-23:59
aware = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    # naive bounds: st.datetimes draws naive values (a zone is attached above)
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),  # noqa: DTZ001
    st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
)


def processors() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(the one-step processor, the reference chain) for SQLite."""
    impl = UtcDateTime().dialect_impl(DIALECT)
    assert isinstance(impl, UtcDateTime)
    fast = impl.bind_processor(DIALECT)
    reference: Callable[[Any], Any] | None = TypeDecorator.bind_processor(impl, DIALECT)
    assert fast is not None
    assert reference is not None
    return fast, reference


@given(aware)
def test_the_one_step_sqlite_bind_writes_the_reference_text(moment: datetime) -> None:
    """Every aware datetime is stored as exactly the text the SQLAlchemy chain wrote (UTC, naive)."""
    fast, reference = processors()
    assert fast(moment) == reference(moment)


@given(st.lists(st.tuples(aware, st.booleans(), st.integers(min_value=0, max_value=5)), max_size=30))
def test_one_sqlite_bind_processor_over_a_run_of_values_writes_the_reference_text(
    picks: list[tuple[datetime, bool, int]],
) -> None:
    """One processor fed a run of UTC and other-zone datetimes, the same objects bound again and
    again (its remembered last value) between others, writes the reference's text for each."""
    fast, reference = processors()
    seen: list[datetime] = []
    for moment, again, back in picks:
        value = seen[-1 - back % len(seen)] if again and seen else moment.astimezone(UTC)
        if not again and back % 2:
            value = moment  # not UTC: converted, never remembered
        seen.append(value)
        for _ in range(2):
            assert fast(value) == reference(value)


def test_the_one_step_sqlite_bind_keeps_none_and_refuses_naive_datetimes() -> None:
    """None stays NULL; a naive datetime is refused by both paths with the same error."""
    fast, reference = processors()
    assert fast(None) is None
    assert reference(None) is None
    naive = datetime(2026, 12, 2, 23, 0)  # noqa: DTZ001 - the naive value under test
    for process in (fast, reference):
        with pytest.raises(ValueError, match="aware datetimes only"):
            process(naive)


def result_processors() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(the one-step result processor, the reference chain) for SQLite."""
    impl = UtcDateTime().dialect_impl(DIALECT)
    assert isinstance(impl, UtcDateTime)
    fast = impl.result_processor(DIALECT, None)
    reference = TypeDecorator.result_processor(impl, DIALECT, None)
    assert fast is not None
    assert reference is not None
    assert fast is not reference
    return fast, reference


@given(aware, st.sampled_from(["stored", "seconds", "offset"]))
def test_the_one_step_sqlite_result_reads_what_the_reference_reads(moment: datetime, form: str) -> None:
    """Any text the column can hold (as we store it, without microseconds, with an offset) reads
    back as the aware UTC datetime SQLAlchemy's chain gives, the same value and zone."""
    fast, reference = result_processors()
    written = processors()[1](moment)
    text = {
        "stored": written,
        "seconds": written[:19],
        "offset": moment.isoformat(" "),
    }[form]
    got, expected = fast(text), reference(text)
    assert (got, got.tzinfo) == (expected, expected.tzinfo)
    assert fast(None) is None
    assert reference(None) is None


def test_a_stored_datetime_reads_back_as_the_same_aware_utc_moment(tmp_path: Path) -> None:
    """Through a real SQLite store: what a row was written with is what it reads back (UTC, aware)."""
    moment = datetime(2026, 12, 2, 18, 4, 5, 123456, tzinfo=timezone(timedelta(hours=-5)))
    with Store.open(sqlite_url(tmp_path / "g.db"), clock=lambda: moment) as store:
        with store.begin() as tx:
            row = tx.files.record(
                direction="in",
                partner="p",
                name="n",
                sha256="a" * 64,
                size=1,
                payload_path=None,
                state=FileState.RECEIVED,
            )
        with store.read() as tx:
            back = tx.files.get(row.id)
    assert back.created_at == moment
    assert back.created_at.tzinfo == UTC
