"""SFTP test fixtures: client keys, the in-process paramiko server, and a real OpenSSH sshd.

Load with ``pytest_plugins = ["tests.sftp_fixtures"]`` in a test module (helpers and types are in
``tests.sftp_support``). ``sftp_target`` is parametrised over both servers, so a test written
against it runs against each. OpenSSH tests are skipped (with the reason) when /usr/sbin/sshd is
absent, unless X12GW_REQUIRE_SSHD is set, in which case they fail: CI installs openssh-server and
must not silently skip them.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from payersim.sftp_server import SftpServer
from tests.sftp_support import (
    KEY_KINDS,
    SFTP_PASSWORD,
    ClientKeys,
    SftpTarget,
    SwitchableFaults,
    descendants,
    public_line_of,
    send_signal,
    write_private_key,
)

SSHD = Path("/usr/sbin/sshd")


@pytest.fixture(scope="session")
def client_keys(tmp_path_factory: pytest.TempPathFactory) -> ClientKeys:
    """Authorised ed25519/ECDSA/RSA client keys and one unauthorised key (generated once)."""
    base = tmp_path_factory.mktemp("client-keys")
    by_kind = {kind: write_private_key(base / f"id_{kind}", kind) for kind in KEY_KINDS}
    return ClientKeys(by_kind, write_private_key(base / "id_stranger"))


@pytest.fixture(scope="session")
def paramiko_target(
    tmp_path_factory: pytest.TempPathFactory, client_keys: ClientKeys
) -> Iterator[SftpTarget]:
    """The in-process paramiko SFTP server (keys of every type, and a password, accepted)."""
    base = tmp_path_factory.mktemp("paramiko-sftp")
    root = base / "root"
    root.mkdir()
    host_key = paramiko.PKey.from_path(write_private_key(base / "host_key"))
    server = SftpServer(
        root,
        host_key,
        username="x12gw",
        authorized_keys=client_keys.authorized_lines(),
        password=SFTP_PASSWORD,
        faults=SwitchableFaults(),
    )
    with server:
        yield SftpTarget(
            kind="paramiko",
            host=server.host,
            port=server.port,
            username=server.username,
            host_key_line=server.host_key_line,
            root=server.root,
            remote_root="/",
            keys=client_keys,
            password=SFTP_PASSWORD,
            server=server,
        )


# --------------------------------------------------------------------------- OpenSSH


def _require_sshd() -> None:
    if SSHD.exists():
        return
    if os.environ.get("X12GW_REQUIRE_SSHD"):
        pytest.fail(f"X12GW_REQUIRE_SSHD is set but {SSHD} is missing (apt-get install openssh-server)")
    pytest.skip(
        f"{SSHD} not installed (apt-get install openssh-server; set X12GW_REQUIRE_SSHD=1 to require it)"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _sshd_config(base: Path, port: int, host_key: Path, authorized_keys: Path) -> Path:
    config = base / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress 127.0.0.1:{port}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized_keys}",
                "PidFile none",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "PrintMotd no",
                "UseDNS no",
                "MaxStartups 64",
                "LogLevel VERBOSE",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    return config


def _wait_for_banner(proc: subprocess.Popen[bytes], port: int, log: Path) -> bool:
    """True once sshd answers with an SSH banner; False if it exited (e.g. port taken)."""
    for _ in range(200):
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            if conn.recv(8).startswith(b"SSH-"):
                return True
        time.sleep(0.05)
    pytest.fail(f"sshd did not start answering on port {port}; log:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def openssh_target(tmp_path_factory: pytest.TempPathFactory, client_keys: ClientKeys) -> Iterator[SftpTarget]:
    """A real OpenSSH sshd (internal-sftp) on a free loopback port, running as the current user."""
    _require_sshd()
    base = tmp_path_factory.mktemp("openssh-sftp")
    root = base / "root"
    root.mkdir()
    host_key = base / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    authorized_keys = base / "authorized_keys"
    authorized_keys.write_text("\n".join(client_keys.authorized_lines()) + "\n")
    with contextlib.suppress(OSError):
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = base / "sshd.log"
    for _attempt in range(5):
        port = _free_port()
        config = _sshd_config(base, port, host_key, authorized_keys)
        check = subprocess.run(
            [str(SSHD), "-t", "-f", str(config)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            pytest.fail(f"sshd rejected the test config: {check.stderr.strip()}")
        with log.open("ab") as log_out:
            proc = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)], stdout=log_out, stderr=log_out
            )
        if _wait_for_banner(proc, port, log):
            break
    else:
        pytest.fail(f"sshd could not start; log:\n{log.read_text()[-2000:]}")
    try:
        yield SftpTarget(
            kind="openssh",
            host="127.0.0.1",
            port=port,
            username=getpass.getuser(),
            host_key_line=public_line_of(host_key),
            root=root,
            remote_root=str(root),
            keys=client_keys,
            sshd_pid=proc.pid,
        )
    finally:
        for pid in descendants(proc.pid):
            send_signal(pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=["paramiko", "openssh"])
def sftp_target(request: pytest.FixtureRequest) -> SftpTarget:
    """Each SFTP server in turn: the in-process paramiko one and a real OpenSSH sshd."""
    target: SftpTarget = request.getfixturevalue(f"{request.param}_target")
    return target
