"""``x12gw run --once`` as cron or a systemd timer runs it: one process per cycle, against the
clearinghouse simulator over real SFTP. The remote-file stability check must hold across processes
(the previous listing is kept in the store), and a failed partner must make ``--once`` exit non-zero."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.lifecycle import Entity, PartnerEvent, PartnerState
from gateway.runtime.config import load_config
from gateway.runtime.health import stored_move
from gateway.runtime.runner import wait_until
from gateway.runtime.storeopen import open_store
from gateway.store import Store
from gateway.transport.keys import ensure_key, public_line
from payersim.simulator import ClearinghouseSimulator
from tests.e2e_harness import REQUESTS, config_text, start_simulator

pytest_plugins = ["tests.store_fixtures"]
MAIN = "import sys; from gateway.cli import main; sys.exit(main(sys.argv[1:]))"


def _run_once(config: Path) -> tuple[int, list[dict[str, Any]]]:
    """One ``x12gw run --once`` in its own process: exit code and its JSON log events."""
    proc = subprocess.run(
        [sys.executable, "-c", MAIN, "run", "--once", "--json-logs", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    events = []
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return proc.returncode, events


def _write_config(base: Path, **settings: Any) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    config = base / "gateway.toml"
    config.write_text(config_text(**settings), encoding="utf-8")
    return config


def _states(config: Path) -> dict[str, str]:
    """client reference -> request state, read from the store the processes share."""
    store = open_store(load_config(str(config)), role="operator")  # the payloads are sealed
    try:
        with store.read() as tx:
            rows = tx.requests.query(limit=100)
        return {str(r.payload.get("client_reference")): str(r.state) for r in rows}
    finally:
        store.close()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ClearinghouseSimulator]:
    ensure_key(tmp_path / "keys" / "client")
    host_key = ensure_key(tmp_path / "keys" / "host")
    client = public_line(tmp_path / "keys" / "client")
    simulator = start_simulator(tmp_path / "clearinghouse", host_key, client)
    yield simulator
    simulator.stop()


def test_listings_are_kept_per_partner_and_hand_back_the_previous(store: Store) -> None:
    """Each listing replaces the stored one of its partner; the caller gets the one before."""
    with store.begin() as tx:
        assert tx.listings.replace("acme", [("a.x12", 10, 1)]) == {}
        assert tx.listings.replace("other", [("a.x12", 99, None)]) == {}
    with store.begin() as tx:
        assert tx.listings.replace("acme", [("a.x12", 12, 2), ("b.x12", 5, None)]) == {"a.x12": (10, 1)}
    with store.read() as tx:
        assert tx.listings.last("acme") == {"a.x12": (12, 2), "b.x12": (5, None)}
        assert tx.listings.last("other") == {"a.x12": (99, None)}
    with store.begin() as tx:
        tx.listings.replace("acme", [])
    with store.read() as tx:
        assert tx.listings.last("acme") == {}


def test_run_once_twice_records_a_271_waiting_on_the_server(
    tmp_path: Path, sim: ClearinghouseSimulator
) -> None:
    """The 999 and 271 waiting on the server are taken by the second of two --once processes."""
    config = _write_config(
        tmp_path / "gw",
        port=sim.port,
        host_key_line=sim.host_key_line,
        key_file=tmp_path / "keys" / "client",
        remote_root="",
    )
    inbox = load_config(str(config)).folders.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "270.json").write_bytes((REQUESTS / "270-subscriber.json").read_bytes())
    code, _ = _run_once(config)  # intake, batch, upload
    assert code == 0
    assert _states(config) == {"EL-0001": "sent"}
    assert wait_until(lambda: len(list(sim.outbound.glob("[!.]*"))) >= 2, timeout=30), "999 and 271 written"
    for _ in range(2):
        code, _ = _run_once(config)
        assert code == 0
    assert _states(config) == {"EL-0001": "answered"}
    assert not list(sim.outbound.glob("[!.]*")), "both files taken and deleted remotely"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_once_exits_1_when_the_partner_failed(tmp_path: Path, sim: ClearinghouseSimulator) -> None:
    """A partner that cannot be reached: --once exits 1 and its cycle summary counts the error."""
    config = _write_config(
        tmp_path / "gw",
        port=_closed_port(),
        host_key_line=sim.host_key_line,
        key_file=tmp_path / "keys" / "client",
        remote_root="",
        retry_attempts=1,
    )
    code, events = _run_once(config)
    assert code == 1
    cycles = [e for e in events if e.get("event") == "cycle"]
    assert cycles, events
    assert cycles[-1]["errors"] >= 1
    assert cycles[-1]["level"] == "warning"


def test_a_pause_logged_by_an_earlier_process_ends_with_a_good_exchange(
    tmp_path: Path, sim: ClearinghouseSimulator
) -> None:
    """A pause another process logged is resumed (logged) by the next successful --once exchange."""
    config = _write_config(
        tmp_path / "gw",
        port=sim.port,
        host_key_line=sim.host_key_line,
        key_file=tmp_path / "keys" / "client",
        remote_root="",
    )
    loaded = load_config(str(config))
    loaded.folders.ensure()
    store = Store.open(loaded.database_url())
    try:
        with store.begin() as tx:
            detail = {"partner": "sim", "reason": "down", "minutes": 0.0}
            tx.audit.record_move(Entity.PARTNER, 0, PartnerState.ACTIVE, PartnerEvent.PAUSE, detail)
        code, _ = _run_once(config)
        assert code == 0
        with store.read() as tx:
            last = stored_move(tx, "sim")
        assert last is not None
        assert last.new_state == PartnerState.ACTIVE
        assert last.old_state == PartnerState.PAUSED
    finally:
        store.close()
