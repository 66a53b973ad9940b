"""Helpers for the data-protection tests: a store-only gateway configuration, database dumps, and the
PHI of the sample requests in every spelling a dump could hold."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path

from gateway.runtime.config import GatewayConfig, parse_config
from tests.e2e_harness import REQUESTS, config_text
from tests.sftp_support import new_host_key_line, write_private_key


def write_config(base: Path, *, extra: str = "") -> tuple[GatewayConfig, Path]:
    """A gateway configuration under ``base`` (partner never contacted) and the file it is in."""
    base.mkdir(parents=True, exist_ok=True)
    key = write_private_key(base / "client")
    text = config_text(port=2222, host_key_line=new_host_key_line(), key_file=key, remote_root="") + extra
    gw = base / "gw"
    gw.mkdir(exist_ok=True)
    path = gw / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return parse_config(tomllib.loads(text), gw, source=path), path


def drop(inbox: Path, name: str, data: bytes) -> Path:
    """A complete inbox file (its modification time in the past, so intake takes it at once)."""
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_bytes(data)
    old = path.stat().st_mtime - 10
    os.utime(path, (old, old))
    return path


def dump(db: Path) -> str:
    """The whole SQLite database as SQL text (what a stolen backup or a careless export would show)."""
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def sample_phi() -> set[str]:
    """Names, member ids and birth dates (ISO, D8, US forms) of every sample JSON request."""
    found: set[str] = set()

    def walk(value: object, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and value:
            if key in ("last_name", "first_name", "member_id"):
                found.add(value)
            elif key == "birth_date":
                d = date.fromisoformat(value)
                found.update({d.isoformat(), d.strftime("%Y%m%d"), d.strftime("%m/%d/%Y")})

    for path in REQUESTS.glob("*.json"):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found


def loose_files(root: Path) -> list[str]:
    """Every file or folder under ``root`` that group or others may access."""
    return sorted(str(p) for p in [root, *root.rglob("*")] if p.stat().st_mode & 0o077)


X12GW = Path(sys.executable).with_name("x12gw")


def cli(
    args: list[str], log_dir: Path, name: str, *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``x12gw ARGS`` in a subprocess; its stderr (the logs) is kept for the PHI canary scan."""
    argv = [str(X12GW)] if X12GW.exists() else [sys.executable, "-m", "gateway.cli"]
    done = subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    (log_dir / f"protection-{name}.log").write_text(done.stderr + done.stdout)
    return done
