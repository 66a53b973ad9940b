"""Scale-out: three `x12gw run` processes share one PostgreSQL database and one set of folders; one is
killed mid-run; every request still goes out exactly once and is answered exactly once, and the work
was spread over the nodes. Also: a second node on SQLite is refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.runtime.config import load_config
from gateway.store import Store
from gateway.store import schema as s
from gateway.store.sealing import KeyRing, install, parse_key
from gateway.transport.keys import ensure_key, public_line
from tests.e2e_harness import config_text, start_simulator
from tests.exactly_once import Feeder, audit, drop, eligibility, settled
from tests.progress import wait_progressing
from tests.store_fixtures import postgres_schema, require_postgres

X12GW = Path(sys.executable).with_name("x12gw")
REQUESTS = 2_000
PER_FILE = 50
PAYLOAD_KEY = "5c" * 32  # several nodes share one database: both keys come from the environment
ENV = {
    **os.environ,
    "X12GW_MEMBER_HASH_KEY": "scale-out-test-key-0123456789",
    "X12GW_PAYLOAD_KEY": PAYLOAD_KEY,
}


def _start(config: Path, log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    argv = [str(X12GW)] if X12GW.exists() else [sys.executable, "-m", "gateway.cli"]
    with log.open("ab") as err:
        return subprocess.Popen(
            [*argv, "run", "--config", str(config), "--interval", "0.2", "--json-logs"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=cwd,
            env=ENV,
        )


def _answered(store: Store) -> int:
    with store.read() as tx:
        return len(tx.requests.query(state="answered", limit=10_000))


def _progress(store: Store, logs: list[Path]) -> tuple[object, ...]:
    """What changes while the nodes work: requests and files per state, and the nodes' logs."""
    with store.read() as tx:
        requests = sorted((str(r["state"]), int(r["count"])) for r in tx.requests.count())
        files = sorted((str(r["state"]), int(r["count"])) for r in tx.files.count_states())
    return (tuple(requests), tuple(files), tuple(log.stat().st_size for log in logs))


def _quarantined(store: Store) -> list[str]:
    """Inbox files in quarantine with their reasons (none is expected: every file is good)."""
    with store.read() as tx:
        rows = tx.files.query(state="quarantined", direction="in", partner="inbox", limit=50)
    return [f"file {r.id}: {r.reason}" for r in rows]


