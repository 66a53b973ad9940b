"""The cross-process writer lock of SQLite file stores (``gateway.store.writelock``), with real processes:
concurrent writers lose nothing, a waiting writer queues in the kernel on the lock file (so it wakes when
the holder commits, not after a busy-handler sleep), a crashed holder releases it, a holder past the busy
timeout is waited out and then SQLite decides as before, nested writes and forks stay safe, and the lock
file is owner-only beside the database (none for in-memory SQLite or PostgreSQL)."""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import signal
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.store import Store, StoreUnavailableError, sqlite_url, writelock
from gateway.store.store import _file_writer_lock
from gateway.store.writelock import FileWriterLock, lock_path
from tests.store_fixtures import record_received

pytest_plugins = ["tests.store_fixtures"]

GUARD = 60.0  # seconds: only a hang trips it; no test outcome depends on how long anything takes
SPAWN = mp.get_context("spawn")


def _rows(store: Store) -> list[tuple[int, str]]:
    with store.read() as tx:
        return sorted((f.id, f.name) for f in tx.files.query(limit=1000))


def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + GUARD
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.01)


def _flock_entries(lock_file: Path) -> list[str]:
    """The kernel's flock entries on ``lock_file`` (``/proc/locks``); a waiter's line has ``->``."""
    inode = f":{lock_file.stat().st_ino} "
    return [
        line for line in Path("/proc/locks").read_text().splitlines() if "FLOCK" in line and inode in line
    ]


def _writer(db: str, tag: str, count: int, start: Any, out: Any) -> None:
    """A child process: wait for ``start``, then ``count`` write transactions of one row each."""
    try:
        with Store.open(sqlite_url(db)) as store:
            start.wait()
            for n in range(count):
                with store.begin() as tx:
                    record_received(tx, f"{tag}-{n:03d}")
        out.put((tag, "ok"))
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        out.put((tag, f"{type(exc).__name__}: {exc}"))


def _scripted(db: str, name: str, busy_timeout_ms: int, commands: Any, out: Any) -> None:
    """A child process driven step by step: 'write' opens a transaction and records ``name`` (and how
    many rows it saw), 'hold' parks inside that transaction until 'commit'."""
    try:
        with Store.open(sqlite_url(db), busy_timeout_ms=busy_timeout_ms) as store:
            out.put("ready")
            assert commands.get() == "write"
            with store.begin() as tx:
                seen = len(tx.files.query(limit=1000))
                record_received(tx, name)
                out.put(("in", seen))
                if commands.get() == "hold":
                    assert commands.get() == "commit"
            out.put("committed")
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        out.put(f"{type(exc).__name__}: {exc}")


def _start_scripted(db: Path, name: str, busy_timeout_ms: int = 60_000) -> tuple[Any, Any, Any]:
    commands, out = SPAWN.Queue(), SPAWN.Queue()
    proc = SPAWN.Process(target=_scripted, args=(str(db), name, busy_timeout_ms, commands, out))
    proc.start()
    assert out.get(timeout=GUARD) == "ready"
    return proc, commands, out


