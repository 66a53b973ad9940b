"""Crash consistency in real time: ``x12gw run`` with a CAQH CORE partner is killed with SIGKILL at
random moments (and a few milliseconds after each CORE exchange) while requests keep arriving and
the payer answers slowly; after a last clean run the exactly-once audit for real time holds.

The payer (the simulator's CORE server, mutual TLS) runs in this process. ``X12GW_CRASH_SEED``
replays a run, as in ``tests/test_crash.py``.
"""

from __future__ import annotations

import http.client
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gateway.runtime.config import load_config
from gateway.runtime.datakeys import payload_key
from gateway.runtime.runner import open_context
from gateway.store import Store
from gateway.store.sealing import KeyRing, install
from gateway.web import apiauth
from payersim.certs import make_pki
from payersim.core_server import CoreFaults, CoreServer
from payersim.scenario import Scenario
from tests.core_support import core_config_lines, mtls_core
from tests.exactly_once import ROOT, Feeder, audit_realtime, eligibility, settled
from tests.test_crash import STAGE_EVENTS, X12GW, CrashWorld, _seed
from tests.web_support import free_socket

KILLS = 12
EVENTS = (*STAGE_EVENTS[:2], "core exchange", "inbound file processed")


def _config(server: CoreServer, pki_dir: Path) -> str:
    core = mtls_core(server.url, make_pki(pki_dir), timeout_seconds=2.0, retry_seconds=0.5)
    return "\n".join([*core_config_lines(core, partner=("poll_seconds = 0.1",)), ""])


@pytest.fixture
def world(
    tmp_path: Path, phi_log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[CrashWorld, CoreServer]]:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the killed processes run this checkout's code
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


def _kill_moment(
    crash: CrashWorld, proc: subprocess.Popen[bytes], offset: int, rng: random.Random, events: Sequence[str]
) -> None:
    """Wait for the moment to kill at: half the time a few milliseconds after one of ``events`` is
    logged (right after a commit), else a random moment within a second."""
    if rng.random() < 0.5:
        crash.wait_for_event(proc, offset, rng.choice(events), timeout=3.0)
        time.sleep(rng.uniform(0.0, 0.05))
    else:
        time.sleep(rng.uniform(0.0, 1.0))


def _finish_and_audit(crash: CrashWorld, server: CoreServer, fed: dict[str, str], seed: int) -> None:
    """One clean ``x12gw run`` until every fed request is settled and delivered, then the real-time
    exactly-once audit (retransmissions after a kill mid-POST allowed) must find nothing."""
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
            _kill_moment(crash, proc, offset, rng, EVENTS)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    _finish_and_audit(crash, server, _expected(crash.feeder.fed), seed)


# The API's real-time calls: ``x12gw serve`` is killed while billing systems call it. A call is
# recorded, queued and started in one commit and its answer recorded and processed in one commit,
# so the kills are aimed right after each (and after the delivery).
SERVE_KILLS = 6
SERVE_EVENTS = ("api request accepted", "core exchange", "inbound file processed")
CALLS = 24


def _serve(crash: CrashWorld, port: int) -> subprocess.Popen[bytes]:
    argv = [str(X12GW)] if X12GW.exists() else [sys.executable, "-m", "gateway.cli"]
    with crash.log.open("ab") as err:
        return subprocess.Popen(
            [
                *argv,
                "serve",
                "--config",
                str(crash.config_path),
                "--listen",
                f"127.0.0.1:{port}",
                "--json-logs",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=crash.base,
        )


def _healthy(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Until ``serve`` answers /healthz (False if it exited or never did within a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _call_body(ref: str, n: int) -> bytes:
    """One eligibility call's body (payer ACME01, routed to the CORE partner), canary PHI."""
    doc = {k: v for k, v in eligibility(ref, f"ZZM6{n:08d}").items() if k != "type"}
    return json.dumps(doc).encode()


def _clients(port: int, key: str, pending: list[str], bodies: dict[str, bytes], lock: threading.Lock) -> None:
    """Take calls from ``pending`` and POST each under its Idempotency-Key (the reference) until the
    server is gone; a call that got no answer (or a 5xx) goes back to ``pending`` for the retry."""
    while True:
        with lock:
            if not pending:
                return
            ref = pending.pop()
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Idempotency-Key": ref,
        }
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/api/v1/eligibility", body=bodies[ref], headers=headers)
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException):
            status = 0
        # 200 answered, 202 accepted, 409 recorded and still in progress: the store has the call
        if status not in {200, 202, 409}:
            with lock:
                pending.append(ref)
            if status == 0:
                return  # the server was killed


def test_kill_x12gw_serve_during_realtime_api_calls(world: tuple[CrashWorld, CoreServer]) -> None:
    """SIGKILL ``x12gw serve`` while two clients make real-time eligibility calls (kills at random
    moments and a few milliseconds after a call's commit, its answer's commit or its delivery); the
    clients retry every unanswered call under its Idempotency-Key, then the run loop finishes what
    was left: every call has exactly one request, answered once, one result file, each interchange
    sent under its own ISA13 (retransmissions of an interrupted POST allowed)."""
    crash, server = world
    seed = _seed()
    rng = random.Random(seed)
    config = load_config(crash.config_path)
    ctx = open_context(config)
    try:
        _, key = apiauth.add_client(ctx.store, "billing", ("eligibility:write",))
    finally:
        ctx.store.close()
    assert key is not None
    refs = [f"RT-KILL-{n:03d}" for n in range(CALLS)]
    bodies = {ref: _call_body(ref, n) for n, ref in enumerate(refs)}
    pending, lock = list(reversed(refs)), threading.Lock()
    for kill in range(SERVE_KILLS + 1):
        sock = free_socket()
        port = sock.getsockname()[1]
        sock.close()
        offset = crash.log_size()
        proc = _serve(crash, port)
        try:
            assert _healthy(proc, port), "x12gw serve did not start"
            threads = [
                threading.Thread(target=_clients, args=(port, key, pending, bodies, lock)) for _ in range(2)
            ]
            for t in threads:
                t.start()
            if kill == SERVE_KILLS:  # the last run is not killed: every call gets its answer
                for t in threads:
                    t.join()
            else:
                _kill_moment(crash, proc, offset, rng, SERVE_EVENTS)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        for t in threads:
            t.join()
    assert not pending, f"calls never recorded: {pending}"
    # the run loop sends what a kill left queued or uploading, and delivers the rest
    _finish_and_audit(crash, server, dict.fromkeys(refs, "270"), seed)
