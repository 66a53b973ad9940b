"""Crash consistency in real time: ``x12gw run`` with a CAQH CORE partner is killed with SIGKILL at
random moments (and a few milliseconds after each CORE exchange) while requests keep arriving and
the payer answers slowly; after a last clean run the exactly-once audit for real time holds.

The payer (the simulator's CORE server, mutual TLS) runs in this process. ``X12GW_CRASH_SEED``
replays a run, as in ``tests/test_crash.py``.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.runtime.config import load_config
from gateway.runtime.datakeys import payload_key
from gateway.store import Store
from gateway.store.sealing import KeyRing, install
from payersim.certs import make_pki
from payersim.core_server import CoreFaults, CoreServer
from payersim.scenario import Scenario
from tests.core_support import core_config_lines, mtls_core
from tests.exactly_once import Feeder, audit_realtime, settled
from tests.test_crash import STAGE_EVENTS, CrashWorld, _seed

KILLS = 12
EVENTS = (*STAGE_EVENTS[:2], "core exchange", "inbound file processed")


def _config(server: CoreServer, pki_dir: Path) -> str:
    core = mtls_core(server.url, make_pki(pki_dir), timeout_seconds=2.0, retry_seconds=0.5)
    return "\n".join([*core_config_lines(core, partner=("poll_seconds = 0.1",)), ""])


@pytest.fixture
def world(tmp_path: Path, phi_log_dir: Path) -> Iterator[tuple[CrashWorld, CoreServer]]:
    pki_dir = tmp_path / "pki"
    server = CoreServer(
        Scenario(), pki=make_pki(pki_dir), auth="mtls", faults=CoreFaults(latency_seconds=0.05)
    )
    server.start()
    base = tmp_path / "gw"
    base.mkdir()
    config_path = base / "gateway.toml"
    config_path.write_text(_config(server, pki_dir))
    log = phi_log_dir / f"core-crash-{tmp_path.name}.log"
    try:
        yield CrashWorld(base, config_path, None, log, Feeder(base / "inbox", random.Random())), server  # type: ignore[arg-type]
    finally:
        server.stop()


def _expected(fed: dict[str, str]) -> dict[str, str]:
    """Real time with the default scenario approves every 278 at once (no pend)."""
    return {ref: "278" if kind == "278-pend" else kind for ref, kind in fed.items()}


def _done(store: Store, config_path: Path, fed: dict[str, str]) -> bool:
    outbox = load_config(config_path).folders.outbox
    if not settled(store, fed):
        return False
    with store.read() as tx:
        if any(tx.files.query(state=s, direction="out") for s in ("queued", "uploading")):
            return False
        trackings = [r.tracking_number for r in tx.requests.query(limit=10_000)]
    return all((outbox / f"{t}.json").exists() for t in trackings)


def test_kill_x12gw_run_during_core_exchanges(world: tuple[CrashWorld, CoreServer]) -> None:
    """SIGKILL at random moments and right after CORE exchanges, then one clean run: the real-time
    exactly-once audit finds nothing (retransmissions after a kill mid-POST are allowed)."""
    crash, server = world
    seed = _seed()
    rng = random.Random(seed)
    crash.feeder.rng = random.Random(seed + 1)
    crash.feeder.feed(3)
    for _ in range(KILLS):
        crash.feeder.feed(rng.randint(1, 2))
        offset = crash.log_size()
        proc = crash.start()
        try:
            assert crash.wait_for_start(proc, offset), "the gateway did not start"
            if rng.random() < 0.5:
                crash.wait_for_event(proc, offset, rng.choice(EVENTS), timeout=3.0)
                time.sleep(rng.uniform(0.0, 0.05))
            else:
                time.sleep(rng.uniform(0.0, 1.0))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    fed = _expected(crash.feeder.fed)
    config = load_config(crash.config_path)
    offset = crash.log_size()
    proc = crash.start()
    store = Store.open(config.database_url())
    install(store.engine.dialect, KeyRing(payload_key(config)))
    try:
        assert crash.wait_for_start(proc, offset), "the gateway did not start"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _done(store, crash.config_path, fed):
            assert proc.poll() is None, "the gateway exited on its own"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        received = [r.payload for r in server.received]
        problems = audit_realtime(store, config.folders, received, fed, retransmissions=True)
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()
    assert not problems, f"seed {seed} (replay with X12GW_CRASH_SEED={seed}):\n" + "\n".join(problems)
