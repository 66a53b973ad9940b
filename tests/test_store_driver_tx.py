"""The SQLite writers' shared connection begins and ends its transactions on the driver (``BEGIN
IMMEDIATE``/``COMMIT``/``ROLLBACK`` on pysqlite, SQLAlchemy's transaction left open on it): what a
block writes is one transaction whichever path ran its statements, invisible to readers until it
commits; a COMMIT that fails leaves nothing and a fresh connection for the next writer; a write
nested on the same thread goes its own way and meets SQLite's lock, as before."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.store import ConstraintError, Store, StoreUnavailableError, driver_commits, sqlite_url
from tests.store_fixtures import record_received


def _names(store: Store) -> list[str]:
    with store.read() as tx:
        return sorted(f.name for f in tx.files.query(limit=1000))


def _meta(store: Store, key: str) -> str | None:
    with store.read() as tx:
        row = tx.conn.execute(text("SELECT value FROM store_meta WHERE key = :k"), {"k": key}).first()
    return None if row is None else str(row[0])


def _put_meta(store_tx_conn: object, key: str) -> None:
    """A row written through SQLAlchemy's own execution path (not the fast path)."""
    store_tx_conn.execute(  # type: ignore[attr-defined]
        text("INSERT INTO store_meta (key, value) VALUES (:k, 'v')"), {"k": key}
    )


def test_both_statement_paths_commit_together_and_readers_see_nothing_before(tmp_path: Path) -> None:
    """A fast-path INSERT and one through ``Connection.execute`` in one block: each sees the other,
    a reader sees neither until the block ends (a real BEGIN), then both (one COMMIT)."""
    with Store.open(sqlite_url(tmp_path / "g.db")) as store:
        before = driver_commits()
        with store.begin() as tx:
            record_received(tx, "fast")
            _put_meta(tx.conn, "slow")
            inside = tx.conn.execute(text("SELECT count(*) FROM files")).scalar_one()
            seen_from_outside = (_names(store), _meta(store, "slow"))
        assert inside == 1
        assert seen_from_outside == ([], None)
        assert (_names(store), _meta(store, "slow")) == (["fast"], "v")
        assert driver_commits() == before + 1


def test_a_raising_block_rolls_back_both_paths_and_the_connection_writes_on(tmp_path: Path) -> None:
    """An error in the block undoes the fast path's and SQLAlchemy's statements alike (one ROLLBACK);
    the same shared connection then commits the next block."""
    with Store.open(sqlite_url(tmp_path / "g.db")) as store:
        conns: list[int] = []

        def failing() -> None:
            with store.begin() as tx:
                conns.append(id(tx.conn))
                record_received(tx, "lost")
                _put_meta(tx.conn, "lost")
                raise RuntimeError("the caller's failure")

        with pytest.raises(RuntimeError):
            failing()
        with store.begin() as tx:
            conns.append(id(tx.conn))
            record_received(tx, "kept")
        assert (_names(store), _meta(store, "lost")) == (["kept"], None)
        assert conns[0] == conns[1]


def test_a_failed_commit_leaves_nothing_and_a_fresh_connection_for_the_next_write(tmp_path: Path) -> None:
    """A COMMIT refused by SQLite (a foreign key checked at commit) raises ConstraintError with
    nothing written; the writer's connection is dropped and the next block commits on a new one."""
    with Store.open(sqlite_url(tmp_path / "g.db")) as store:
        conns: list[object] = []

        def refused() -> None:
            with store.begin() as tx:
                conns.append(tx.conn)
                record_received(tx, "lost")
                tx.conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # checked at COMMIT, not now
                tx.envelopes.record_interchange(
                    file_id=987654, control_number=1, sender="ZZ:A", receiver="ZZ:B"
                )

        with pytest.raises(ConstraintError):
            refused()
        with store.begin() as tx:
            conns.append(tx.conn)
            record_received(tx, "after")
        assert _names(store) == ["after"]
        assert conns[0] is not conns[1]
        assert conns[0].closed  # type: ignore[attr-defined]


def test_a_write_nested_on_the_same_thread_meets_the_outer_ones_lock(tmp_path: Path) -> None:
    """A write block opened inside another on the same thread does not share its transaction: it
    waits on SQLite's lock and fails busy; the outer block still commits what it wrote."""
    with Store.open(sqlite_url(tmp_path / "g.db"), busy_timeout_ms=100) as store:

        def nested() -> None:
            with store.begin() as inner:
                record_received(inner, "inner")

        with store.begin() as outer:
            record_received(outer, "outer")
            with pytest.raises(StoreUnavailableError):
                nested()
        assert _names(store) == ["outer"]


def test_threads_writing_through_both_paths_lose_nothing(tmp_path: Path) -> None:
    """Four threads, each block writing on both paths: every row of every block is there, once."""
    with Store.open(sqlite_url(tmp_path / "g.db")) as store:

        def write(n: int) -> None:
            for k in range(10):
                with store.begin() as tx:
                    record_received(tx, f"t{n}-{k}")
                    _put_meta(tx.conn, f"t{n}-{k}")

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = sorted(f"t{n}-{k}" for n in range(4) for k in range(10))
        assert _names(store) == expected
        with store.read() as tx:
            keys = tx.conn.execute(text("SELECT key FROM store_meta WHERE key LIKE 't%'")).scalars().all()
        assert sorted(keys) == expected
