"""Data at rest: owner-only database files and folders, PHI sealed in the database, file names masked,
keys checked by fingerprint and never created by operator commands."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import ConfigError, StoreError
from gateway.operators.session import open_session
from gateway.runtime.context import Context
from gateway.runtime.filemask import is_masked, mask_file_name
from gateway.runtime.fsutil import LocalIOError, io_errors
from gateway.runtime.runner import open_context
from gateway.runtime.storeopen import open_store
from gateway.stages import intake
from gateway.store.sealing import KeyRing, fingerprint, new_key_text, parse_key
from tests.e2e_harness import REQUESTS
from tests.protection_support import cli, drop, dump, loose_files, sample_phi, write_config

SAMPLE = (REQUESTS / "270-subscriber.json").read_bytes()


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.delenv("X12GW_PAYLOAD_KEY", raising=False)
    monkeypatch.delenv("X12GW_MEMBER_HASH_KEY", raising=False)
    config, _ = write_config(tmp_path)
    context = open_context(config)
    yield context
    context.store.close()


def test_demo_leaves_owner_only_files_and_no_plain_phi_in_the_database(
    tmp_path: Path, phi_log_dir: Path
) -> None:
    """After `x12gw demo --keep DIR`: nothing under DIR is open to group/others, and the database dump
    holds none of the demo requests' names, member ids or birth dates."""
    keep = tmp_path / "demo"
    done = cli(["demo", "--keep", str(keep)], phi_log_dir, "demo")
    assert done.returncode == 0, done.stderr[-2000:]
    assert loose_files(keep) == []
    text = dump(keep / "state" / "gateway.db")
    assert 'INSERT INTO "requests"' in text  # the dump is real: the demo's rows are in it
    values = sorted(v for v in sample_phi() if len(v) >= 3)
    assert values, "the sample requests hold PHI to look for"
    leaks = [v for v in values if v in text]
    assert leaks == []


def test_loose_database_files_and_folders_of_an_older_install_are_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 0644 database with 0644 -wal/-shm files and 0777 folders become 0600 / 0700 when the gateway opens
    them."""
    monkeypatch.delenv("X12GW_PAYLOAD_KEY", raising=False)
    config, _ = write_config(tmp_path)
    for _, folder in config.folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)
    db = config.folders.state / "gateway.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("DROP TABLE t")
    conn.commit()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").touch()
        Path(f"{db}{suffix}").chmod(0o644)
    ctx = open_context(config)
    try:
        with ctx.store.read() as tx:
            tx.files.query()
        for suffix in ("", "-wal", "-shm"):
            assert stat.S_IMODE(Path(f"{db}{suffix}").stat().st_mode) == 0o600, suffix
        for name, folder in config.folders.items():
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, name
    finally:
        ctx.store.close()
        conn.close()


def test_new_database_is_created_owner_only_even_with_a_loose_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With umask 000 the new database and its WAL companions are still 0600."""
    monkeypatch.delenv("X12GW_PAYLOAD_KEY", raising=False)
    config, _ = write_config(tmp_path)
    old = os.umask(0)
    try:
        ctx = open_context(config)
        with ctx.store.begin() as tx:
            tx.files.record(
                direction="in", partner="inbox", name="a.json", sha256="0" * 64, size=1, payload_path=None
            )
    finally:
        os.umask(old)
    try:
        db = config.folders.state / "gateway.db"
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in db.parent.glob("gateway.db*")}
        assert set(modes) >= {"gateway.db", "gateway.db-wal", "gateway.db-shm"}
        assert set(modes.values()) == {0o600}
    finally:
        ctx.store.close()


