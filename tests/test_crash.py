"""Crash consistency: ``x12gw run`` is killed with SIGKILL at random moments while requests keep
arriving, restarted each time, and in the end every request went out exactly once, every response
came back exactly once, and nothing is left half done.

The gateway runs as a real subprocess (``x12gw run`` with a configuration the test writes); the
clearinghouse simulator runs in this process on loopback. The seed is printed, and
``X12GW_CRASH_SEED`` replays a run. ``make test`` runs 25 kills; the ``slow`` variant runs 200.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.runtime.config import load_config
from gateway.runtime.datakeys import payload_key
from gateway.runtime.fsutil import remove_stale_temp_files
from gateway.store import Store
from gateway.store.sealing import KeyRing, install
from gateway.transport.keys import ensure_key, public_line
from payersim.simulator import ClearinghouseSimulator
from tests.e2e_harness import ROOT, config_text, start_simulator
from tests.exactly_once import Feeder, audit, drained

X12GW = Path(sys.executable).with_name("x12gw")
CI_KILLS = 25
SLOW_KILLS = 200


@dataclass
class CrashWorld:
    """A gateway configuration on disk, the simulator it talks to, and the log of every run."""

    base: Path
    config_path: Path
    sim: ClearinghouseSimulator
    log: Path
    feeder: Feeder
    last_events: Counter[str] = field(default_factory=Counter)

    def start(self) -> subprocess.Popen[bytes]:
        argv = [str(X12GW)] if X12GW.exists() else [sys.executable, "-m", "gateway.cli"]
        with self.log.open("ab") as err:
            return subprocess.Popen(
                [*argv, "run", "--config", str(self.config_path), "--interval", "0.1", "--json-logs"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=self.base,
            )

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def wait_for_start(self, proc: subprocess.Popen[bytes], offset: int, timeout: float = 20.0) -> bool:
        """Until this run has logged 'gateway started' (so kills land in the loop, not in imports)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            with self.log.open("rb") as fh:
                fh.seek(offset)
                if b'"gateway started"' in fh.read():
                    return True
            time.sleep(0.02)
        return False

    def wait_for_event(self, proc: subprocess.Popen[bytes], offset: int, event: str, timeout: float) -> None:
        """Until this run has logged ``event`` (or ``timeout`` passed): polled every few milliseconds."""
        needle = f'"event": "{event}"'.encode()
        deadline = time.monotonic() + timeout
        with self.log.open("rb") as fh:
            while time.monotonic() < deadline and proc.poll() is None:
                fh.seek(offset)
                if needle in fh.read():
                    return
                time.sleep(0.003)

    def note_last_event(self, offset: int) -> None:
        """Remember the last event this run logged before it was killed (how kills spread over stages)."""
        with self.log.open("rb") as fh:
            fh.seek(offset)
            lines = fh.read().splitlines()
        for line in reversed(lines):
            try:
                self.last_events[str(json.loads(line).get("event"))] += 1
            except ValueError:
                continue
            return


@pytest.fixture
def world(tmp_path: Path, phi_log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CrashWorld]:
    # the killed processes run this checkout's code (the installed script imports wherever it was
    # installed from: another checkout's, in a worktree)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    keys = tmp_path / "keys"
    ensure_key(keys / "client")
    sim = start_simulator(tmp_path / "clearinghouse", ensure_key(keys / "host"), public_line(keys / "client"))
    base = tmp_path / "gw"
    base.mkdir()
    config_path = base / "gateway.toml"
    config_path.write_text(
        config_text(port=sim.port, host_key_line=sim.host_key_line, key_file=keys / "client", remote_root="")
    )
    log = phi_log_dir / f"crash-{tmp_path.name}.log"
    rng = random.Random()
    try:
        yield CrashWorld(base, config_path, sim, log, Feeder(base / "inbox", rng))
    finally:
        sim.stop()