def test_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Three processes writing 40 transactions each at the same moment: all 120 rows are there and
    no process met 'database is locked'."""
    db = tmp_path / "g.db"
    Store.open(sqlite_url(db)).close()
    start, out = SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=_writer, args=(str(db), tag, 40, start, out)) for tag in "abc"]
    for p in procs:
        p.start()
    start.set()
    results = sorted(out.get(timeout=GUARD) for _ in procs)
    for p in procs:
        p.join(timeout=GUARD)
    assert results == [("a", "ok"), ("b", "ok"), ("c", "ok")]
    with Store.open(sqlite_url(db)) as store:
        names = [name for _, name in _rows(store)]
    assert sorted(names) == sorted(f"{tag}-{n:03d}" for tag in "abc" for n in range(40))


def test_a_second_process_queues_on_the_lock_file_and_writes_after_the_first(tmp_path: Path) -> None:
    """While one process is inside a write transaction, another process's writer waits queued in the
    kernel on the lock file (not in SQLite's sleeping busy handler); when the first commits, the second
    goes on, sees the first's row, and its own row comes after it."""
    db = tmp_path / "g.db"
    Store.open(sqlite_url(db)).close()
    first, first_cmd, first_out = _start_scripted(db, "first")
    second, second_cmd, second_out = _start_scripted(db, "second")
    try:
        first_cmd.put("write")
        assert first_out.get(timeout=GUARD) == ("in", 0)
        first_cmd.put("hold")
        second_cmd.put("write")
        _until(lambda: any("->" in line for line in _flock_entries(lock_path(db))), "a queued flock waiter")
        assert second_out.empty()  # still waiting: the first has not committed
        first_cmd.put("commit")
        assert first_out.get(timeout=GUARD) == "committed"
        assert second_out.get(timeout=GUARD) == ("in", 1)  # it saw the first's committed row
        second_cmd.put("go")
        assert second_out.get(timeout=GUARD) == "committed"
    finally:
        for p in (first, second):
            p.join(timeout=GUARD)
    with Store.open(sqlite_url(db)) as store:
        assert [name for _, name in _rows(store)] == ["first", "second"]


def test_a_crashed_holder_releases_the_lock(tmp_path: Path) -> None:
    """A process killed inside a write transaction leaves the lock file unlocked and its row unwritten;
    the next writer commits."""
    db = tmp_path / "g.db"
    Store.open(sqlite_url(db)).close()
    holder, holder_cmd, holder_out = _start_scripted(db, "lost")
    holder_cmd.put("write")
    assert holder_out.get(timeout=GUARD) == ("in", 0)
    holder_cmd.put("hold")
    assert _flock_entries(lock_path(db))  # held
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(timeout=GUARD)
    assert _flock_entries(lock_path(db)) == []
    with Store.open(sqlite_url(db)) as store:
        with store.begin() as tx:
            record_received(tx, "after")
        assert [name for _, name in _rows(store)] == ["after"]


def test_a_holder_past_the_busy_timeout_is_waited_out_and_sqlite_decides(tmp_path: Path) -> None:
    """Another process holding the lock file (but not SQLite's lock) past the busy timeout: the writer
    stops waiting for it and commits through SQLite's own locking, and the holder still holds it."""
    db = tmp_path / "g.db"
    with Store.open(sqlite_url(db), busy_timeout_ms=100) as store:
        ready, release = SPAWN.Event(), SPAWN.Event()
        holder = SPAWN.Process(target=_hold_lock_file, args=(str(lock_path(db)), ready, release))
        holder.start()
        try:
            assert ready.wait(GUARD)
            with store.begin() as tx:
                record_received(tx, "without the file lock")
            assert _flock_entries(lock_path(db))  # the holder's, still
            assert [name for _, name in _rows(store)] == ["without the file lock"]
        finally:
            release.set()
            holder.join(timeout=GUARD)
        with store.begin() as tx:  # and the lock works again afterwards
            record_received(tx, "with it")
        assert [name for _, name in _rows(store)] == ["without the file lock", "with it"]


def _hold_lock_file(path: str, ready: Any, release: Any = None) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    ready.set()
    if release is not None:
        release.wait()
    os.close(fd)


def test_a_write_nested_on_one_thread_times_out_as_before_and_the_outer_commits(tmp_path: Path) -> None:
    """A write opened inside another on the same thread does not take the lock file twice: it meets
    SQLite's busy timeout (StoreUnavailableError, as without the lock), and the outer write commits."""
    with Store.open(sqlite_url(tmp_path / "g.db"), busy_timeout_ms=100) as store:
        with store.begin() as tx:
            record_received(tx, "outer")
            with pytest.raises(StoreUnavailableError), store.begin() as inner:
                record_received(inner, "inner")
        assert [name for _, name in _rows(store)] == ["outer"]
        with store.begin() as tx:
            record_received(tx, "next")
        assert [name for _, name in _rows(store)] == ["outer", "next"]


def test_a_forked_child_does_not_inherit_the_parents_lock(tmp_path: Path) -> None:
    """A child forked while the parent holds the lock has its own descriptor: it cannot take the lock
    the parent holds (a shared descriptor would let it, and would keep the lock alive if the parent died)."""
    lock = FileWriterLock(tmp_path / "x.lock")
    assert lock.acquire(1.0)
    try:
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 only if the lock is refused
            code = 1
            try:
                code = 0 if not lock.acquire(0.0) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        lock.release()
    assert lock.acquire(0.0)  # released: free again
    lock.release()
    lock.close()


def test_the_lock_file_is_owner_only_beside_the_database(tmp_path: Path) -> None:
    """The first write makes ``<database>-writer.lock`` next to the database, mode 0600."""
    db = tmp_path / "g.db"
    with Store.open(sqlite_url(db)) as store, store.begin() as tx:
        record_received(tx, "x")
    path = tmp_path / "g.db-writer.lock"
    assert path == lock_path(db)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_in_memory_sqlite_and_postgresql_have_no_lock_file(store_url: str) -> None:
    """Only SQLite files get a lock file: in-memory SQLite and PostgreSQL write without one (and a
    file store's URL does get one)."""
    is_file = store_url.startswith("sqlite:///")
    for url in ("sqlite://", store_url):
        with Store.open(url) as store:
            assert (_file_writer_lock(store.engine) is not None) == (url == store_url and is_file)
            with store.begin() as tx:
                record_received(tx, "x")
            assert [name for _, name in _rows(store)] == ["x"]


def _free_elsewhere(path: Path) -> bool:
    """Whether another open file (as another process would have) can take the lock right now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also lets go of a lock taken here
    return True


def test_the_lock_is_kept_for_queued_writers_of_the_process_at_most_streak_times(tmp_path: Path) -> None:
    """With a writer of this process queued, a release keeps the lock for it (other processes still
    wait) up to STREAK times in a row; the next release lets it go."""
    path = tmp_path / "x.lock"
    lock = FileWriterLock(path)
    lock.arrive()  # one writer queued throughout
    try:
        assert lock.acquire(1.0)
        for _ in range(writelock.STREAK):
            lock.release()
            assert not _free_elsewhere(path)  # kept for the queued writer
            assert lock.acquire(0.0)  # which takes it without waiting
        lock.release()
        assert _free_elsewhere(path)
    finally:
        lock.depart()
        lock.close()


def test_a_lock_kept_for_a_writer_that_never_takes_it_is_let_go(tmp_path: Path) -> None:
    """A lock kept for a queued writer that gave up instead is released by the helper, so other
    processes do not wait on a lock nobody uses."""
    path = tmp_path / "x.lock"
    lock = FileWriterLock(path)
    lock.arrive()
    assert lock.acquire(1.0)
    lock.release()
    assert not _free_elsewhere(path)
    lock.depart()  # the queued writer gave up
    _until(lambda: _free_elsewhere(path), "the kept lock let go")
    assert lock.acquire(0.0)  # and it can be taken again as usual
    lock.release()
    lock.close()


def test_two_stores_naming_one_file_differently_share_its_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stores opened on one database by an absolute and a relative path, written by threads at once:
    every write commits (they queue on one thread lock and one lock file, none sees it 'already held')."""
    monkeypatch.chdir(tmp_path)
    with Store.open(sqlite_url(tmp_path / "g.db")) as one, Store.open(sqlite_url("g.db")) as two:
        errors: list[BaseException] = []

        def write(store: Store, tag: str) -> None:
            try:
                for n in range(30):
                    with store.begin() as tx:
                        record_received(tx, f"{tag}-{n:02d}")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=write, args=(s, t)) for s, t in ((one, "a"), (two, "b"), (one, "c"))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(GUARD)
        assert errors == []
        assert len(_rows(one)) == 90
