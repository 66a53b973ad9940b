"""An in-process SFTP server over one local folder: for tests and the clearinghouse simulator.

It is a real SSH/SFTP server (paramiko), so the client is exercised over real sockets, host keys,
authentication and the SFTP protocol; only the far side is ours. Paths are confined to the root
folder (``..`` above the root and symlinks leading out are refused). Each accepted connection gets
its own transport thread, so sequential and concurrent clients are served.

Fault injection: every operation first asks ``faults.before(FaultContext)``; a subclass of
``SftpFaults`` can return an SFTP status code to fail the operation (e.g.
``SFTP_PERMISSION_DENIED``), call ``ctx.session.drop()`` to cut the connection, or
``ctx.session.stall(seconds)`` to stop answering for a while. Operation names are listed in
``OPERATIONS``. For deeper changes, subclass ``RootedSftpInterface`` and set
``SftpServer.interface_class``.
"""

from __future__ import annotations

import contextlib
import hmac
import itertools
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import SFTP_FAILURE, SFTP_OK, SFTP_PERMISSION_DENIED

from gateway.errors import ConfigError
from gateway.transport.sftp import SftpEndpoint, parse_public_key, public_key_line

OPERATIONS = (
    "connect",
    "open",
    "read",
    "write",
    "fstat",
    "stat",
    "lstat",
    "list",
    "remove",
    "rename",
    "posix_rename",
    "mkdir",
    "rmdir",
    "chattr",
)
_R = TypeVar("_R")


class _Escape(Exception):  # noqa: N818 - internal signal, never leaves this module
    """A client path points outside the served root."""


