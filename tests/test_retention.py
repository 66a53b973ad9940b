"""Retention and backups: `x12gw purge` removes only finished data past its period (never work in
flight), in batches, audited; a backup made the way README says restores to a working gateway."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.lifecycle import RequestState
from gateway.runtime.context import Context
from gateway.runtime.retention import Cutoffs, purge
from gateway.runtime.runner import open_context
from gateway.stages import intake
from gateway.store import hash_member_id
from tests.e2e_harness import REQUESTS
from tests.lifecycle_support import walk_request
from tests.protection_support import cli, drop, write_config

OLD = datetime(2015, 3, 1, tzinfo=UTC)
RECENT = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("X12GW_PAYLOAD_KEY", "X12GW_MEMBER_HASH_KEY"):
        monkeypatch.delenv(name, raising=False)


def _take(ctx: Context, when: datetime, name: str, sample: str, final_state: RequestState | None) -> str:
    """Take one inbox file at ``when``; move its request to ``final_state`` (None: leave it in flight)."""
    ctx.store.clock = lambda: when
    drop(ctx.config.folders.inbox, name, (REQUESTS / sample).read_bytes())
    assert intake.intake(ctx) == 1
    with ctx.store.read() as tx:
        req = max(tx.requests.query(), key=lambda r: r.id)
    if final_state is not None:
        with ctx.store.begin() as tx:
            walk_request(tx, req.tracking_number, final_state)
    return req.tracking_number


def _aged(path: Path, when: datetime) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(b"x")
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def test_purge_removes_finished_old_data_and_never_work_in_flight(tmp_path: Path) -> None:
    """Old answered request and its file go; an old request still waiting, recent data, and payloads a
    kept row refers to stay; old archive/quarantine/outbox files go; a dry run changes nothing."""
    config, _ = write_config(tmp_path)
    ctx = open_context(config)
    try:
        done_old = _take(ctx, OLD, "old-done.json", "270-subscriber.json", RequestState.ANSWERED)
        waiting_old = _take(ctx, OLD, "old-waiting.json", "270-dependent.json", RequestState.SENT)
        done_new = _take(
            ctx, RECENT, "new-done.json", "270-several-service-types.json", RequestState.ANSWERED
        )
        with ctx.store.read() as tx:
            payload_shas = {f.name: f.sha256 for f in tx.files.query(direction="in")}
        for sha in payload_shas.values():
            _aged(ctx.payloads.path_for(sha), OLD)  # every stored payload is old on disk
        stray = _aged(ctx.payloads.path_for("f" * 64), OLD)  # referenced by no row
        folders = config.folders
        old_files = [
            _aged(folders.archive / "9__old.json", OLD),
            _aged(folders.quarantine / "8__q.json", OLD),
        ]
        old_files.append(_aged(folders.outbox / "GW-1.json", OLD))
        new_files = [
            _aged(folders.archive / "10__new.json", RECENT),
            _aged(folders.outbox / "GW-2.json", RECENT),
        ]
        in_flight = _aged(folders.inbox / "arriving.json", OLD)
        cutoffs = Cutoffs.of(config, NOW, None)  # [retention] defaults: seven years

        dry = purge(config, ctx.store, cutoffs, dry_run=True, batch=1)
        assert dry["requests"] == 1
        assert all(p.exists() for p in [*old_files, stray])
        counts = purge(config, ctx.store, cutoffs, dry_run=False, batch=1)

        with ctx.store.read() as tx:
            kept = {r.tracking_number for r in tx.requests.query()}
            files = {f.name for f in tx.files.query(direction="in")}
        assert kept == {waiting_old, done_new}
        assert done_old not in kept
        assert files == {"old-waiting.json", "new-done.json"}
        assert counts["requests"] == 1
        assert counts["files"] == 1, counts
        assert counts["payload_files"] == 2  # old-done's payload and the stray one
        assert dry["payload_files"] == 1  # a dry run keeps the rows, so their payloads still count as used
        assert not stray.exists()
        assert not ctx.payloads.path_for(payload_shas["old-done.json"]).exists()
        assert ctx.payloads.path_for(payload_shas["old-waiting.json"]).exists()
        assert not any(p.exists() for p in old_files)
        assert all(p.exists() for p in [*new_files, in_flight])
        again = purge(config, ctx.store, cutoffs, dry_run=False, batch=1)
        assert not any(again.values())  # nothing left to do: a repeated or resumed purge is harmless
    finally:
        ctx.store.close()


def test_purge_command_logs_and_audits(tmp_path: Path, phi_log_dir: Path) -> None:
    """`x12gw purge --older-than 7y` reports its counts, logs them, and leaves a 'purge' audit entry;
    `--dry-run` leaves none."""
    config, path = write_config(tmp_path)
    ctx = open_context(config)
    try:
        _take(ctx, OLD, "old.json", "270-subscriber.json", RequestState.ANSWERED)
    finally:
        ctx.store.close()
    dry = cli(
        ["purge", "--older-than", "7y", "--dry-run", "--json", "--config", str(path)], phi_log_dir, "p1"
    )
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["counts"]["requests"] == 1
    done = cli(["purge", "--older-than", "7y", "--json", "--config", str(path)], phi_log_dir, "purge")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["requests"] == 1
    assert '"purge finished"' in done.stderr
    audit = cli(["audit", "list", "--json", "--config", str(path)], phi_log_dir, "purge-audit")
    entries = json.loads(audit.stdout)["entries"]
    assert [e["action"] for e in entries] == ["purge"]
    assert entries[0]["detail"]["requests"] == 1


def test_backup_made_as_documented_restores_to_a_working_gateway(tmp_path: Path, phi_log_dir: Path) -> None:
    """README's backup (sqlite3 .backup, payloads, key files, config) restored elsewhere: the schema is
    current, the request reads back with its PHI (audited reveal) and a member search finds it."""
    if shutil.which("sqlite3") is None:
        pytest.skip("the sqlite3 command-line shell is not installed")
    config, path = write_config(tmp_path / "live")
    ctx = open_context(config)
    try:
        tracking = _take(ctx, RECENT, "restore-me.json", "270-subscriber.json", None)
        with ctx.store.read() as tx:
            (req,) = tx.requests.query()
    finally:
        ctx.store.close()
    member = req.payload["subscriber"]["member_id"]
    live = path.parent
    backup = tmp_path / "backup"
    backup.mkdir(mode=0o700)
    # The documented steps (README: backup and restore), with the gateway's base folder as LIVE:
    subprocess.run(
        ["sqlite3", str(live / "state" / "gateway.db"), f".backup '{backup / 'gateway.db'}'"], check=True
    )
    subprocess.run(
        ["tar", "-C", str(live), "-czf", str(backup / "files.tgz"), "payloads", "gateway.toml"], check=True
    )
    subprocess.run(
        [
            "tar",
            "-C",
            str(live),
            "-czf",
            str(backup / "keys.tgz"),
            "state/payload.key",
            "state/member_hash.key",
        ],
        check=True,
    )
    restored = tmp_path / "restored"
    (restored / "state").mkdir(parents=True)
    shutil.copy(backup / "gateway.db", restored / "state" / "gateway.db")
    subprocess.run(["tar", "-C", str(restored), "-xzf", str(backup / "files.tgz")], check=True)
    subprocess.run(["tar", "-C", str(restored), "-xzf", str(backup / "keys.tgz")], check=True)
    shutil.rmtree(live)  # the original is gone

    config_file = restored / "gateway.toml"
    assert (
        cli(["db", "current", "--config", str(config_file)], phi_log_dir, "restore-current").returncode == 0
    )
    shown = cli(
        ["log", "show", tracking, "--reveal", "--json", "--config", str(config_file)], tmp_path, "restore"
    )
    assert shown.returncode == 0, shown.stderr
    assert member in shown.stdout, shown.stdout[:3000]
    found = cli(
        ["log", "search", "--member-id", member, "--json", "--config", str(config_file)],
        tmp_path,
        "restore-search",
    )
    assert found.returncode == 0, found.stderr
    assert [r["tracking_number"] for r in json.loads(found.stdout)["requests"]] == [tracking]
    assert stat.S_IMODE((restored / "state" / "gateway.db").stat().st_mode) == 0o600  # tightened on open
    key = (restored / "state" / "member_hash.key").read_text().strip().encode()
    assert hash_member_id(member, key) == req.member_id_hash
