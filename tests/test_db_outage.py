"""The run loop outlives its database (issue 19): a PostgreSQL database that refuses connections for
20 s and a SQLite database on a filesystem that fills up. `x12gw run` keeps running, logs the outage
once when it starts and once when it ends, `x12gw status` reports it (critical), and the work resumes
by itself with every request still sent and answered exactly once."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from gateway.runtime.config import load_config
from gateway.runtime.outage import BACKOFF_MAX, STALE_SECONDS, OutageWatch, read_states, state_path
from gateway.store import Store
from gateway.store.errors import StoreUnavailableError
from gateway.store.sealing import KeyRing, install, parse_key
from gateway.transport.keys import ensure_key, public_line
from payersim.simulator import ClearinghouseSimulator
from tests.e2e_harness import config_text, start_simulator
from tests.exactly_once import Feeder, audit, drop, eligibility, settled
from tests.progress import wait_progressing
from tests.store_fixtures import require_postgres

X12GW = Path(sys.executable).with_name("x12gw")
PAYLOAD_KEY = "6d" * 32
ENV = {
    **os.environ,
    "X12GW_MEMBER_HASH_KEY": "outage-test-key-0123456789",
    "X12GW_PAYLOAD_KEY": PAYLOAD_KEY,
}
DOWN = b"database unavailable; the run loop waits and retries"
BACK = b"database available again; work resumes"
REFUSAL_SECONDS = 20.0  # the scenario's length (how long PostgreSQL refuses), not a test deadline


def _argv() -> list[str]:
    return [str(X12GW)] if X12GW.exists() else [sys.executable, "-m", "gateway.cli"]


@dataclass
class Rig:
    """One `x12gw run` process with its simulator, configuration, feeder and a store to watch it by."""

    base: Path
    sim: ClearinghouseSimulator
    config: Path
    log: Path
    feeder: Feeder
    proc: subprocess.Popen[bytes] | None = None
    store: Store | None = None
    files: int = 0
    refs: list[str] = field(default_factory=list)

    def start(self) -> None:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*_argv(), "run", "--config", str(self.config), "--interval", "0.2", "--json-logs"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=self.base,
                env=ENV,
            )

    def feed(self, files: int, per_file: int = 5) -> None:
        for _ in range(files):
            self.files += 1
            docs = []
            for i in range(per_file):
                ref, member = f"DO-{self.files:03d}-{i:03d}", f"ZZM7{self.files:03d}{i:05d}"
                docs.append(eligibility(ref, member))
                self.feeder.fed[ref] = "270"
            drop(self.feeder.inbox, f"outage-{self.files:03d}.json", json.dumps(docs).encode())

    def alive(self) -> None:
        assert self.proc is not None
        assert self.proc.poll() is None, f"x12gw run exited ({self.proc.returncode}):\n{self.tail()}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def log_size(self) -> int:
        return self.log.stat().st_size

    def count(self, line: bytes) -> int:
        return self.log.read_bytes().count(line)

    def open_store(self, url: str) -> Store:
        self.store = Store.open(url)
        install(self.store.engine.dialect, KeyRing(parse_key(PAYLOAD_KEY)))
        return self.store

    def progress(self) -> tuple[Any, ...]:
        """What changes while the gateway works: its log and the requests' states."""
        assert self.store is not None
        with self.store.read() as tx:
            return (self.log_size(), tuple(sorted((r["state"], r["count"]) for r in tx.requests.count())))

    def wait_settled(self, what: str) -> None:
        assert self.store is not None
        store = self.store
        wait_progressing(lambda: settled(store, self.feeder.fed), self.progress, what, check=self.alive)

    def wait_log(self, line: bytes, what: str) -> None:
        wait_progressing(lambda: line in self.log.read_bytes(), self.log_size, what, check=self.alive)

    def status(self) -> tuple[int, dict[str, Any]]:
        done = subprocess.run(
            [*_argv(), "status", "--config", str(self.config), "--json"],
            capture_output=True,
            cwd=self.base,
            env=ENV,
            timeout=120,
            check=False,
        )
        return done.returncode, json.loads(done.stdout)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


