"""Helpers for SFTP tests (keys, server targets, faults); fixtures live in ``sftp_fixtures``.

Kept apart from the fixture plugin so test modules can import these names without importing the
plugin module before pytest registers it (which would skip its assertion rewriting).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, Unpack

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from gateway.transport.sftp import SftpEndpoint
from payersim.sftp_server import FaultContext, SftpFaults, SftpServer

SFTP_PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway test password
KEY_KINDS = ("ed25519", "ecdsa", "rsa")


# --------------------------------------------------------------------------- keys


def write_private_key(path: Path, kind: str = "ed25519") -> Path:
    """Write a new unencrypted OpenSSH private key (mode 0600) and ``path.pub``; returns ``path``."""
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "ecdsa":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(kind)
    data = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    Path(f"{path}.pub").write_text(public + "\n")
    return path


def public_line_of(path: Path) -> str:
    """The OpenSSH public-key line stored next to a private key written by ``write_private_key``."""
    return Path(f"{path}.pub").read_text().strip()


@dataclass(frozen=True)
class ClientKeys:
    """Client key files: one authorised key per type, plus a stranger no server knows."""

    by_kind: dict[str, Path]
    stranger: Path

    def authorized_lines(self) -> list[str]:
        return [public_line_of(p) for p in self.by_kind.values()]


def new_host_key_line(kind: str = "ed25519") -> str:
    """A fresh ed25519 or ECDSA public-key line no server uses (for 'changed host key' tests)."""
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    if kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    return private.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


# --------------------------------------------------------------------------- targets


class EndpointFields(TypedDict, total=False):
    """The keyword arguments of ``SftpEndpoint``, so a test's overrides are checked field by field."""

    host: str
    port: int
    username: str
    key_file: Path | None
    password: str | None
    host_keys: tuple[str, ...]
    known_hosts_file: Path | None
    timeout: float
    partner: str
    key_passphrase: str | None


@dataclass
class SftpTarget:
    """A running SFTP server for a test: how to reach it and where its files are on disk."""

    kind: str
    host: str
    port: int
    username: str
    host_key_line: str
    root: Path  # the folder the server serves, as seen locally
    remote_root: str  # the same folder, as the client must name it
    keys: ClientKeys
    password: str | None = None
    server: SftpServer | None = None
    sshd_pid: int | None = None
    _counter: list[int] = field(default_factory=lambda: [0])

    def endpoint(self, key: str | None = "ed25519", **overrides: Unpack[EndpointFields]) -> SftpEndpoint:
        """An endpoint with this server's host key pinned, logging in with client key ``key``."""
        values: EndpointFields = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "key_file": self.keys.by_kind[key] if key else None,
            "host_keys": (self.host_key_line,),
            "timeout": 10.0,
            "partner": f"test-{self.kind}",
        }
        values.update(overrides)
        return SftpEndpoint(**values)

    def new_dir(self, stem: str) -> tuple[str, Path]:
        """A fresh empty directory on the server: (remote path for the client, local path)."""
        self._counter[0] += 1
        name = f"{stem}-{self._counter[0]}"
        local = self.root / name
        local.mkdir()
        return f"{self.remote_root.rstrip('/')}/{name}", local

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        """While inside, the server stops answering requests on existing connections."""
        if self.server is not None:
            faults = self.server.faults
            if not isinstance(faults, SwitchableFaults):
                raise TypeError("stalled() needs a server built with SwitchableFaults")
            faults.stall = True
            try:
                yield
            finally:
                faults.stall = False
            return
        if self.sshd_pid is None:
            raise TypeError("stalled() needs a paramiko server or an sshd pid")
        stopped = descendants(self.sshd_pid)
        for pid in stopped:
            send_signal(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in stopped:
                send_signal(pid, signal.SIGCONT)


class SwitchableFaults(SftpFaults):
    """Faults for the shared paramiko server: none, or stall every request while ``stall`` is set."""

    def __init__(self) -> None:
        self.stall = False

    def before(self, ctx: FaultContext) -> int | None:
        if self.stall and ctx.op != "connect":
            ctx.session.stall(30)
        return None


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (the per-connection sshd processes of our own sshd)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    queue = list(children.get(pid, []))
    while queue:
        child = queue.pop()
        found.append(child)
        queue.extend(children.get(child, []))
    return found


def send_signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
