"""A clearinghouse that reuses remote names (every response called ``271.x12``): each new file is
downloaded, whatever its name and size, and a remote file is removed only when it is the very file
downloaded in this exchange (issue 19, "remote names reused"). Against the in-process paramiko server
and OpenSSH, with ``after_download`` "delete", "move" and "leave"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from gateway.lifecycle import FileState
from gateway.runtime.context import Context
from gateway.stages import exchange
from gateway.store import Store
from payersim.sftp_server import FaultContext, SftpFaults, SftpServer
from tests.remote_support import Reach, inbound_files, make_context, partner_section, put_remote
from tests.sftp_support import SftpTarget, write_private_key
from tests.test_precert import KEY

pytest_plugins = ["tests.sftp_fixtures", "tests.store_fixtures"]
T1 = 1_767_000_000


@pytest.fixture(autouse=True)
def _member_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY)


@pytest.fixture
def contexts() -> Iterator[list[Context]]:
    opened: list[Context] = []
    yield opened
    for ctx in opened:
        ctx.store.close()


def _target_context(
    tmp_path: Path, target: SftpTarget, contexts: list[Context], **extra: Any
) -> tuple[Context, Path]:
    down, local = target.new_dir("out")
    up, _ = target.new_dir("in")
    reach = Reach(
        target.host, target.port, target.username, target.keys.by_kind["ed25519"], target.host_key_line
    )
    ctx = make_context(tmp_path / f"gw{len(contexts)}", [partner_section(reach, down, up, **extra)])
    contexts.append(ctx)
    return ctx, local


def _cycles(ctx: Context, count: int = 2) -> None:
    """Exchange ``count`` times (a new file is taken once two listings agree on it)."""
    (partner,) = ctx.config.partners
    for _ in range(count):
        exchange.exchange(ctx, partner)
    assert ctx.health.of(partner.name).failures == 0, ctx.health.of(partner.name).paused_why


@pytest.mark.parametrize("after", ["delete", "move", "leave"])
def test_a_new_file_under_a_reused_name_and_size_is_downloaded(
    tmp_path: Path, sftp_target: SftpTarget, contexts: list[Context], after: str
) -> None:
    """Two files called 271.x12 of the same size, one after the other: both recorded, in order."""
    extra: dict[str, Any] = {"after_download": after}
    if after == "move":
        extra["archive_dir"], archive = sftp_target.new_dir("archive")
    ctx, remote = _target_context(tmp_path, sftp_target, contexts, **extra)
    first, second = b"ISA*first response**~", b"ISA*other response**~"
    assert len(first) == len(second)
    put_remote(remote / "271.x12", first, T1)
    _cycles(ctx)
    assert inbound_files(ctx) == [first]
    assert (remote / "271.x12").exists() == (after == "leave")
    put_remote(remote / "271.x12", second, T1 + 60)
    _cycles(ctx)
    assert inbound_files(ctx) == [first, second]
    assert (remote / "271.x12").exists() == (after == "leave")
    _cycles(ctx)
    assert inbound_files(ctx) == [first, second], "a file left on the server is taken once"
    if after == "move":
        assert (archive / "271.x12").read_bytes() == second


def test_a_known_version_is_downloaded_again_before_it_is_deleted(
    tmp_path: Path, sftp_target: SftpTarget, contexts: list[Context]
) -> None:
    """Same name, size and time as a file taken before (written within the same second): with
    "delete" it is downloaded and compared by content, so new content is recorded and an identical
    copy is only deleted, not recorded twice."""
    ctx, remote = _target_context(tmp_path, sftp_target, contexts)
    first, second = b"ISA*first response**~", b"ISA*other response**~"
    put_remote(remote / "271.x12", first, T1)
    _cycles(ctx)
    put_remote(remote / "271.x12", second, T1)
    _cycles(ctx, 1)
    assert inbound_files(ctx) == [first, second]
    assert not (remote / "271.x12").exists()
    put_remote(remote / "271.x12", second, T1)
    _cycles(ctx, 1)
    assert inbound_files(ctx) == [first, second], "identical content is a duplicate"
    assert not (remote / "271.x12").exists(), "the duplicate was downloaded here, so it may go"


class _ReplaceBeforeRemoval(SftpFaults):
    """After the download, just before the client's check for removal, the partner writes a new
    file under the same name (as a clearinghouse reusing names may at any moment)."""

    def __init__(self, local: Path, data: bytes) -> None:
        self.local, self.data = local, data
        self.stats = 0
        self.replaced = False

    def before(self, ctx: FaultContext) -> int | None:
        if ctx.op == "stat" and ctx.path.endswith("/271.x12") and not self.replaced:
            self.stats += 1
            if self.stats == 3:  # fetch stats before and after reading; the third is the removal check
                put_remote(self.local, self.data, T1 + 120)
                self.replaced = True
        return None


def test_a_file_replaced_after_the_download_is_not_deleted_unread(
    tmp_path: Path, contexts: list[Context]
) -> None:
    """The remote file changes between our download and our delete: it is left in place and taken
    by the next exchange, never deleted unread."""
    key = write_private_key(tmp_path / "client")
    root = tmp_path / "root"
    (root / "out").mkdir(parents=True)
    (root / "in").mkdir()
    first, second = b"ISA*first response**~", b"ISA*newer response**~"
    faults = _ReplaceBeforeRemoval(root / "out" / "271.x12", second)
    host_key = paramiko.PKey.from_path(write_private_key(tmp_path / "host"))
    public = Path(f"{key}.pub").read_text().strip()
    with SftpServer(root, host_key, authorized_keys=[public], faults=faults) as server:
        reach = Reach(server.host, server.port, server.username, key, server.host_key_line)
        ctx = make_context(tmp_path / "gw", [partner_section(reach, "/out", "/in")])
        contexts.append(ctx)
        put_remote(root / "out" / "271.x12", first, T1)
        _cycles(ctx)
        assert faults.replaced
        assert inbound_files(ctx) == [first]
        assert (root / "out" / "271.x12").read_bytes() == second, "the new file was left alone"
        _cycles(ctx)
        assert inbound_files(ctx) == [first, second]
        assert not (root / "out" / "271.x12").exists()


def test_remote_versions_are_found_by_name_size_and_time_and_content_by_hash(store: Store) -> None:
    """tx.listings on both databases: a version matches only the same name, size and time (a missing
    time matches only a missing time), and content matches an inbound file of that name and hash."""
    sha = "a" * 64
    with store.begin() as tx:
        row = tx.files.record(
            direction="in",
            partner="acme",
            name="271.x12",
            sha256=sha,
            size=10,
            payload_path=None,
            state=FileState.DOWNLOADED,
        )
        tx.listings.remember("acme", "271.x12", 10, T1, "new", sha256=sha, file_id=row.id)
        tx.listings.remember("acme", "271.x12", 10, None, "duplicate", sha256=sha, file_id=row.id)
        tx.listings.remember("acme", "big.x12", 10**9, T1, "refused", reason="too large")
    with store.read() as tx:
        found = tx.listings.version("acme", "271.x12", 10, T1)
        assert found is not None
        assert (found.outcome, found.file_id, found.sha256) == ("new", row.id, sha)
        untimed = tx.listings.version("acme", "271.x12", 10, None)
        assert untimed is not None
        assert untimed.outcome == "duplicate"
        assert tx.listings.version("acme", "271.x12", 10, T1 + 1) is None
        assert tx.listings.version("acme", "271.x12", 11, T1) is None
        assert tx.listings.version("other", "271.x12", 10, T1) is None
        refused = tx.listings.version("acme", "big.x12", 10**9, T1)
        assert refused is not None
        assert (refused.outcome, refused.reason) == ("refused", "too large")
        assert tx.listings.content("acme", "271.x12", sha) == row.id
        assert tx.listings.content("acme", "271.x12", "b" * 64) is None
        assert tx.listings.content("acme", "other.x12", sha) is None
