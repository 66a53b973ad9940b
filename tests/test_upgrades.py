"""Schema upgrades and key rotation: an explicit `x12gw db upgrade` of a database the previous release
(schema 0003) wrote, commands refusing an old schema, and a key rotation resumed after an interruption."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, text

from gateway.errors import StoreError
from gateway.lifecycle import FileEvent, FileState, RequestState
from gateway.runtime.config import GatewayConfig
from gateway.runtime.rotation import Interrupted, rotate
from gateway.runtime.runner import open_context
from gateway.runtime.storeopen import open_store
from gateway.stages import intake
from gateway.store import Store, hash_member_id, make_engine
from gateway.store import schema as s
from gateway.store.migrate import script, state
from gateway.store.store import MIGRATIONS_DIR
from tests.e2e_harness import REQUESTS
from tests.protection_support import cli, drop, dump, write_config

PREVIOUS = "0003"
PAYLOAD: dict[str, Any] = {
    "type": "270",
    "subscriber": {"last_name": "CANARYTEST", "first_name": "OLDROW", "member_id": "ZZM300000003"},
    "client_reference": "OLD-1",
}


@pytest.fixture(autouse=True)
def _no_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "X12GW_PAYLOAD_KEY",
        "X12GW_MEMBER_HASH_KEY",
        "X12GW_PAYLOAD_KEY_NEW",
        "X12GW_MEMBER_HASH_KEY_NEW",
    ):
        monkeypatch.delenv(name, raising=False)


def _previous_release_database(config: GatewayConfig) -> None:
    """A database at schema 0003 holding what that release wrote: plain request JSON and file names."""
    config.folders.ensure()
    engine = make_engine(config.database_url())
    alembic = Config()
    alembic.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        alembic.attributes["connection"] = conn
        command.upgrade(alembic, PREVIOUS)
    store = Store.attach(engine, clock=lambda: datetime(2026, 1, 5, tzinfo=UTC))
    key = config.member_hash_key(create=True)
    with store.begin() as tx:
        f = tx.files.record(
            direction="in",
            partner="inbox",
            name="CANARYTEST_ZZM300000003.json",
            sha256="a" * 64,
            size=10,
            payload_path=None,
            state=FileState.CLAIMING,
        )
        tx.files.transition(f.id, FileEvent.CLAIM, expect=FileState.CLAIMING)
        tx.files.transition(f.id, FileEvent.ACCEPT, expect=FileState.CLAIMED)
        # the request row as that release wrote it: its columns only (later revisions add some)
        now = datetime(2026, 1, 5, tzinfo=UTC)
        tx.conn.execute(
            insert(s.requests).values(
                tracking_number="GW-OLD-0000000001",
                kind="270",
                payer_id="ACME01",
                partner="sim",
                state=RequestState.ANSWERED,
                member_id_hash=hash_member_id("ZZM300000003", key),
                payload=PAYLOAD,
                source_file_id=f.id,
                created_at=now,
                updated_at=now,
            )
        )
    store.close()


def test_previous_release_database_is_refused_then_upgraded_and_sealed(
    tmp_path: Path, phi_log_dir: Path
) -> None:
    """A 0003 database with data: run and operator commands refuse it with the advice; `x12gw db upgrade`
    brings it to head keeping the rows; the next run seals new rows and `keys rotate` seals the old ones."""
    config, path = write_config(tmp_path)
    _previous_release_database(config)
    for role in ("run", "operator"):
        with pytest.raises(StoreError, match="x12gw db upgrade"):
            open_store(config, role=role)
    engine = make_engine(config.database_url())
    assert state(engine).current == PREVIOUS  # refusing changed nothing
    engine.dispose()
    current = cli(["db", "current", "--config", str(path)], phi_log_dir, "db-current-old")
    assert current.returncode == 1
    assert "behind" in current.stdout
    upgraded = cli(["db", "upgrade", "--config", str(path)], phi_log_dir, "db-upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    head = script().get_current_head()
    assert f"from {PREVIOUS} to {head}" in upgraded.stdout
    assert cli(["db", "current", "--config", str(path)], phi_log_dir, "db-current").returncode == 0
    ctx = open_context(config)  # the first run after the upgrade makes the payload key
    try:
        with ctx.store.read() as tx:
            (old,) = tx.requests.query()
            (old_file,) = tx.files.query()
        assert old.payload == PAYLOAD
        assert old_file.name == "CANARYTEST_ZZM300000003.json"
    finally:
        ctx.store.close()
    assert "CANARYTEST" in dump(config.folders.state / "gateway.db")  # old rows: plain until rotated
    rotate(config, which={"payload"}, say=lambda _m: None)
    assert "CANARYTEST" not in dump(config.folders.state / "gateway.db")
    ctx = open_context(config)
    try:
        with ctx.store.read() as tx:
            assert tx.requests.query()[0].payload == PAYLOAD
    finally:
        ctx.store.close()


def test_run_upgrade_flag_is_the_only_way_run_migrates(tmp_path: Path) -> None:
    """`run` refuses an old schema unless started with --upgrade (open_context(allow_upgrade=True))."""
    config, _ = write_config(tmp_path)
    _previous_release_database(config)
    with pytest.raises(StoreError, match="db upgrade"):
        open_context(config)
    ctx = open_context(config, allow_upgrade=True)
    try:
        with ctx.store.engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert version == script().get_current_head()
    finally:
        ctx.store.close()


@pytest.fixture
def filled(tmp_path: Path) -> GatewayConfig:
    """A store with three requests from three inbox files, written with the first keys."""
    config, _ = write_config(tmp_path)
    ctx = open_context(config)
    try:
        for name in ("270-subscriber.json", "270-dependent.json", "278-outpatient-mri.json"):
            drop(config.folders.inbox, f"CANARYTEST-{name}", (REQUESTS / name).read_bytes())
        assert intake.intake(ctx) == 3
    finally:
        ctx.store.close()
    return config


def _all_requests(store: Store) -> int:
    with store.read() as tx:
        return len(tx.requests.query())


def test_key_rotation_resumes_after_an_interruption(filled: GatewayConfig) -> None:
    """Rotation stopped after two one-row batches leaves a store the old keys can no longer fully read;
    running it again finishes, swaps the key files, and searches work with the new member key only."""
    config = filled
    state_dir = config.folders.state
    old_payload = (state_dir / "payload.key").read_text()
    with pytest.raises(Interrupted):
        rotate(config, which={"payload", "member"}, batch=1, max_batches=2, say=lambda _m: None)
    assert (state_dir / "payload.key").read_text() == old_payload  # nothing switched yet
    ctx = open_context(config)
    try:
        with pytest.raises(StoreError, match="does not have"):  # rows already under the new key
            _all_requests(ctx.store)
    finally:
        ctx.store.close()
    messages: list[str] = []
    counts = rotate(config, which={"payload", "member"}, batch=1, say=messages.append)
    assert counts["requests.payload"] >= 1
    assert (state_dir / "payload.key.old").read_text() == old_payload
    assert (state_dir / "payload.key").read_text() != old_payload
    assert not (state_dir / "payload.key.new").exists()
    ctx = open_context(config)
    try:
        with ctx.store.read() as tx:
            requests = tx.requests.query()
            names = sorted(f.name for f in tx.files.query(direction="in"))
        assert len(requests) == 3
        assert names[0].startswith("CANARYTEST-")
        for req in requests:
            member = req.payload["subscriber"]["member_id"]
            assert req.member_id_hash == hash_member_id(member, ctx.member_key)
    finally:
        ctx.store.close()
    text_dump = dump(state_dir / "gateway.db")
    assert "CANARYTEST" not in text_dump
    assert "rotation_" not in text_dump  # no progress markers left behind


def test_rotation_refuses_while_a_gateway_node_is_live(filled: GatewayConfig) -> None:
    """A node registered as running (no stop time, seen just now) makes rotation refuse, changing nothing."""
    engine = make_engine(filled.database_url())
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO nodes (node_id, host, pid, started_at, last_seen) VALUES ('n1', 'h', 1, :t, :t)"
            ),
            {"t": now},
        )
    engine.dispose()
    with pytest.raises(Exception, match="stop every `x12gw run`"):
        rotate(filled, which={"payload"}, say=lambda _m: None)
    assert not (filled.folders.state / "payload.key.new").exists()