class Session:
    """One client connection, as seen by fault hooks: ``number`` counts connections from 1."""

    def __init__(self, number: int, stopping: threading.Event) -> None:
        self.number = number
        self._stopping = stopping
        self._transport: paramiko.Transport | None = None

    def drop(self) -> None:
        """Cut the connection abruptly (no SSH disconnect message), like a network failure."""
        if self._transport is not None:
            self._transport.close()

    def stall(self, seconds: float) -> None:
        """Stop answering for ``seconds`` (less if the server stops or the connection goes away)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stopping.wait(min(remaining, 0.05)):
                return
            if self._transport is not None and not self._transport.is_active():
                return


@dataclass(frozen=True)
class FaultContext:
    """What is about to happen: ``op`` (see OPERATIONS), the client's ``path`` (root-relative,
    starting with '/'), ``dest`` for renames, ``offset``/``length`` for reads and writes."""

    op: str
    path: str
    session: Session
    dest: str = ""
    offset: int = 0
    length: int = 0


class SftpFaults:
    """No faults. Subclass and override ``before`` to inject them."""

    def before(self, ctx: FaultContext) -> int | None:  # noqa: ARG002 - the hook's signature
        """Return an SFTP status code to fail the operation, or None to let it run."""
        return None


class _Handle(paramiko.SFTPHandle):
    """An open file; reads and writes consult the fault hook first."""

    def __init__(self, flags: int, iface: RootedSftpInterface, vpath: str, fileobj: Any) -> None:
        super().__init__(flags)
        self._iface = iface
        self._vpath = vpath
        self.readfile = fileobj
        self.writefile = fileobj

    def read(self, offset: int, length: int) -> bytes | int:
        code = self._iface.fault("read", self._vpath, offset=offset, length=length)
        return code if code is not None else super().read(offset, length)

    def write(self, offset: int, data: Any) -> int:
        code = self._iface.fault("write", self._vpath, offset=offset, length=len(data))
        return code if code is not None else super().write(offset, data)

    def stat(self) -> paramiko.SFTPAttributes | int:
        code = self._iface.fault("fstat", self._vpath)
        if code is not None:
            return code
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return _status(exc)

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:  # noqa: ARG002 - paramiko's signature
        return self._iface.fault("chattr", self._vpath) or SFTP_OK


class _SessionServer(paramiko.ServerInterface):
    """SSH side of one connection: who may log in, and that only sessions (for sftp) open."""

    def __init__(self, owner: SftpServer, session: Session) -> None:
        self.owner = owner
        self.session = session

    def get_allowed_auths(self, username: str) -> str:  # noqa: ARG002 - paramiko's signature
        methods = []
        if self.owner._authorized_keys:
            methods.append("publickey")
        if self.owner._password is not None:
            methods.append("password")
        return ",".join(methods)

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == self.owner.username and any(key == k for k in self.owner._authorized_keys)
        return AUTH_SUCCESSFUL if ok else AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        expected = self.owner._password
        ok = (
            expected is not None
            and username == self.owner.username
            and hmac.compare_digest(password.encode(), expected.encode())
        )
        return AUTH_SUCCESSFUL if ok else AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:  # noqa: ARG002
        return OPEN_SUCCEEDED if kind == "session" else OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class RootedSftpInterface(paramiko.SFTPServerInterface):
    """SFTP operations on the server's root folder; the client sees it as '/'."""

    def __init__(self, server: paramiko.ServerInterface, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        if not isinstance(server, _SessionServer):
            raise TypeError("RootedSftpInterface needs the SftpServer's session server")
        self.owner = server.owner
        self.session = server.session
        self.root = server.owner.root

    # ----------------------------------------------------------------- plumbing

    def fault(self, op: str, path: str, *, dest: str = "", offset: int = 0, length: int = 0) -> int | None:
        """Ask the fault hook about ``op``; returns a status code to fail with, or None."""
        return self.owner.faults.before(FaultContext(op, path, self.session, dest, offset, length))

    def virtual(self, path: str) -> str:
        """Normalise a client path to '/a/b' form; raises _Escape if it climbs above the root."""
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise _Escape
                parts.pop()
            else:
                parts.append(part)
        return "/" + "/".join(parts)

    def real(self, vpath: str) -> Path:
        """Map a normalised path to the local file; refuses symlinks that lead out of the root."""
        real = self.root.joinpath(*[p for p in vpath.split("/") if p])
        resolved = real.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise _Escape
        return real

    def run(self, op: str, path: str, action: Callable[[Path, str], _R], *, dest: str = "") -> _R | int:
        """Resolve, consult the fault hook, run ``action(real_path, virtual_path)``, map OSError."""
        try:
            vpath = self.virtual(path)
            real = self.real(vpath)
        except _Escape:
            return SFTP_PERMISSION_DENIED
        code = self.fault(op, vpath, dest=dest)
        if code is not None:
            return code
        try:
            return action(real, vpath)
        except OSError as exc:
            return _status(exc)

    def run_two(self, op: str, oldpath: str, newpath: str, action: Callable[[Path, Path], object]) -> int:
        """Like ``run`` for operations on two paths (renames)."""
        try:
            new_v = self.virtual(newpath)
            new_real = self.real(new_v)
        except _Escape:
            return SFTP_PERMISSION_DENIED

        def both(old_real: Path, _old_v: str) -> int:
            action(old_real, new_real)
            return SFTP_OK

        return self.run(op, oldpath, both, dest=new_v)

    # ----------------------------------------------------------------- operations

    def canonicalize(self, path: str) -> str:
        try:
            return self.virtual(path)
        except _Escape:
            return "/"

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        def do(real: Path, vpath: str) -> paramiko.SFTPHandle:
            mode = stat.S_IMODE(attr.st_mode) if attr.st_mode is not None else 0o644
            fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0), mode)
            if flags & os.O_WRONLY:
                fmode = "ab" if flags & os.O_APPEND else "wb"
            elif flags & os.O_RDWR:
                fmode = "a+b" if flags & os.O_APPEND else "r+b"
            else:
                fmode = "rb"
            return _Handle(flags, self, vpath, os.fdopen(fd, fmode))

        return self.run("open", path, do)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        def do(real: Path, _vpath: str) -> list[paramiko.SFTPAttributes]:
            out = []
            with os.scandir(real) as entries:
                for entry in entries:
                    try:  # an entry renamed or removed while we list is skipped, not an error
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    out.append(paramiko.SFTPAttributes.from_stat(info, entry.name))
            return out

        return self.run("list", path, do)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self.run("stat", path, lambda real, _v: paramiko.SFTPAttributes.from_stat(real.stat()))

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self.run("lstat", path, lambda real, _v: paramiko.SFTPAttributes.from_stat(real.lstat()))

    def remove(self, path: str) -> int:
        return self.run("remove", path, lambda real, _v: _ok(real.unlink))

    def rename(self, oldpath: str, newpath: str) -> int:
        """SFTP v3 rename: like OpenSSH, refuses to replace an existing target."""

        def do(old: Path, new: Path) -> None:
            if new.exists():
                raise FileExistsError
            old.rename(new)

        return self.run_two("rename", oldpath, newpath, do)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self.run_two("posix_rename", oldpath, newpath, lambda old, new: _ok(lambda: old.replace(new)))

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        mode = stat.S_IMODE(attr.st_mode) if attr.st_mode is not None else 0o755
        return self.run("mkdir", path, lambda real, _v: _ok(lambda: real.mkdir(mode)))

    def rmdir(self, path: str) -> int:
        return self.run("rmdir", path, lambda real, _v: _ok(real.rmdir))

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:  # noqa: ARG002 - attributes ignored
        return self.run("chattr", path, lambda real, _v: _ok(real.stat))