def _alive(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    for proc in procs:
        if proc.poll() is not None:
            tails = "\n".join(log.read_text(errors="replace")[-1500:] for log in logs)
            raise AssertionError(f"a node exited ({proc.returncode}):\n{tails}")


def _node_of_claims(store: Store) -> Counter[str]:
    """Which node claimed each batch of requests (state change new -> batching)."""
    with store.read() as tx:
        rows = tx.conn.execute(
            select(s.state_changes.c.detail).where(
                s.state_changes.c.entity_type == "request", s.state_changes.c.new_state == "batching"
            )
        ).scalars()
        return Counter(str((d or {}).get("node")) for d in rows)


@pytest.mark.postgres
def test_three_nodes_exactly_once_with_one_killed(tmp_path: Path) -> None:
    """2,000 requests through the simulator with three nodes, one SIGKILLed midway: exactly once, spread."""
    with postgres_schema(require_postgres()) as url:
        keys = tmp_path / "keys"
        ensure_key(keys / "client")
        sim = start_simulator(
            tmp_path / "clearinghouse", ensure_key(keys / "host"), public_line(keys / "client")
        )
        base = tmp_path / "gw"
        base.mkdir()
        config_path = base / "gateway.toml"
        text = config_text(
            port=sim.port,
            host_key_line=sim.host_key_line,
            key_file=keys / "client",
            remote_root="",
            database_url=url,
        )
        config_path.write_text(
            text.replace('[gateway]\nusage = "T"', '[gateway]\nusage = "T"\nlease_seconds = 5')
        )
        feeder = Feeder(base / "inbox", random.Random(7), prefix="SO")
        for n in range(REQUESTS // PER_FILE):
            docs = []
            for i in range(PER_FILE):
                ref, member = f"SO-{n:03d}-{i:03d}", f"ZZM8{n:03d}{i:05d}"
                docs.append(eligibility(ref, member))
                feeder.fed[ref] = "270"
            drop(feeder.inbox, f"batch-{n:03d}.json", json.dumps(docs).encode())
        logs = [tmp_path / f"node{i}.log" for i in range(3)]
        procs = [_start(config_path, log, base) for log in logs]
        store = Store.open(url)
        install(store.engine.dialect, KeyRing(parse_key(PAYLOAD_KEY)))
        try:
            # waits on progress, not on the clock: a busy 2-core machine is slow, not wrong
            wait_progressing(
                lambda: _answered(store) >= REQUESTS // 4,
                lambda: _progress(store, logs),
                "a quarter of the requests to be answered",
                check=lambda: _alive(procs, logs),
            )
            procs[1].send_signal(signal.SIGKILL)  # one node dies in the middle of the run
            procs[1].wait()
            survivors = [procs[0], procs[2]]
            wait_progressing(
                lambda: settled(store, feeder.fed),
                lambda: _progress(store, logs),
                lambda: (
                    f"every request to be answered after one node was killed (quarantined: "
                    f"{_quarantined(store) or 'none'})"
                ),
                check=lambda: _alive(survivors, logs),
            )
            time.sleep(1.5)
        finally:
            for p in (procs[0], procs[2]):
                p.send_signal(signal.SIGTERM)
            codes = [p.wait(timeout=60) for p in (procs[0], procs[2])]
            sim.stop()
        assert codes == [0, 0]
        nodes = subprocess.run(
            [str(X12GW), "nodes", "--config", str(config_path), "--json"],
            capture_output=True,
            check=True,
            env=ENV,
            cwd=base,
            timeout=60,
        )
        listed = json.loads(nodes.stdout)
        assert listed["database"] == "postgresql"
        assert len(listed["nodes"]) == 3
        assert sum(1 for n in listed["nodes"] if n["stopped_at"] is not None) == 2, (
            "the killed node never stopped"
        )
        try:
            problems = audit(store, load_config(config_path).folders, sim.root, feeder.fed)
            claims = _node_of_claims(store)
        finally:
            store.close()
        assert not problems, "\n".join(problems[:30])
        assert len([n for n, c in claims.items() if c > 0]) >= 2, f"work not spread: {claims}"


def test_second_node_on_sqlite_is_refused(tmp_path: Path) -> None:
    """SQLite is for one node: a second `x12gw run` on the same database exits 2 with a clear message."""
    keys = tmp_path / "keys"
    ensure_key(keys / "client")
    sim = start_simulator(tmp_path / "clearinghouse", ensure_key(keys / "host"), public_line(keys / "client"))
    base = tmp_path / "gw"
    base.mkdir()
    config_path = base / "gateway.toml"
    config_path.write_text(
        config_text(port=sim.port, host_key_line=sim.host_key_line, key_file=keys / "client", remote_root="")
    )
    first = _start(config_path, tmp_path / "first.log", base)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and b"gateway started" not in (tmp_path / "first.log").read_bytes():
            time.sleep(0.1)
        argv = [str(X12GW)] if X12GW.exists() else [sys.executable, "-m", "gateway.cli"]
        second = subprocess.run(
            [*argv, "run", "--config", str(config_path), "--once"],
            capture_output=True,
            cwd=base,
            env=ENV,
            timeout=60,
            check=False,
        )
        assert second.returncode == 2
        assert b"SQLite supports one node" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        sim.stop()


def test_second_configuration_on_the_same_sqlite_database_is_refused(tmp_path: Path) -> None:
    """The SQLite guard is per database: a second configuration (other state folder) naming the same
    SQLite file is refused with a clear message instead of stealing the first node's leases."""
    keys = tmp_path / "keys"
    ensure_key(keys / "client")
    sim = start_simulator(tmp_path / "clearinghouse", ensure_key(keys / "host"), public_line(keys / "client"))
    shared = tmp_path / "shared" / "gateway.db"
    shared.parent.mkdir(mode=0o700)
    configs = []
    for name in ("first", "second"):
        base = tmp_path / name  # own folders, state included; only the database is the same
        base.mkdir()
        text = config_text(
            port=sim.port,
            host_key_line=sim.host_key_line,
            key_file=keys / "client",
            remote_root="",
            database_url=f"sqlite:///{shared}",
        )
        (base / "gateway.toml").write_text(text)
        configs.append(base / "gateway.toml")
    first = _start(configs[0], tmp_path / "first.log", configs[0].parent)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and b"gateway started" not in (tmp_path / "first.log").read_bytes():
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            time.sleep(0.1)
        argv = [str(X12GW)] if X12GW.exists() else [sys.executable, "-m", "gateway.cli"]
        second = subprocess.run(
            [*argv, "run", "--config", str(configs[1]), "--once"],
            capture_output=True,
            cwd=configs[1].parent,
            env=ENV,
            timeout=120,
            check=False,
        )
        assert second.returncode == 2, second.stderr.decode(errors="replace")[-2000:]
        assert b"SQLite supports one node" in second.stderr
        assert first.poll() is None, "the first node stopped"
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
        sim.stop()
