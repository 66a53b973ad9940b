"""Inbox claims on several nodes (PostgreSQL, shared folders): a claim belongs to the node that made it.

Found while investigating ``test_three_nodes_exactly_once_with_one_killed`` (issue 19): every node's
recovery step finished *every* half-done inbox claim, including those a live node was finishing at that
very moment. When the live node's rename or state change then failed (the other node had renamed the
file first), it quarantined the file the other node had claimed: its requests were never created
("0 requests instead of one" for every request of the first inbox files, which all nodes race for at
start). These tests replay both halves of that race one step at a time."""

from __future__ import annotations

import dataclasses
import errno
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from gateway.lifecycle import FileState
from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.fsutil import Candidate, LocalIOError, complete_files, open_regular, sha256_file
from gateway.runtime.nodes import NodeRegistry
from gateway.runtime.runner import open_context
from gateway.stages import intake, pipeline
from gateway.stages.base import Cycle
from gateway.store import schema as s
from tests.e2e_harness import REQUESTS, config_text
from tests.sftp_support import new_host_key_line, write_private_key
from tests.store_fixtures import postgres_schema, require_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture
def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Context, Context]]:
    """Two live nodes, ``node-a`` and ``node-b``, on one PostgreSQL database and one set of folders."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", "claim-takeover-key-0123456789")
    monkeypatch.setenv("X12GW_PAYLOAD_KEY", "7e" * 32)
    with postgres_schema(require_postgres()) as url:
        key = write_private_key(tmp_path / "client")
        text = config_text(
            port=2222, host_key_line=new_host_key_line(), key_file=key, remote_root="", database_url=url
        )
        a = open_context(parse_config(tomllib.loads(text), tmp_path / "gw"))
        a.node_id = "node-a"
        b = dataclasses.replace(a, node_id="node-b")
        for ctx in (a, b):
            NodeRegistry(ctx.store, ctx.node_id, ctx.clock).register()
        try:
            yield a, b
        finally:
            a.store.close()


def _candidate(ctx: Context) -> Candidate:
    inbox = ctx.config.folders.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "claims.json").write_bytes((REQUESTS / "270-subscriber.json").read_bytes())
    now = ctx.clock().timestamp() + 60
    [cand] = complete_files(inbox, now=now, stable_seconds=0, require_done_marker=False)
    return cand


def _state(ctx: Context, file_id: int) -> str:
    with ctx.store.read() as tx:
        return tx.files.get(file_id).state


def _requests(ctx: Context) -> int:
    with ctx.store.read() as tx:
        return len(tx.requests.query())


def test_recovery_leaves_a_live_nodes_inbox_claim_alone(nodes: tuple[Context, Context]) -> None:
    """Node B's recovery does not finish node A's claim while A is alive; once A is dead it does."""
    a, b = nodes
    cand = _candidate(a)
    sha, size = sha256_file(cand.path)
    with a.store.begin() as tx:  # node A has recorded its claim and is about to rename the file
        row = tx.files.record(
            direction="in",
            partner="inbox",
            name=cand.path.name,
            sha256=sha,
            size=size,
            payload_path=None,
            state=FileState.CLAIMING,
        )
        tx.conn.execute(update(s.files).where(s.files.c.id == row.id).values(lease_owner=a.node_id))
    pipeline.RecoverIntake()(b, Cycle())  # A is alive: not B's to finish
    assert _state(b, row.id) == FileState.CLAIMING
    assert cand.path.exists(), "node B took the file from under node A"
    pipeline.RecoverIntake()(b, Cycle(dead=[a.node_id]))  # A died: B takes the claim over
    assert _state(b, row.id) == FileState.ACCEPTED
    assert _requests(b) == 1
    assert not cand.path.exists()


def _claim(ctx: Context, cand: Candidate) -> int | None:
    """What the intake does before processing: read the file through one descriptor, then claim it."""
    with open_regular(cand.path) as (fd, before):
        taken = intake.read_settled(ctx, cand, fd, before)
        assert taken is not None
        return intake.claim(ctx, cand, taken, before)


def test_a_node_that_lost_the_claim_race_never_quarantines_the_file(nodes: tuple[Context, Context]) -> None:
    """Node B claimed the file first; node A's failing rename must not quarantine B's claim."""
    a, b = nodes
    cand = _candidate(a)
    file_id = _claim(b, cand)
    assert file_id is not None
    lost = LocalIOError("claim", cand.path, FileNotFoundError(errno.ENOENT, "gone"))
    intake._set_aside(a, cand, file_id, lost)  # what node A does when its own rename fails
    assert _state(a, file_id) == FileState.CLAIMED, "node A quarantined node B's claim"
    pipeline.RecoverIntake()(b, Cycle())  # B finishes its own claim
    assert _state(b, file_id) == FileState.ACCEPTED
    assert _requests(b) == 1