def test_requests_and_file_names_are_sealed_and_read_back(ctx: Context) -> None:
    """Intake stores the request JSON and the file name sealed; the gateway reads them back as they were."""
    drop(ctx.config.folders.inbox, "CANARYTEST_ZZM123456789.json", SAMPLE)
    assert intake.intake(ctx) == 1
    with ctx.store.read() as tx:
        (f,) = tx.files.query(direction="in")
        (req,) = tx.requests.query()
    assert f.name == "CANARYTEST_ZZM123456789.json"
    assert req.payload["subscriber"]["member_id"]
    text = dump(ctx.config.folders.state / "gateway.db")
    assert "CANARYTEST" not in text.upper()
    assert req.payload["subscriber"]["member_id"] not in text
    assert "x12gw~" in text
    assert "x12gw:1:" in text


def test_a_different_payload_key_is_refused_with_a_clear_message(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process started with another payload key refuses to open the store and names both fingerprints."""
    drop(ctx.config.folders.inbox, "a.json", SAMPLE)
    intake.intake(ctx)
    mine = (ctx.config.folders.state / "payload.key").read_text().strip()
    other = new_key_text()
    monkeypatch.setenv("X12GW_PAYLOAD_KEY", other)
    for role in ("run", "operator"):
        with pytest.raises(StoreError, match="wrong payload key") as caught:
            open_store(ctx.config, role=role)
        assert fingerprint(parse_key(mine)) in str(caught.value)
        assert fingerprint(parse_key(other)) in str(caught.value)
        assert other not in str(caught.value)


def test_a_different_member_key_refuses_search_and_run(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """With another member-hash key, an operator's search is refused (not silently empty) and run refuses
    to start."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", "another-member-key-0123456789")
    source = ctx.config.source
    with open_session(str(source)) as session, pytest.raises(StoreError, match="wrong member-hash key"):
        session.member_key()
    with pytest.raises(StoreError, match="wrong member-hash key"):
        open_context(ctx.config)


def test_operator_commands_never_create_key_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a store with no keys yet an operator command fails with advice and leaves no key file behind."""
    monkeypatch.delenv("X12GW_PAYLOAD_KEY", raising=False)
    monkeypatch.delenv("X12GW_MEMBER_HASH_KEY", raising=False)
    config, path = write_config(tmp_path)
    config.folders.ensure()
    with pytest.raises(ConfigError, match="only `x12gw run` creates a new key"):
        config.member_hash_key()
    with pytest.raises((ConfigError, StoreError)), open_session(str(path)):
        pass
    assert sorted(p.name for p in config.folders.state.iterdir() if "key" in p.name) == []


def test_file_names_are_masked_stably_with_their_extension() -> None:
    """A mask keeps the extension, hides the name, is the same every time and differs between names."""
    first = mask_file_name("SMITH_ZZM123456789.json")
    assert first == mask_file_name("SMITH_ZZM123456789.json")
    assert first.endswith(".json")
    assert "SMITH" not in first
    assert "ZZM" not in first
    assert is_masked(first)
    assert mask_file_name(first) == first
    assert mask_file_name("JONES_ZZM987654321.json") != first
    assert "." not in mask_file_name("no-extension-name")[2:]


def test_sealed_values_fail_closed_on_tampering() -> None:
    """A flipped byte in a sealed document is an integrity error, never silently wrong data."""
    ring = KeyRing(os.urandom(32))
    token = ring.seal_doc({"last_name": "CANARYTEST"})
    assert ring.unseal_doc(token) == {"last_name": "CANARYTEST"}
    head, _, body = token.rpartition(":")
    broken = head + ":" + ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(StoreError, match="integrity"):
        ring.unseal_doc(broken)
    other = KeyRing(os.urandom(32))
    with pytest.raises(StoreError, match="does not have"):
        other.unseal_doc(token)


def test_file_errors_name_the_file_masked(tmp_path: Path) -> None:
    """A failed file operation's message (which is logged) carries the masked name, not the real one."""
    missing = tmp_path / "CANARYTEST_ZZM123456789.json"
    with pytest.raises(LocalIOError) as caught, io_errors("read", missing):
        missing.read_bytes()
    assert "CANARYTEST" not in str(caught.value)
    assert mask_file_name(missing.name) in str(caught.value)
