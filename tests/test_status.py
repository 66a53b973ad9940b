"""``x12gw status`` on the demo's gateway (``x12gw demo --keep DIR``): green as the demo leaves it,
a warning with a quarantined file, critical with a paused partner or an unreachable database. Each
command runs in its own process, as a monitoring check would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

MAIN = "import sys; from gateway.cli import main; sys.exit(main(sys.argv[1:]))"
PARTNER = "sim-clearinghouse"
REQUESTS = Path(__file__).resolve().parent.parent / "sample_edi" / "requests"


def _x12gw(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", MAIN, *argv], capture_output=True, text=True, timeout=300, check=False, cwd=cwd
    )


def _status(config: Path) -> tuple[int, dict[str, Any]]:
    proc = _x12gw("status", "--json", "--config", str(config))
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's folder after a complete demo run (its clearinghouse simulator has stopped)."""
    folder = tmp_path_factory.mktemp("status") / "demo"
    proc = _x12gw("demo", "--keep", str(folder))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return folder


def _copy(demo: Path, tmp_path: Path, **settings: str) -> Path:
    """A copy of the demo's folder whose partner has ``settings`` changed or added."""
    folder = tmp_path / "gw"
    shutil.copytree(demo, folder)
    config = folder / "gateway.toml"
    lines = config.read_text(encoding="utf-8").splitlines()
    lines = [line for line in lines if line.split(" = ")[0] not in settings]
    at = lines.index(f'name = "{PARTNER}"') + 1
    lines[at:at] = [f"{key} = {value}" for key, value in settings.items()]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def test_green_on_the_demo(demo: Path) -> None:
    """Right after the demo: exit 0, the partner connected, nothing waiting, overdue or quarantined."""
    code, doc = _status(demo / "gateway.toml")
    assert code == 0, doc["problems"]
    assert doc["status"] == "ok"
    assert doc["database"] == "reachable"
    [partner] = doc["partners"]
    assert partner["name"] == PARTNER
    assert partner["connected"] is True
    assert partner["paused"] is False
    assert partner["last_exchange"]["file"]
    assert doc["queues"]["requests"] == {"answered": 9}
    assert doc["oldest_unanswered"] is None
    assert (doc["overdue_acks"], doc["overdue_requests"], doc["quarantined_files"]) == (0, 0, 0)
    text = _x12gw("status", "--config", str(demo / "gateway.toml"))
    assert text.returncode == 0
    assert text.stdout.startswith("status: OK")
    assert f"{PARTNER}: connected" in text.stdout


def test_red_with_a_paused_partner(demo: Path, tmp_path: Path) -> None:
    """The clearinghouse is gone and one failure pauses: run --once exits 1, status exits 2 and says
    which partner is paused and why; the new request is the oldest unanswered."""
    config = _copy(demo, tmp_path, pause_after_failures="1", retry_attempts="1")
    inbox = config.parent / "inbox"
    request = json.loads((REQUESTS / "270-subscriber.json").read_text(encoding="utf-8"))
    request["trace_number"] = "EL-LATE"  # not a duplicate of the demo's file
    (inbox / "late.json").write_text(json.dumps(request), encoding="utf-8")
    os.utime(inbox / "late.json", (0, 0))  # long complete: taken at once whatever inbox.stable_seconds
    run = _x12gw("run", "--once", "--config", str(config))
    assert run.returncode == 1, run.stderr[-2000:]
    code, doc = _status(config)
    assert code == 2
    assert doc["status"] == "critical"
    [partner] = doc["partners"]
    assert partner["paused"] is True
    assert partner["connected"] is False
    assert partner["paused_why"]
    assert any(p["level"] == "critical" and PARTNER in p["message"] for p in doc["problems"])
    assert doc["oldest_unanswered"]["state"] == "queued"
    text = _x12gw("status", "--config", str(config))
    assert text.returncode == 2
    assert text.stdout.startswith("status: CRITICAL")
    assert "PAUSED" in text.stdout


def test_warning_with_a_quarantined_file(demo: Path, tmp_path: Path) -> None:
    """A broken inbox file is quarantined (the partner failing once does not pause it): exit 1."""
    config = _copy(demo, tmp_path, retry_attempts="1")
    broken = config.parent / "inbox" / "broken.json"
    broken.write_bytes(b'{"type": "270", "trace_number": ')
    os.utime(broken, (0, 0))
    assert _x12gw("run", "--once", "--config", str(config)).returncode == 1  # the partner is down
    code, doc = _status(config)
    assert code == 1, doc["problems"]
    assert doc["status"] == "warning"
    assert doc["quarantined_files"] == 1
    assert doc["partners"][0]["paused"] is False


def test_critical_when_the_database_is_unreachable(demo: Path, tmp_path: Path) -> None:
    """A database that cannot be reached: exit 2, said so in the output."""
    config = tmp_path / "gateway.toml"
    text = (demo / "gateway.toml").read_text(encoding="utf-8")
    url = 'database_url = "postgresql+psycopg://x12gw@127.0.0.1:9/none"'
    config.write_text(text.replace("[gateway]\n", f"[gateway]\n{url}\n", 1), encoding="utf-8")
    for folder in ("inbox", "keys"):
        shutil.copytree(demo / folder, tmp_path / folder)
    code, doc = _status(config)
    assert code == 2
    assert doc["database"] == "unreachable"
    assert doc["status"] == "critical"
