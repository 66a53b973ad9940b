"""Helpers for the clearinghouse-robustness tests: a gateway context pointed at a test SFTP server,
and hostile in-process servers (huge listings, huge files served lazily, trickling reads)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
from paramiko.sftp import SFTP_NO_SUCH_FILE, SFTP_OK

from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.runner import open_context
from payersim.sftp_server import RootedSftpInterface, SftpServer
from tests.sftp_support import write_private_key
from tests.test_precert import minimal_config


@dataclass(frozen=True)
class Reach:
    """How a partner section reaches one SFTP server."""

    host: str
    port: int
    username: str
    key_file: Path
    host_key_line: str


def partner_section(reach: Reach, download_dir: str, upload_dir: str, **extra: Any) -> dict[str, Any]:
    """The [[partners]] keys that point the minimal config's partner at a server."""
    return {
        "host": reach.host,
        "port": reach.port,
        "username": reach.username,
        "key_file": str(reach.key_file),
        "host_keys": [reach.host_key_line],
        "upload_dir": upload_dir,
        "download_dir": download_dir,
        "retry_attempts": 1,
        "timeout_seconds": 10,
        **extra,
    }


def make_context(base: Path, partners: list[dict[str, Any]], **top: Any) -> Context:
    """A real context (SQLite store, folders under ``base``) with these partner sections; the first
    updates the minimal config's ``acme``, the others are added as they are."""
    data = minimal_config(base)
    data["partners"][0].update(partners[0])
    data["partners"].extend(partners[1:])
    data.update(top)
    return open_context(parse_config(data, base))


def inbound_files(ctx: Context, partner: str = "acme") -> list[bytes]:
    """The content of every file recorded from ``partner``, oldest first."""
    with ctx.store.read() as tx:
        rows = tx.files.query(direction="in", partner=partner, limit=1000)
    return [ctx.payloads.get(r.sha256) for r in sorted(rows, key=lambda r: r.id)]


def put_remote(path: Path, data: bytes, mtime: int) -> None:
    """Write a remote file as a partner would, with a given modification time."""
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


# --------------------------------------------------------------------------- hostile servers


@dataclass
class Virtual:
    """Files that exist only as sizes and a byte pattern: served lazily, never stored.

    ``files``: name -> size in ``folder``; ``read_delay``: seconds each read request waits (a trickle);
    ``served``: bytes sent so far; ``removed``: names deleted by the client.
    """

    folder: str
    files: dict[str, int]
    read_delay: float = 0.0
    mtime: int = 1_700_000_000
    served: int = 0
    removed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attrs(self, name: str) -> paramiko.SFTPAttributes:
        attr = paramiko.SFTPAttributes()
        attr.filename = name
        attr.st_size = self.files[name]
        attr.st_mode = 0o100600
        attr.st_mtime = attr.st_atime = self.mtime
        attr.st_uid = attr.st_gid = 0
        return attr

    def name_of(self, vpath: str) -> str | None:
        head, _, name = vpath.rpartition("/")
        return name if head == self.folder and name in self.files else None


class _VirtualHandle(paramiko.SFTPHandle):
    def __init__(self, virtual: Virtual, name: str, stopping: Callable[[], bool]) -> None:
        super().__init__(os.O_RDONLY)
        self._virtual, self._name, self._stopping = virtual, name, stopping

    def read(self, offset: int, length: int) -> bytes | int:
        size = self._virtual.files[self._name]
        if self._virtual.read_delay:
            deadline = time.monotonic() + self._virtual.read_delay
            while time.monotonic() < deadline and not self._stopping():
                time.sleep(0.02)
        chunk = b"Z" * max(0, min(length, size - offset))
        with self._virtual.lock:
            self._virtual.served += len(chunk)
        return chunk

    def stat(self) -> paramiko.SFTPAttributes | int:
        return self._virtual.attrs(self._name)

    def close(self) -> None:
        return None


class VirtualInterface(RootedSftpInterface):
    """The rooted server, plus the owner's ``virtual`` files in one folder."""

    def _virtual(self) -> Virtual:
        virtual: Virtual = self.owner.virtual  # type: ignore[attr-defined]
        return virtual

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        virtual = self._virtual()
        if self.virtual(path) != virtual.folder:
            return super().list_folder(path)
        return [virtual.attrs(n) for n in virtual.files]

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        name = self._virtual().name_of(self.virtual(path))
        return super().stat(path) if name is None else self._virtual().attrs(name)

    lstat = stat

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        name = self._virtual().name_of(self.virtual(path))
        if name is None:
            return super().open(path, flags, attr)
        return _VirtualHandle(self._virtual(), name, self.owner._stopping.is_set)

    def remove(self, path: str) -> int:
        virtual = self._virtual()
        name = virtual.name_of(self.virtual(path))
        if name is None:
            return (
                super().remove(path)
                if not self.virtual(path).startswith(virtual.folder)
                else SFTP_NO_SUCH_FILE
            )
        del virtual.files[name]
        virtual.removed.append(name)
        return SFTP_OK


class VirtualServer(SftpServer):
    """An in-process SFTP server whose ``virtual`` files are served lazily (see ``Virtual``)."""

    interface_class = VirtualInterface

    def __init__(self, root: Path, base: Path, client_key: Path, virtual: Virtual) -> None:
        host_key = paramiko.PKey.from_path(write_private_key(base / "hostile_host_key"))
        public = Path(f"{client_key}.pub").read_text().strip()
        super().__init__(root, host_key, username="x12gw", authorized_keys=[public])
        self.virtual = virtual

    def reach(self, key_file: Path) -> Reach:
        return Reach(self.host, self.port, self.username, key_file, self.host_key_line)