def _seed() -> int:
    return int(os.environ.get("X12GW_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))


# Half the kills come at a random moment; the others a few milliseconds after one of these events, so
# the windows right after a side effect (a file claimed, a batch recorded, an upload or a download
# finished, responses applied) are hit often rather than by luck.
STAGE_EVENTS = (
    "inbox file processed",
    "batch queued",
    "file uploaded",
    "file downloaded",
    "inbound file processed",
)


def _kill_loop(world: CrashWorld, kills: int, rng: random.Random) -> None:
    """Start, let it work for a random moment (feeding more requests meanwhile), SIGKILL; repeat."""
    for _ in range(kills):
        world.feeder.feed(rng.randint(1, 3))
        offset = world.log_size()
        proc = world.start()
        try:
            assert world.wait_for_start(proc, offset), "the gateway did not start"
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0.0, 0.3))
                world.feeder.feed(1)
            if rng.random() < 0.5:
                world.wait_for_event(proc, offset, rng.choice(STAGE_EVENTS), timeout=3.0)
                time.sleep(rng.uniform(0.0, 0.05))
            else:
                time.sleep(rng.uniform(0.0, 1.2))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        world.note_last_event(offset)


def _finish(world: CrashWorld) -> Store:
    """One last run without kills until everything is settled, then a clean SIGTERM stop."""
    config = load_config(world.config_path)
    offset = world.log_size()
    proc = world.start()
    store = Store.open(config.database_url())
    install(store.engine.dialect, KeyRing(payload_key(config)))  # the key file the earlier runs made
    try:
        assert world.wait_for_start(proc, offset), "the gateway did not start"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not drained(store, world.sim.root, world.feeder.fed):
            assert proc.poll() is None, "the gateway exited on its own"
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, f"SIGTERM should stop the gateway cleanly (exit {code})"
    return store


def _crash_run(world: CrashWorld, kills: int) -> None:
    seed = _seed()
    rng = random.Random(seed)
    world.feeder.rng = random.Random(seed + 1)
    world.feeder.feed(4)
    _kill_loop(world, kills, rng)
    store = _finish(world)
    try:
        config = load_config(world.config_path)
        problems = audit(store, config.folders, world.sim.root, world.feeder.fed)
    finally:
        store.close()
    summary = {
        "event": "crash test summary",
        "seed": seed,
        "kills": kills,
        "requests": len(world.feeder.fed),
        "last_event_before_kill": dict(world.last_events.most_common()),
    }
    with world.log.open("a") as out:  # kept beside the gateway's own log lines
        out.write(json.dumps(summary) + "\n")
    assert not problems, f"{summary} (replay with X12GW_CRASH_SEED={seed}):\n" + "\n".join(problems)


def test_sigkill_at_random_moments_is_exactly_once(world: CrashWorld) -> None:
    """25 SIGKILLs at random moments: every request sent once, answered once, one result, no leftovers."""
    _crash_run(world, CI_KILLS)


@pytest.mark.slow
def test_sigkill_two_hundred_times_is_exactly_once(world: CrashWorld) -> None:
    """The same with 200 kills (run with ``pytest -m slow``)."""
    _crash_run(world, SLOW_KILLS)


def test_temporary_files_left_by_a_killed_write_are_swept_once_old(tmp_path: Path) -> None:
    """A kill inside atomic_write leaves '.NAME.<hex>.tmp'; old ones are removed, fresh ones (a live
    writer's) and every other name are kept."""
    outbox = tmp_path / "outbox"
    (outbox / "ab").mkdir(parents=True)
    old = [outbox / ".GW-1.json.0a1b2c3d.tmp", outbox / "ab" / ".abcdef.9f8e7d6c.tmp"]
    fresh = outbox / ".GW-2.json.11223344.tmp"
    others = [outbox / "GW-3.json", outbox / ".GW-4.json.notahex.tmp", outbox / "note.tmp"]
    for path in [*old, fresh, *others]:
        path.write_text("x")
    now = time.time()
    for path in [*old, *others]:
        os.utime(path, (now - 3600, now - 3600))
    assert remove_stale_temp_files(outbox, now=now, older_than=600) == 2
    assert not any(p.exists() for p in old)
    assert fresh.exists()
    assert all(p.exists() for p in others)
