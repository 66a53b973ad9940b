"""``base.insert_rows`` (the event log's multi-row INSERTs, parameter names made once per shape)
against the reference it stands for, one plain SQLAlchemy INSERT per row: the same rows in the same
order, on SQLite and PostgreSQL, for every chunking of up to two full statements and a remainder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from gateway.store import Store
from gateway.store import schema as s
from gateway.store.repos.base import ROWS_PER_INSERT, insert_rows

pytest_plugins = ["tests.store_fixtures"]

COLUMNS = ("entity_type", "entity_id", "old_state", "new_state", "at", "detail")
START = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def _rows(count: int, salt: int) -> list[dict[str, Any]]:
    shared = {"file_id": salt}
    return [
        {
            "entity_type": "request" if n % 3 else "file",
            "entity_id": salt * 1000 + n,
            "old_state": None if n % 4 == 0 else "new",
            "new_state": f"s{n % 5}",
            "at": START + timedelta(microseconds=n % 7),
            "detail": None if n % 2 else (shared if n % 3 else {"n": n, "salt": salt}),
        }
        for n in range(count)
    ]


def _logged(store: Store) -> list[tuple[Any, ...]]:
    t = s.state_changes
    with store.read() as tx:
        found = tx.conn.execute(select(*(t.c[c] for c in COLUMNS)).order_by(t.c.id)).all()
    return [tuple(r) for r in found]


@pytest.mark.parametrize("count", [1, 2, 3, ROWS_PER_INSERT - 1, ROWS_PER_INSERT, ROWS_PER_INSERT * 2 + 5])
def test_insert_rows_writes_what_one_insert_per_row_writes(store: Store, count: int) -> None:
    """Each batch (twice, so the remembered names are used again) lands as the reference's rows."""
    batches = [_rows(count, 1), _rows(count, 2)]
    with store.begin() as tx:
        for rows in batches:
            insert_rows(tx.conn, s.state_changes, COLUMNS, rows)
    got = _logged(store)
    with store.begin() as tx:
        tx.conn.execute(s.state_changes.delete())
        for rows in batches:
            for row in rows:
                tx.conn.execute(insert(s.state_changes).values(**row))
    assert got == _logged(store)
    assert len(got) == 2 * count
