"""Operators' commands print data as data: control characters in file names (newlines, ANSI escapes,
BEL, bidirectional overrides) are spelled out in ``log list`` and ``log show``, never sent raw."""

from __future__ import annotations

import argparse
import io
import os
import tomllib
from contextlib import redirect_stdout
from pathlib import Path

from gateway.cli import log_cmd
from gateway.operators.formatting import escape_controls
from gateway.runtime.config import parse_config
from gateway.runtime.runner import open_context
from gateway.stages import intake
from tests.e2e_harness import config_text
from tests.sftp_support import new_host_key_line, write_private_key

HOSTILE = "evil\n\x1b[2J\x1b]0;pwn\x07\u202e.json"


def _run(config: Path, *argv: str) -> str:
    parser = argparse.ArgumentParser(prog="x12gw")
    log_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*argv, "--config", str(config)])
    out = io.StringIO()
    with redirect_stdout(out):
        assert int(args.func(args)) == 0
    return out.getvalue()


def test_log_list_and_show_spell_out_control_characters(tmp_path: Path) -> None:
    """A quarantined file whose name holds a newline, ANSI escapes, BEL and a bidi override is listed
    and shown (revealed) on one line each, with those characters spelled out and none raw."""
    key = write_private_key(tmp_path / "client")
    text = config_text(port=2222, host_key_line=new_host_key_line(), key_file=key, remote_root="")
    ctx = open_context(parse_config(tomllib.loads(text), tmp_path / "gw"))
    try:
        path = ctx.config.folders.inbox / HOSTILE
        path.write_bytes(b"{not json")
        os.utime(path, (path.stat().st_mtime - 10,) * 2)
        intake.intake(ctx)
    finally:
        ctx.store.close()
    config = tmp_path / "gw" / "gateway.toml"
    config.write_text(text, encoding="utf-8")
    listing = _run(config, "log", "list", "--reveal")
    shown = _run(config, "log", "show", "file:1", "--reveal", "--no-segments")
    for output in (listing, shown):
        assert not {"\x1b", "\x07", "\u202e"} & set(output), output
        assert "evil\\n\\x1b[2J\\x1b]0;pwn\\x07\\u202e.json"[:12] in output, output
    (line,) = [x for x in listing.splitlines() if "evil" in x]
    assert "\\x1b" in line


def test_only_the_painters_own_colours_survive() -> None:
    """With colours on, exactly our colour codes pass; any other escape in the text is spelled out."""
    text = "\x1b[31mrejected\x1b[0m \x1b[2J\x1b[31m\r\n"
    assert escape_controls(text, keep_colours=True) == "\x1b[31mrejected\x1b[0m \\x1b[2J\x1b[31m\\r\\n"
    assert escape_controls(text) == "\\x1b[31mrejected\\x1b[0m \\x1b[2J\\x1b[31m\\r\\n"