def _status(exc: OSError) -> int:
    """The SFTP status for a local OSError (permission denied, no such file, else failure)."""
    return paramiko.SFTPServer.convert_errno(exc.errno) if exc.errno is not None else SFTP_FAILURE


def _ok(action: Callable[[], object]) -> int:
    action()
    return SFTP_OK


def _public_keys(keys: Iterable[paramiko.PKey | str]) -> tuple[paramiko.PKey, ...]:
    return tuple(parse_public_key(k) if isinstance(k, str) else k for k in keys)


class SftpServer:
    """Serve ``root`` over SFTP on ``host`` (default 127.0.0.1), port 0 = an ephemeral port.

    Users log in as ``username`` with one of ``authorized_keys`` (PKey objects or OpenSSH lines)
    and/or ``password``. ``host_key`` is the server's private host key; pin ``host_key_line``.
    """

    interface_class: type[RootedSftpInterface] = RootedSftpInterface

    def __init__(
        self,
        root: Path,
        host_key: paramiko.PKey,
        *,
        username: str = "x12gw",
        authorized_keys: Iterable[paramiko.PKey | str] = (),
        password: str | None = None,
        faults: SftpFaults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise ConfigError(f"sftp server root {root} is not a directory")
        self.host_key = host_key
        self.username = username
        self._authorized_keys = _public_keys(authorized_keys)
        self._password = password
        if not self._authorized_keys and password is None:
            raise ConfigError("sftp server needs an authorized key or a password")
        self.faults = faults if faults is not None else SftpFaults()
        self.host = host
        self._wanted_port = port
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._transports: list[paramiko.Transport] = []
        self._numbers = itertools.count(1)
        self.connections = 0

    def __repr__(self) -> str:
        return f"SftpServer(root={str(self.root)!r}, host={self.host!r}, port={self._wanted_port})"

    @property
    def port(self) -> int:
        """The listening port (known once started)."""
        if self._listener is None:
            raise ConfigError("sftp server is not started")
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def host_key_line(self) -> str:
        """The host key as an OpenSSH public-key line, for the client to pin."""
        return public_key_line(self.host_key)

    def endpoint(
        self,
        *,
        key_file: Path | None = None,
        password: str | None = None,
        username: str | None = None,
        timeout: float = 10.0,
        partner: str = "sim",
    ) -> SftpEndpoint:
        """An SftpEndpoint for this server with its host key pinned."""
        return SftpEndpoint(
            host=self.host,
            port=self.port,
            username=username or self.username,
            key_file=key_file,
            password=password,
            host_keys=(self.host_key_line,),
            timeout=timeout,
            partner=partner,
        )

    def start(self) -> Self:
        """Bind and start accepting in a background thread."""
        if self._listener is not None:
            return self
        listener = socket.create_server((self.host, self._wanted_port))
        listener.settimeout(0.1)
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name=f"sftp-server-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection, wait for the accept thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            transport.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                conn, _addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), name="sftp-session", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        """Set up one connection; paramiko's transport thread then carries it."""
        session = Session(next(self._numbers), self._stopping)
        with self._lock:
            self.connections += 1
        if self.faults.before(FaultContext("connect", "/", session)) is not None or self._stopping.is_set():
            conn.close()
            return
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        transport.set_subsystem_handler("sftp", paramiko.SFTPServer, self.interface_class)
        session._transport = transport
        with self._lock:
            if self._stopping.is_set():  # stop() already collected the transports
                transport.close()
                return
            self._transports = [t for t in self._transports if t.is_active()]
            self._transports.append(transport)
        try:
            transport.start_server(event=threading.Event(), server=_SessionServer(self, session))
        except (paramiko.SSHException, OSError, EOFError):
            with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
                transport.close()
