"""SQLite writers of one process share one connection under the writer lock: writes from many threads
all commit, a block that raises rolls back and leaves the connection usable, and a database held by
another process fails as before (busy) and the next write works."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.store import Store, StoreUnavailableError, sqlite_url
from tests.store_fixtures import record_received


def _names(store: Store) -> list[str]:
    with store.read() as tx:
        return sorted(f.name for f in tx.files.query(limit=1000))


def test_writes_from_many_threads_all_commit_on_one_connection(tmp_path: Path) -> None:
    """Eight threads writing at once: every row is there, and the writers used one connection."""
    with Store.open(sqlite_url(tmp_path / "g.db")) as store:
        seen: set[int] = set()

        def write(n: int) -> None:
            for k in range(10):
                with store.begin() as tx:
                    seen.add(id(tx.conn))
                    record_received(tx, f"t{n}-{k}")

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert _names(store) == sorted(f"t{n}-{k}" for n in range(8) for k in range(10))
        assert len(seen) == 1


def test_a_block_that_raises_rolls_back_and_the_next_write_commits(tmp_path: Path) -> None:
    """An error inside a write block leaves nothing of it; the shared connection writes on."""
    with Store.open(sqlite_url(tmp_path / "g.db")) as store:

        def failing() -> None:
            with store.begin() as tx:
                record_received(tx, "lost")
                raise RuntimeError("the caller's failure")

        with pytest.raises(RuntimeError):
            failing()
        with store.begin() as tx:
            record_received(tx, "kept")
        assert _names(store) == ["kept"]


def test_a_database_held_by_another_process_is_busy_then_writable(tmp_path: Path) -> None:
    """Another connection holding the write lock past the busy timeout: StoreUnavailableError (as
    before), nothing written; once it lets go, the next write commits."""
    path = tmp_path / "g.db"
    with Store.open(sqlite_url(path), busy_timeout_ms=100) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailableError), store.begin() as tx:
                record_received(tx, "blocked")
        finally:
            other.execute("ROLLBACK")
            other.close()
        with store.begin() as tx:
            record_received(tx, "after")
        assert _names(store) == ["after"]