@contextlib.contextmanager
def rig(tmp_path: Path, database_url: str) -> Iterator[Rig]:
    keys = tmp_path / "keys"
    ensure_key(keys / "client")
    sim = start_simulator(tmp_path / "clearinghouse", ensure_key(keys / "host"), public_line(keys / "client"))
    base = tmp_path / "gw"
    base.mkdir()
    config = base / "gateway.toml"
    text = config_text(
        port=sim.port,
        host_key_line=sim.host_key_line,
        key_file=keys / "client",
        remote_root="",
        database_url=database_url,
    )
    config.write_text(text.replace('[gateway]\nusage = "T"', '[gateway]\nusage = "T"\nlease_seconds = 10'))
    r = Rig(base, sim, config, tmp_path / "run.log", Feeder(base / "inbox", random.Random(19), prefix="DO"))
    try:
        yield r
    finally:
        if r.proc is not None and r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()
        if r.store is not None:
            r.store.close()
        sim.stop()


def _run_loop_problem(doc: dict[str, Any]) -> bool:
    return any("run loop" in p["message"] and "database unavailable" in p["message"] for p in doc["problems"])


def _finish(r: Rig) -> None:
    """Stop the run loop cleanly; the outage was logged once each way; exactly once held."""
    assert r.stop() == 0, r.tail()
    assert r.count(DOWN) == 1, f"outage start logged {r.count(DOWN)} times"
    assert r.count(BACK) == 1, f"outage end logged {r.count(BACK)} times"
    assert r.store is not None
    problems = audit(r.store, load_config(r.config).folders, r.sim.root, r.feeder.fed)
    assert not problems, "\n".join(problems[:30])


# ------------------------------------------------------------------------------------------ PostgreSQL


@contextlib.contextmanager
def own_database(base_url: str) -> Iterator[tuple[str, str, str]]:
    """A database of this test's own (never the shared ``test`` one, whose connections other people
    use): (SQLAlchemy URL, libpq admin URL on the shared database, name). Dropped afterwards."""
    name = f"x12gw_outage_{secrets.token_hex(6)}"
    admin = make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False), admin, name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def refuse_connections(admin: str, name: str, refuse: bool) -> None:
    """ALLOW_CONNECTIONS false plus ending every session on it (or allow them again)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if refuse else "true"}')
        if refuse:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )


@pytest.mark.postgres
def test_run_outlives_postgres_refusing_connections(tmp_path: Path) -> None:
    """PostgreSQL refuses connections for 20 s: run keeps going, status says so, work resumes once."""
    with own_database(require_postgres()) as (url, admin, name), rig(tmp_path, url) as r:
        r.feed(3)
        r.start()
        r.wait_log(b"gateway started", "the run loop to start")
        r.open_store(url)
        r.wait_settled("the first requests to be answered")
        refuse_connections(admin, name, refuse=True)
        refused_at = time.monotonic()
        r.feed(3)  # arrives while the database is away
        r.wait_log(DOWN, "the outage to be logged")
        code, doc = r.status()
        assert code == 2, doc
        assert doc["database"] == "unreachable"
        assert _run_loop_problem(doc), doc["problems"]
        while time.monotonic() - refused_at < REFUSAL_SECONDS:
            r.alive()
            time.sleep(0.5)
        refuse_connections(admin, name, refuse=False)
        r.wait_settled("every request to be answered after the database came back")
        r.wait_log(BACK, "the end of the outage to be logged")
        code, doc = r.status()
        assert not _run_loop_problem(doc), doc["problems"]
        assert [loop["database"] for loop in doc["run_loops"]] == ["available"]
        _finish(r)


# ------------------------------------------------------------------------------------ SQLite, disk full


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` at ``where``; skip when this machine does not let us mount one."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.skip(
            "cannot mount a tmpfs for the full-filesystem test (needs root or CAP_SYS_ADMIN): "
            + done.stderr.decode(errors="replace").strip()
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=60)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; the file is returned (remove it to free space)."""
    filler = folder / "filler"
    chunk = b"\0" * (64 * 1024)
    # unbuffered: a buffered file would try its unwritten tail again on close and raise ENOSPC there
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    with contextlib.suppress(OSError), filler.open("ab", buffering=0) as fh:  # the last bytes that fit
        while True:
            fh.write(b"\0")
    return filler


