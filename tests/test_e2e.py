"""End to end through a real SFTP clearinghouse: billing inbox -> 270/278 -> clearinghouse ->
999/271/278 -> records -> outbox, against the paramiko simulator and against OpenSSH's sftp-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.transport.keys import ensure_key, public_line
from payersim.simulator import ClearinghouseSimulator
from tests.e2e_harness import Harness, make_harness, start_simulator
from tests.sftp_support import SftpTarget, public_line_of

pytest_plugins = ["tests.sftp_fixtures"]


@pytest.fixture
def paramiko_world(tmp_path: Path) -> Iterator[tuple[Harness, ClearinghouseSimulator]]:
    """Gateway + simulator whose own paramiko SFTP server the gateway talks to."""
    client_key = ensure_key(tmp_path / "keys" / "client")  # noqa: F841 - written to disk for the config
    host_key = ensure_key(tmp_path / "keys" / "host")
    sim = start_simulator(tmp_path / "clearinghouse", host_key, public_line(tmp_path / "keys" / "client"))
    h = make_harness(
        tmp_path / "gw",
        port=sim.port,
        host_key_line=sim.host_key_line,
        key_file=tmp_path / "keys" / "client",
        remote_root="",
        clearinghouse=sim.root,
    )
    yield h, sim
    h.ctx.store.close()
    sim.stop()


@pytest.fixture
def openssh_world(
    tmp_path: Path, openssh_target: SftpTarget
) -> Iterator[tuple[Harness, ClearinghouseSimulator]]:
    """Gateway talking to OpenSSH's sftp-server; the simulator answers on the same folder on disk."""
    remote, local = openssh_target.new_dir("e2e")
    host_key = ensure_key(tmp_path / "keys" / "host")
    sim = start_simulator(local, host_key, public_line_of(openssh_target.keys.by_kind["ed25519"]))
    h = make_harness(
        tmp_path / "gw",
        port=openssh_target.port,
        host_key_line=openssh_target.host_key_line,
        key_file=openssh_target.keys.by_kind["ed25519"],
        remote_root=remote,
        clearinghouse=local,
        username=openssh_target.username,
    )
    yield h, sim
    h.ctx.store.close()
    sim.stop()


def _full_flow(h: Harness) -> None:
    h.drop_sample("270-subscriber")
    h.drop_sample("270-dependent")
    h.drop_sample("278-outpatient-mri")
    h.drop_sample("278-retroactive")
    h.drop_sample(
        "270-subscriber", name="reject-999.json", trace_number="REJ-999", subscriber__member_id="ZZMREJECT999"
    )
    h.drop_sample("270-subscriber", name="copy-of-subscriber.json")  # same bytes as 270-subscriber.json
    h.drop("broken.json", b'{"type": "270", "trace_number": ')
    refs = ("EL-0001", "EL-0002", "AU-0001", "AU-0006", "REJ-999")
    assert h.run_until(lambda: h.settled(*refs), timeout=40), {k: v.state for k, v in h.requests().items()}

    rows = h.requests()
    assert set(rows) == set(refs), "the duplicate file must not create requests"
    assert h.result(rows["EL-0001"].tracking_number)["status"] == "active"
    assert h.result(rows["EL-0002"].tracking_number)["status"] == "inactive"
    mri = h.result(rows["AU-0001"].tracking_number)
    assert mri["status"] == "approved"
    assert [e["to"] for e in mri["history"]] == ["pended", "approved"]
    assert mri["authorization"]["certification_number"].startswith("SIM")
    assert h.result(rows["AU-0006"].tracking_number)["status"] == "denied"
    rejected = h.result(rows["REJ-999"].tracking_number)
    assert rejected["state"] == "rejected"
    assert "999" in rejected["reason"]

    quarantine = h.config.folders.quarantine
    reasons = {p.name: json.loads(p.read_text()) for p in quarantine.glob("*.reason.json")}
    assert any("duplicate" in r["reason"] for r in reasons.values())
    assert any(r["state"] == "quarantined" and r["file"] == "broken.json" for r in reasons.values())

    traces = h.clearinghouse_traces()
    assert sorted(traces) == sorted(r.tracking_number for r in rows.values()), (
        "each request sent exactly once"
    )
    assert not [p for p in h.config.folders.work.rglob("*") if p.is_file()], "work folder left empty"


def test_full_flow_paramiko(paramiko_world: tuple[Harness, ClearinghouseSimulator]) -> None:
    """Eligibility, pended-then-approved, denial, 999 rejection, duplicate and invalid files (paramiko)."""
    _full_flow(paramiko_world[0])


def test_full_flow_openssh(openssh_world: tuple[Harness, ClearinghouseSimulator]) -> None:
    """The same flow against OpenSSH's sftp-server (sshd started by the test on loopback)."""
    _full_flow(openssh_world[0])


def test_ta1_rejection_rejects_the_interchange(
    paramiko_world: tuple[Harness, ClearinghouseSimulator],
) -> None:
    """A TA1 R from the clearinghouse marks every request of that interchange rejected, with the note."""
    h, _ = paramiko_world
    h.drop_sample("270-subscriber", trace_number="REJ-TA1", subscriber__member_id="ZZMREJECTTA1")
    assert h.run_until(lambda: h.settled("REJ-TA1"), timeout=20)
    row = h.requests()["REJ-TA1"]
    assert row.state == "rejected"
    assert "TA1" in (row.reason or "")


def test_partner_down_then_up(tmp_path: Path, paramiko_world: tuple[Harness, ClearinghouseSimulator]) -> None:
    """While the clearinghouse is down the batch stays queued; when it is back, it is delivered once."""
    h, sim = paramiko_world
    port = sim.port
    sim.stop()
    h.drop_sample("270-subscriber")
    for _ in range(3):
        h.gateway.cycle()
    with h.ctx.store.read() as tx:
        assert [f.state for f in tx.files.query(direction="out")] == ["queued"]
    again = start_simulator(
        sim.root, ensure_key(tmp_path / "keys" / "host"), public_line(tmp_path / "keys" / "client"), port=port
    )
    try:
        assert h.run_until(lambda: h.settled("EL-0001"), timeout=30)
        assert h.clearinghouse_traces() == [h.requests()["EL-0001"].tracking_number]
    finally:
        again.stop()


def test_host_key_mismatch_sends_nothing(
    tmp_path: Path, paramiko_world: tuple[Harness, ClearinghouseSimulator]
) -> None:
    """A clearinghouse presenting another host key is refused: nothing is uploaded, the file stays queued."""
    h, sim = paramiko_world
    other = ensure_key(tmp_path / "keys" / "impostor")
    port = sim.port
    sim.stop()
    impostor = start_simulator(sim.root, other, public_line(tmp_path / "keys" / "client"), port=port)
    try:
        h.drop_sample("270-subscriber")
        for _ in range(3):
            h.gateway.cycle()
        with h.ctx.store.read() as tx:
            assert [f.state for f in tx.files.query(direction="out")] == ["queued"]
            changes = tx.audit.list_changes(entity_type="partner", limit=10)
        assert any(c.new_state == "paused" and "host key" in json.dumps(c.detail) for c in changes)
        assert h.clearinghouse_traces() == []
        assert not list((sim.root / "inbound").glob("*.x12"))
    finally:
        impostor.stop()
