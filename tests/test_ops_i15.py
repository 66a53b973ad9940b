"""Operators' fixes of issue 15 that need no clearinghouse: quarantine reasons that say what happened,
``reprocess file:N``, filter values checked against the lifecycle, and human output (local times with
the year, identifiers never cut)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.runner import open_context
from gateway.stages import intake
from tests.e2e_harness import REQUESTS, config_text
from tests.sftp_support import new_host_key_line, write_private_key


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    key = write_private_key(tmp_path / "client")
    text = config_text(port=2222, host_key_line=new_host_key_line(), key_file=key, remote_root="")
    context = open_context(parse_config(tomllib.loads(text), tmp_path / "gw"))
    yield context
    context.store.close()


def _drop(ctx: Context, name: str, data: bytes) -> None:
    path = ctx.config.folders.inbox / name
    path.write_bytes(data)
    old = path.stat().st_mtime - 10
    os.utime(path, (old, old))


def _file(ctx: Context, name: str) -> tuple[str, str | None]:
    with ctx.store.read() as tx:
        row = next(f for f in tx.files.query(direction="in") if f.name == name)
    return row.state, row.reason


def test_an_empty_file_is_empty_not_a_duplicate(ctx: Context) -> None:
    """Two empty inbox files are each quarantined as empty; neither is called a duplicate of the other."""
    _drop(ctx, "first.json", b"")
    intake.intake(ctx)
    _drop(ctx, "second.json", b"  \n")
    _drop(ctx, "third.json", b"")
    intake.intake(ctx)
    for name in ("first.json", "second.json", "third.json"):
        state, reason = _file(ctx, name)
        assert state == "quarantined", name
        assert reason == "the file is empty", (name, reason)


def test_rejected_requests_say_whether_any_was_queued(ctx: Context) -> None:
    """A file whose every request is refused says none was queued; a partly good one counts the rest."""
    good = json.loads((REQUESTS / "270-subscriber.json").read_text())
    unrouted = {**good, "payer": {**good["payer"], "id": "NOSUCHPAYER"}}
    _drop(ctx, "all-bad.json", json.dumps([unrouted, unrouted]).encode())
    _drop(ctx, "half.json", json.dumps([good, unrouted]).encode())
    intake.intake(ctx)
    assert _file(ctx, "all-bad.json") == ("quarantined", "2 request(s) rejected; none queued")
    assert _file(ctx, "half.json") == ("partially_accepted", "1 request(s) rejected; the other 1 queued")