def test_run_outlives_sqlite_on_a_full_filesystem(tmp_path: Path) -> None:
    """The SQLite filesystem fills up: run keeps going, status says so, work resumes once freed."""
    with small_tmpfs(tmp_path / "dbfs", "24m") as fs:
        url = f"sqlite:///{fs / 'gateway.db'}"
        with rig(tmp_path, url) as r:
            r.feed(2)
            r.start()
            r.wait_log(b"gateway started", "the run loop to start")
            r.open_store(url)
            r.wait_settled("the first requests to be answered")
            filler = fill(fs)
            r.feed(6, per_file=10)  # arrives while the database cannot grow
            r.wait_log(DOWN, "the outage to be logged")
            r.alive()
            code, doc = r.status()
            assert code == 2, doc
            assert _run_loop_problem(doc), doc["problems"]
            assert any("SQLITE_FULL" in p["message"] for p in doc["problems"]), doc["problems"]
            filler.unlink()
            r.wait_settled("every request to be answered after space came back")
            r.wait_log(BACK, "the end of the outage to be logged")
            _finish(r)


# ------------------------------------------------------------------------------ the watch and status


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def error(self, event: str, **_kw: object) -> None:
        self.lines.append(("error", event))

    def info(self, event: str, **_kw: object) -> None:
        self.lines.append(("info", event))


def test_outage_is_logged_once_per_change_with_bounded_backoff(tmp_path: Path) -> None:
    """Ten failed attempts log one error, the return one info line; waits double up to the cap."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    log = _Log()
    watch = OutageWatch(log, "node-1", lambda: now, state_path(tmp_path, "node-1"))
    watch.start()
    waits = [watch.failed(StoreUnavailableError("commit: database unavailable (X)")) for _ in range(10)]
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == BACKOFF_MAX
    assert [r["database"] for r in read_states(tmp_path, now)] == ["unavailable"]
    watch.succeeded()
    watch.succeeded()
    assert log.lines == [
        ("error", "database unavailable; the run loop waits and retries"),
        ("info", "database available again; work resumes"),
    ]
    assert [r["database"] for r in read_states(tmp_path, now)] == ["available"]
    assert state_path(tmp_path, "node-1").stat().st_size == 1024, "overwritten in place, same size"
    watch.stopped()
    assert read_states(tmp_path, now) == []


def test_status_ignores_the_state_file_of_a_killed_run_loop(tmp_path: Path) -> None:
    """A killed process's outage record (pid gone here; or not rewritten for long) is not reported."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    argv = [sys.executable, "-c", "import os; print(os.getpid())"]
    dead = subprocess.run(argv, capture_output=True, check=True)
    records = {
        "gone": {"host": socket.gethostname(), "pid": int(dead.stdout), "database": "unavailable"},
        "old": {"host": "elsewhere", "pid": 1, "database": "unavailable"},
        "live": {"host": "elsewhere", "pid": 1, "database": "unavailable"},
    }
    stamps = {"gone": now, "old": now - timedelta(seconds=STALE_SECONDS + 1), "live": now}
    for name, record in records.items():
        stamped = {**record, "node": name, "updated_at": stamps[name].isoformat()}
        (tmp_path / f"db-health.{name}.json").write_text(json.dumps(stamped))
    assert [r["node"] for r in read_states(tmp_path, now)] == ["live"]
