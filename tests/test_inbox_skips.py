"""Inbox entries the intake never takes (hidden names, symbolic links) are no longer ignored in
silence: one warning with the reason per file name, through the run loop's own cycle."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.filemask import mask_file_name
from gateway.runtime.logsetup import configure_logging, reset_logging
from gateway.runtime.runner import Gateway, open_context
from gateway.stages.inbox_skips import HIDDEN, SYMLINK
from tests.test_precert import KEY, minimal_config


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY)
    context = open_context(parse_config(minimal_config(tmp_path / "gw"), tmp_path / "gw"))
    yield context
    context.store.close()


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=out)
    yield out
    reset_logging()
    structlog.contextvars.clear_contextvars()


def _skips(out: io.StringIO) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return [e for e in events if e["event"] == "inbox file not taken"]


def test_hidden_files_and_symlinks_are_logged_once_per_name(
    ctx: Context, capture: io.StringIO, tmp_path: Path
) -> None:
    """A dot-file and a symlink: one warning each with its reason over several cycles; a name that
    goes away and comes back is reported again; nothing is taken from either."""
    inbox = ctx.config.folders.inbox
    outside = tmp_path / "outside.json"
    outside.write_text("{}", encoding="utf-8")
    (inbox / ".export.json").write_text("{}", encoding="utf-8")
    os.utime(inbox / ".export.json", (0, 0))  # settled long ago
    (inbox / "linked.json").symlink_to(outside)
    gateway = Gateway(ctx)
    for _ in range(3):
        gateway.cycle()
    seen = {e["file"]: e for e in _skips(capture)}
    assert len(_skips(capture)) == 2
    assert seen[mask_file_name(".export.json")]["reason"] == HIDDEN
    assert seen[mask_file_name("linked.json")]["reason"] == SYMLINK
    assert {e["level"] for e in seen.values()} == {"warning"}
    assert (inbox / ".export.json").exists(), "not taken"
    assert (inbox / "linked.json").is_symlink(), "not taken"
    (inbox / "linked.json").unlink()
    gateway.cycle()
    (inbox / "linked.json").symlink_to(outside)
    gateway.cycle()
    assert [e["file"] for e in _skips(capture)].count(mask_file_name("linked.json")) == 2


def test_a_dot_file_still_being_written_is_not_reported(ctx: Context, capture: io.StringIO) -> None:
    """A hidden file changed within inbox.stable_seconds may be a writer's temporary: no warning yet."""
    inbox = ctx.config.folders.inbox
    (inbox / ".partial.json").write_text("{", encoding="utf-8")
    now = ctx.clock().timestamp()
    os.utime(inbox / ".partial.json", (now + 3600, now + 3600))  # modified "after" now: still settling
    Gateway(ctx).cycle()
    assert _skips(capture) == []
