"""The usual set-up with real users: a billing system writes into a shared (setgid group) inbox as
one user, the gateway reads it as another. Nothing may fail after the requests were committed."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_harness import REQUESTS
from tests.test_precert import KEY, minimal_config

ROOT = Path(__file__).resolve().parent.parent
BILLING, GATEWAY, SHARE = "x12gw-billing", "x12gw-gw", "x12gw-share"

RUNNER = """
import json, os, sys
from pathlib import Path
from gateway.runtime.config import parse_config
from gateway.runtime.runner import open_context
from gateway.stages import intake

config = parse_config(json.loads(sys.argv[1]), Path(sys.argv[2]))
ctx = open_context(config)
taken = intake.intake(ctx)
with ctx.store.read() as tx:
    states = {f.name: f.state for f in tx.files.query(direction="in")}
    requests = len(tx.requests.query())
archive = {p.name: [p.stat().st_uid, oct(p.stat().st_mode & 0o777)] for p in config.folders.archive.iterdir()}
print(json.dumps({"taken": taken, "states": states, "requests": requests, "archive": archive}))
"""


def _reachable(path: Path) -> bool:
    """Whether any user can run ``path``: every folder on the way searchable by others."""
    real = path.resolve()
    return all(p.stat().st_mode & 0o001 for p in [*real.parents, real])


def _interpreter() -> str:
    """A Python of this version that the gateway user can run: ours, or the system's of the same
    minor version (this one may live under /root); the packages come from our site-packages."""
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, shutil.which(minor), f"/usr/bin/{minor}"):
        if candidate and Path(candidate).exists() and _reachable(Path(candidate)):
            return candidate
    pytest.skip(f"no {minor} that a non-root user can run (the interpreter is under a private folder)")


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def _ensure_users() -> None:
    """Two real system users and the group they share (created once; kept for later runs)."""
    if subprocess.run(["getent", "group", SHARE], capture_output=True, check=False).returncode:
        _sh("groupadd", "--system", SHARE)
    for user in (BILLING, GATEWAY):
        if subprocess.run(["getent", "passwd", user], capture_output=True, check=False).returncode:
            _sh("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user)
        _sh("usermod", "-aG", SHARE, user)


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """A folder outside pytest's root-only tmp tree: ``shared/inbox`` (root:share 2770) and ``gw``
    (the gateway user's own base folder)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create the billing and gateway users (tests run as root in CI)")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed")
    _ensure_users()
    top = Path(tempfile.mkdtemp(prefix="x12gw-users-", dir="/tmp"))
    try:
        top.chmod(0o755)
        inbox = top / "shared" / "inbox"
        inbox.mkdir(parents=True)
        shutil.chown(inbox.parent, "root", SHARE)
        inbox.parent.chmod(0o750)
        shutil.chown(inbox, "root", SHARE)
        inbox.chmod(0o2770)
        (top / "gw").mkdir(mode=0o700)
        shutil.chown(top / "gw", GATEWAY, GATEWAY)
        yield top
    finally:
        shutil.rmtree(top)


def _bill(path: Path, data: bytes) -> None:
    """The billing system writes ``path`` (umask 027: readable by the shared group)."""
    subprocess.run(
        ["sh", "-c", 'umask 027; cat >> "$1"', "sh", str(path)],
        input=data,
        user=BILLING,
        group=BILLING,
        extra_groups=[SHARE],
        check=True,
    )


def _gateway_intake(top: Path) -> dict[str, Any]:
    """One intake pass as the gateway user (a different non-root uid, in the shared group)."""
    config = minimal_config(top / "gw")
    config["inbox"] = {"stable_seconds": 0, "require_done_marker": True}
    config["folders"] = {"inbox": str(top / "shared" / "inbox")}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "X12GW_MEMBER_HASH_KEY": KEY,
    }
    done = subprocess.run(
        [_interpreter(), "-c", RUNNER, json.dumps(config), str(top / "gw")],
        capture_output=True,
        text=True,
        user=GATEWAY,
        group=GATEWAY,
        extra_groups=[SHARE],
        umask=0o077,
        env=env,
        cwd=top / "gw",
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "will retry" not in done.stderr, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_billing_users_file_is_archived_as_our_own_and_its_marker_removed(shared: Path) -> None:
    """A file and its .done marker owned by the billing user: the request is committed, the archive
    holds the gateway's own 0600 copy (no chmod of a file we do not own), the marker is removed,
    and the next file of that name is not taken until it is complete and announced again."""
    inbox = shared / "shared" / "inbox"
    sample = json.loads((REQUESTS / "270-subscriber.json").read_text())
    first = json.dumps(sample | {"trace_number": "BILL-1"}).encode()
    _bill(inbox / "req.json", first)
    _bill(inbox / "req.json.done", b"")
    assert (inbox / "req.json").stat().st_uid == pwd.getpwnam(BILLING).pw_uid
    result = _gateway_intake(shared)
    assert result["states"] == {"req.json": "accepted"}
    assert result["requests"] == 1
    gateway_uid = pwd.getpwnam(GATEWAY).pw_uid
    assert list(result["archive"].values()) == [[gateway_uid, "0o600"]]
    assert sorted(p.name for p in inbox.iterdir()) == [], "file and marker both gone"
    # the next export of the same name, half written: no marker, so not taken
    second = json.dumps([sample | {"trace_number": "BILL-2"}, sample | {"trace_number": "BILL-3"}]).encode()
    _bill(inbox / "req.json", second[:40])
    assert _gateway_intake(shared)["requests"] == 1
    _bill(inbox / "req.json", second[40:])
    _bill(inbox / "req.json.done", b"")
    result = _gateway_intake(shared)
    assert result["requests"] == 3
    assert result["states"] == {"req.json": "accepted"}  # both files of the name (keyed by name)
    assert len(result["archive"]) == 2
    assert not [p for p in (shared / "gw").rglob("*") if p.is_symlink()]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (shared / "gw" / "archive").iterdir())
