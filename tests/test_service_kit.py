"""The service kit: the systemd unit's hardening, the container files, the lock file, and the run loop's
sd_notify messages (READY, WATCHDOG, STOPPING) over a real datagram socket."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gateway.runtime.config import parse_config
from gateway.runtime.runner import Gateway, open_context
from gateway.runtime.sdnotify import Notifier
from tests.protection_support import write_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "x12gw.service"


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as section -> key -> every value (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit_is_hardened() -> None:
    """The unit runs as a dedicated user under Type=notify with a watchdog, restarts on failure, and
    carries the hardening keys the deployment guide promises."""
    service = _unit(UNIT)["Service"]
    expected = {
        "Type": "notify",
        "User": "x12gw",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "true",
        "PrivateTmp": "true",
        "ProtectHome": "true",
        "Restart": "on-failure",
        "UMask": "0077",
    }
    assert {k: service[k][-1] for k in expected} == expected
    assert int(service["WatchdogSec"][-1]) > 0
    writable = service["ReadWritePaths"][-1].split()
    assert "/var/lib/x12gw" in writable
    assert service["CapabilityBoundingSet"] == [""]
    assert "--config" in service["ExecStart"][-1]
    assert "run" in service["ExecStart"][-1].split()


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit without a warning (ExecStart pointed at this venv's
    x12gw, as an installation would have it)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    x12gw = Path(sys.executable).with_name("x12gw")
    text = UNIT.read_text(encoding="utf-8").replace("/opt/x12gw/venv/bin/x12gw", str(x12gw))
    copy = tmp_path / "x12gw.service"
    copy.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [tool, "verify", str(copy)], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr, done.stderr


def test_env_file_names_the_keys_without_values() -> None:
    """The env file template lists the key variables and ships no secret."""
    lines = [line for line in (DEPLOY / "systemd" / "x12gw.env").read_text().splitlines() if "=" in line]
    values = dict(line.lstrip("#").split("=", 1) for line in lines)
    assert {"X12GW_PAYLOAD_KEY", "X12GW_MEMBER_HASH_KEY", "X12GW_CONFIG"} <= set(values)
    assert values["X12GW_PAYLOAD_KEY"] == values["X12GW_MEMBER_HASH_KEY"] == ""


def _copies(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources += line.split()[1:-1]
    return sources


@pytest.mark.parametrize("name", ["Dockerfile", "compose/Dockerfile.clearinghouse"])
def test_dockerfiles_copy_files_that_exist_and_install_from_the_lock(name: str) -> None:
    """Every COPY source exists in the repository and dependencies come from the hashed lock file."""
    dockerfile = DEPLOY / name
    for source in _copies(dockerfile):
        assert (ROOT / source).exists(), source
    assert "--require-hashes -r requirements.lock" in dockerfile.read_text()


def test_gateway_image_is_non_root_with_its_folders_as_a_volume() -> None:
    """The gateway image ends as a numeric non-root user, with /var/lib/x12gw as a volume."""
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    assert 'VOLUME ["/var/lib/x12gw"]' in text


def test_compose_runs_gateway_postgres_and_openssh_clearinghouse() -> None:
    """The compose file has the three services; the gateway is read-only, non-root, capability-free,
    waits for a healthy PostgreSQL, and its configuration parses and points at both."""
    doc = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = doc["services"]
    assert {"gateway", "postgres", "clearinghouse"} <= set(services)
    gateway = services["gateway"]
    assert gateway["read_only"] is True
    assert gateway["user"].split(":")[0] not in ("0", "root")
    assert gateway["cap_drop"] == ["ALL"]
    assert "/tmp" in gateway["tmpfs"]
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(v.endswith(":/var/lib/x12gw") for v in gateway["volumes"])
    assert "healthcheck" in services["postgres"]
    sshd = (DEPLOY / "compose" / "sshd_config").read_text()
    assert "PasswordAuthentication no" in sshd
    assert "internal-sftp" in sshd
    config = parse_config(tomllib.loads((DEPLOY / "compose" / "gateway.toml").read_text()), "/etc/x12gw")
    assert config.gateway.database_url.startswith("postgresql+psycopg://x12gw@postgres")
    assert config.partners[0].host == "clearinghouse"
    assert config.folders.inbox == Path("/var/lib/x12gw/inbox")


def test_lock_file_pins_every_dependency_with_hashes() -> None:
    """requirements.lock pins each runtime and dev dependency of pyproject.toml to one version with hashes."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]

    def canonical(name: str) -> str:  # PEP 503: fhir.resources is pinned as fhir-resources
        return re.sub(r"[-_.]+", "-", name).lower()

    names = {canonical(re.split(r"[<>=\[ ;]", d, maxsplit=1)[0]) for d in wanted}
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {
        canonical(m.group(1))
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==\S+", lock, re.MULTILINE)
    }
    assert names <= pinned, sorted(names - pinned)
    assert lock.count("--hash=sha256:") >= len(pinned)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def _messages(sock: socket.socket) -> list[str]:
    out = []
    sock.settimeout(0.05)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except TimeoutError:
        return out


def test_run_loop_notifies_ready_watchdog_and_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under systemd (NOTIFY_SOCKET, WATCHDOG_USEC) one cycle sends READY=1, WATCHDOG=1, then STOPPING=1."""
    sock, path = notify_socket
    monkeypatch.delenv("X12GW_PAYLOAD_KEY", raising=False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    config, _ = write_config(tmp_path)
    ctx = open_context(config)
    try:
        Gateway(ctx).run(once=True, interval=0.01)
    finally:
        ctx.store.close()
    got = _messages(sock)
    assert got[0].startswith("READY=1\nSTATUS=")
    assert got[1:] == ["WATCHDOG=1", "STOPPING=1"]


def test_idle_wait_keeps_pinging_the_watchdog(notify_socket: tuple[socket.socket, str]) -> None:
    """While idle the loop pings at half the watchdog period, and stops waiting as soon as asked."""
    sock, path = notify_socket
    notifier = Notifier(path, 0.1)
    stop = threading.Event()
    notifier.idle_wait(stop, 0.3)
    assert _messages(sock).count("WATCHDOG=1") >= 3
    stop.set()
    notifier.idle_wait(stop, 60)  # returns at once: a stop request is never delayed by the wait
    assert Notifier(None, None).send("READY=1") is False  # outside systemd nothing is sent
