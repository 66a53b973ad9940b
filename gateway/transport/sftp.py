"""SFTP exchange with trading partners: pinned host keys, atomic uploads, verified downloads.

Why it is built this way:

* Host keys are pinned by the caller (OpenSSH public-key lines or a known_hosts file). Nothing is
  ever auto-accepted, and the system known_hosts is not consulted, so a partner's key must be
  configured explicitly; an unknown or changed key raises ``HostKeyError`` with the offered key's
  SHA256 fingerprint for the operator to compare.
* Uploads go to a hidden temporary name (``.NAME.part``), are size-checked, then renamed, so a
  partner never picks up half a file; a retry after a lost reply finds the final file and stops.
* Downloads land in an owner-only temporary file, are fsynced, size-checked and hashed, then renamed
  into place; deleting or moving the remote file is the caller's decision (after it has stored it).
* Every failure becomes a ``TransferError`` whose ``retryable`` flag drives ``retry()``. After a
  retryable failure the connection is dropped and the next operation reconnects, so
  ``retry(lambda: client.upload(...), ...)`` works inside one ``with SftpClient(...)`` block.
* Remote names are checked both ways (what we upload and what the partner shows us), because a
  name is an untrusted path component.

Nothing here logs; errors carry the partner label and operation, never passwords or file contents.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import random
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple, Self, TypeVar

import paramiko
from paramiko import sftp as sftp_cmd

from gateway.errors import ConfigError, HostKeyError, RemoteFileRefusedError, TransferError
from gateway.transport.hostkeys import (
    _ALL_HOST_KEY_ALGORITHMS,
    _host_key_algorithms,
    _PinnedHostKeyPolicy,
    load_private_key,
    parse_public_key,
    pinned_host_keys,
    public_key_line,
)
from gateway.transport.names import (
    _PART_OVERHEAD,
    MAX_NAME_BYTES,
    PART_PREFIX,
    PART_SUFFIX,
    _check_remote_dir,
    check_remote_name,
    part_name,
    remote_name_problem,
    safe_display,
)

__all__ = [  # names and keys live in their own modules; these re-exports keep old imports working
    "MAX_NAME_BYTES",
    "PART_PREFIX",
    "PART_SUFFIX",
    "DownloadResult",
    "Fetched",
    "Listing",
    "RejectedEntry",
    "RemoteEntry",
    "SftpClient",
    "SftpEndpoint",
    "check_remote_name",
    "load_private_key",
    "parse_public_key",
    "part_name",
    "pinned_host_keys",
    "public_key_line",
    "remote_name_problem",
    "retry",
    "safe_display",
]

_CHUNK = 32768
# Errors the server (or our disk) will repeat on a retry: retrying cannot help.
_PERMANENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EROFS, errno.EEXIST}
)

# Errors of our own machine's resources (disk, quota, descriptors, memory): they pass when the
# resource comes back, and they are never the partner's fault.
LOCAL_RESOURCE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)

T = TypeVar("T")


# --------------------------------------------------------------------------- endpoint


@dataclass(frozen=True)
class SftpEndpoint:
    """Where and how to reach one partner's SFTP server.

    Give ``key_file`` and/or ``password`` (read by the caller from an environment variable; it is
    kept out of ``repr``), and ``host_keys`` (OpenSSH public-key lines) and/or ``known_hosts_file``.
    ``timeout`` (seconds) bounds the TCP connect, the banner, authentication and every SFTP
    request. ``partner`` names the partner in error messages.
    """

    host: str
    port: int
    username: str
    key_file: Path | None = None
    password: str | None = field(default=None, repr=False)
    host_keys: tuple[str, ...] = ()
    known_hosts_file: Path | None = None
    timeout: float = 30.0
    partner: str = ""
    key_passphrase: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.host_keys, str):  # a single line is a common slip; accept it
            object.__setattr__(self, "host_keys", (self.host_keys,))
        if not self.host:
            raise ConfigError("sftp endpoint: host is empty")
        if not 0 < self.port < 65536:
            raise ConfigError(f"sftp endpoint {self.label}: port must be 1..65535")
        if not self.username:
            raise ConfigError(f"sftp endpoint {self.label}: username is empty")
        if self.key_file is None and not self.password:
            raise ConfigError(f"sftp endpoint {self.label}: give a key_file or a password")
        if not self.host_keys and self.known_hosts_file is None:
            raise ConfigError(
                f"sftp endpoint {self.label}: pin the server's host key (host_keys or known_hosts_file)"
            )
        if not self.timeout > 0:
            raise ConfigError(f"sftp endpoint {self.label}: timeout must be positive")

    @property
    def label(self) -> str:
        """The partner name if set, else host:port; used in every error message."""
        return self.partner or f"{self.host}:{self.port}"

    @property
    def host_key_name(self) -> str:
        """The name OpenSSH uses for this server in known_hosts (``[host]:port`` off port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RemoteEntry:
    """A regular file on the server; ``mtime`` is seconds since the epoch when the server says."""

    name: str
    size: int
    mtime: int | None


@dataclass(frozen=True)
class RejectedEntry:
    """A listed file whose name we refuse to touch; ``display`` is the name with unsafe chars escaped."""

    display: str
    reason: str


@dataclass(frozen=True)
class Listing:
    """Result of ``scan``: files safe to download, and files refused because of their name."""

    entries: tuple[RemoteEntry, ...]
    rejected: tuple[RejectedEntry, ...]
    truncated: bool = False  # the folder holds more entries than the caller asked to read


@dataclass(frozen=True)
class Fetched:
    """A downloaded file (see ``SftpClient.fetch``): where it landed, its SHA-256 (hex), its size,
    and the remote modification time it had while it was read (None when the server gives none)."""

    path: Path
    sha256: str
    size: int
    mtime: int | None


class DownloadResult(NamedTuple):
    """A downloaded file: where it landed, its SHA-256 (hex) and size in bytes."""

    path: Path
    sha256: str
    size: int


# --------------------------------------------------------------------------- error mapping


def _ssh_reason(exc: paramiko.SSHException) -> tuple[bool, str]:
    """(retryable, short reason) for paramiko's own exceptions."""
    if isinstance(exc, paramiko.BadAuthenticationType):
        return False, f"authentication failed (server allows: {', '.join(exc.allowed_types)})"
    if isinstance(exc, paramiko.AuthenticationException):
        return False, "authentication failed"
    if isinstance(exc, paramiko.ssh_exception.IncompatiblePeer):
        return False, f"no common algorithms with server ({safe_display(str(exc), 120)})"
    return True, f"connection error: {safe_display(str(exc), 120) or type(exc).__name__}"


def _reason(exc: BaseException, timeout: float) -> tuple[bool, str]:
    """(retryable, short reason) for a paramiko/socket/SFTP exception."""
    if isinstance(exc, paramiko.SSHException):
        return _ssh_reason(exc)
    if isinstance(exc, TimeoutError):
        return True, f"timed out after {timeout:g} s"
    if isinstance(exc, EOFError):
        return True, "connection closed by server"
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno not in _PERMANENT_ERRNOS, os.strerror(exc.errno)
    # SFTPError (protocol garbage) or an SFTP status without errno (SSH_FX_FAILURE): may be transient
    return True, f"server failure: {safe_display(str(exc), 120) or type(exc).__name__}"


_REMOTE_ERRORS = (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError)


def _local_error(exc: OSError, partner: str, operation: str, what: str) -> TransferError:
    """Local trouble is never the partner's fault (``local``); a full disk, a quota or too many open
    files pass once the resource returns (retryable), other local errors need an operator."""
    reason = os.strerror(exc.errno) if exc.errno is not None else type(exc).__name__
    return TransferError(
        f"sftp {partner}: {operation} failed: local {what}: {reason}",
        retryable=exc.errno in LOCAL_RESOURCE_ERRNOS,
        partner=partner,
        operation=operation,
        local=True,
    )


class _HashingWriter:
    """File-like sink for ``getfo``: writes to an fd, hashes and counts; local errors stay local."""

    def __init__(self, fd: int, partner: str) -> None:
        self._fd = fd
        self._partner = partner
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise _local_error(exc, self._partner, "download", "write") from exc
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def _read_local(stream: BinaryIO, partner: str) -> bytes:
    """Read the next chunk of the file being uploaded; local read errors stay local."""
    try:
        return stream.read(_CHUNK)
    except OSError as exc:
        raise _local_error(exc, partner, "upload", "read") from exc


# --------------------------------------------------------------------------- client


class SftpClient:
    """One SFTP session to one partner; use as a context manager. Not thread-safe.

    >>> with SftpClient(endpoint) as client:            # doctest: +SKIP
    ...     for entry in client.list("/outbound"):
    ...         path, digest, size = client.download("/outbound", entry.name, inbox_dir)
    """

    def __init__(self, endpoint: SftpEndpoint) -> None:
        self._endpoint = endpoint
        self._ssh: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._posix_rename = True

    @property
    def endpoint(self) -> SftpEndpoint:
        """The endpoint this client talks to."""
        return self._endpoint

    @property
    def connected(self) -> bool:
        """True while an SFTP session is open (it is dropped after a retryable failure)."""
        return self._sftp is not None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- session

    def connect(self) -> paramiko.SFTPClient:
        """Open the SSH connection and SFTP session (reusing an open one); returns the session."""
        if self._sftp is not None:
            return self._sftp
        ep = self._endpoint
        pkey = load_private_key(ep.key_file, ep.key_passphrase) if ep.key_file is not None else None
        pins = pinned_host_keys(ep)
        allowed = _host_key_algorithms(pins)
        disabled = [alg for alg in _ALL_HOST_KEY_ALGORITHMS if allowed and alg not in allowed]
        ssh = paramiko.SSHClient()  # no system or user known_hosts is loaded: only the pins count
        ssh.set_missing_host_key_policy(_PinnedHostKeyPolicy(ep.label, pins))
        try:
            ssh.connect(
                ep.host,
                ep.port,
                username=ep.username,
                password=ep.password,
                pkey=pkey,
                timeout=ep.timeout,
                banner_timeout=ep.timeout,
                auth_timeout=ep.timeout,
                channel_timeout=ep.timeout,
                allow_agent=False,
                look_for_keys=False,
                disabled_algorithms={"keys": disabled},
            )
            sftp = ssh.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(ep.timeout)
        except HostKeyError:
            ssh.close()
            raise
        except paramiko.ssh_exception.IncompatiblePeer as exc:
            ssh.close()
            if "host key" not in str(exc):
                raise self._error(exc, "connect", "") from exc
            raise HostKeyError(
                f"sftp {ep.label}: connect refused: server has none of the pinned host key types "
                f"({', '.join(sorted(allowed))})",
                partner=ep.label,
            ) from exc
        except _REMOTE_ERRORS as exc:
            ssh.close()
            raise self._error(exc, "connect", "") from exc
        self._ssh, self._sftp, self._posix_rename = ssh, sftp, True
        return sftp

    def close(self) -> None:
        """Close the session; safe to call twice."""
        sftp, ssh = self._sftp, self._ssh
        self._sftp = self._ssh = None
        if sftp is not None:
            with suppress(*_REMOTE_ERRORS):
                sftp.close()
        if ssh is not None:
            ssh.close()

    def _fail(self, operation: str, detail: str, *, retryable: bool) -> TransferError:
        """A TransferError in the common format: 'sftp PARTNER: OPERATION DETAIL'."""
        label = self._endpoint.label
        return TransferError(
            f"sftp {label}: {operation} {detail}", retryable=retryable, partner=label, operation=operation
        )

    def _refused(self, name: str, why: str) -> RemoteFileRefusedError:
        label = self._endpoint.label
        return RemoteFileRefusedError(
            f"sftp {label}: download {safe_display(name)} refused: {why}", why=why, partner=label
        )

    def _error(self, exc: BaseException, operation: str, subject: str) -> TransferError:
        if isinstance(exc, OSError) and exc.errno in LOCAL_RESOURCE_ERRNOS:
            # e.g. no descriptor left for the socket: our machine, not the partner
            return _local_error(exc, self._endpoint.label, operation, "resources")
        retryable, reason = _reason(exc, self._endpoint.timeout)
        what = f"{safe_display(subject)} " if subject else ""
        return self._fail(operation, f"{what}failed: {reason}", retryable=retryable)

    @contextmanager
    def _remote(self, operation: str, subject: str = "") -> Iterator[paramiko.SFTPClient]:
        """Run remote calls, mapping failures; a retryable one drops the (now unreliable) session."""
        sftp = self.connect()
        try:
            yield sftp
        except TransferError as failure:
            if failure.retryable:
                self.close()
            raise
        except UnicodeDecodeError as exc:
            detail = "failed: server sent a name that is not UTF-8"
            raise self._fail(operation, detail, retryable=False) from exc
        except _REMOTE_ERRORS as exc:
            err = self._error(exc, operation, subject)
            if err.retryable:
                self.close()
            raise err from exc

    def _name(self, name: str, operation: str) -> str:
        return check_remote_name(name, partner=self._endpoint.label, operation=operation)

    def _dir(self, remote_dir: str, operation: str) -> str:
        return _check_remote_dir(remote_dir, self._endpoint.label, operation)

    # ----------------------------------------------------------------- operations

    def scan(
        self,
        remote_dir: str,
        *,
        max_entries: int | None = None,
        deadline: float | None = None,
        stop: threading.Event | None = None,
    ) -> Listing:
        """List regular files in ``remote_dir``, splitting off those whose names we refuse.

        Hidden names (leading '.') are skipped silently: they are in-progress uploads by convention
        (ours are ``.NAME.part``). Directories and other non-regular entries are skipped too. With
        ``max_entries`` at most that many directory entries are read (``truncated`` says more
        were there): a hostile folder of millions of names cannot fill our memory; past ``deadline``
        (``time.monotonic()``) or once ``stop`` is set, reading stops (retryable).
        """
        remote_dir = self._dir(remote_dir, "list")
        until = _Until(deadline, stop)
        with self._remote("list", remote_dir) as sftp:
            attrs, truncated, why = _list_folder(sftp, remote_dir, max_entries, until)
        if why is not None:
            raise self._fail("list", f"{safe_display(remote_dir)} failed: {why}", retryable=True)
        entries: list[RemoteEntry] = []
        rejected: list[RejectedEntry] = []
        for attr in attrs:
            name = attr.filename
            if name.startswith(".") or (attr.st_mode is not None and not stat.S_ISREG(attr.st_mode)):
                continue
            problem = remote_name_problem(name)
            if problem is not None:
                rejected.append(RejectedEntry(safe_display(name), problem))
            else:
                entries.append(RemoteEntry(name, attr.st_size or 0, attr.st_mtime))
        entries.sort(key=lambda e: e.name)
        return Listing(tuple(entries), tuple(rejected), truncated)

    def list(self, remote_dir: str) -> tuple[RemoteEntry, ...]:
        """The downloadable regular files in ``remote_dir`` (sorted by name); see ``scan``."""
        return self.scan(remote_dir).entries

    def stat(self, remote_dir: str, name: str) -> RemoteEntry | None:
        """The remote file ``name``, or None when it does not exist."""
        path = posixpath.join(self._dir(remote_dir, "stat"), self._name(name, "stat"))
        with self._remote("stat", name) as sftp:
            return _stat_or_none(sftp, path, name)

    def upload(
        self,
        local_path: Path,
        remote_dir: str,
        final_name: str,
        *,
        before_rename: Callable[[], object] | None = None,
        deadline: float | None = None,
        stop: threading.Event | None = None,
    ) -> RemoteEntry:
        """Upload atomically: write ``.NAME.part``, verify its size, rename to ``final_name``.

        Past ``deadline`` (``time.monotonic()``) or once ``stop`` is set the transfer stops (retryable;
        the ``.part`` file is written again next time).

        Idempotent: if ``final_name`` already exists with the local file's size the upload is
        considered done (a retry after a lost reply); a different size is a non-retryable error.
        ``before_rename`` runs once the verified data is on the server and just before the rename:
        a caller records there that only the rename is left, and afterwards (after a crash or a lost
        reply) calls ``finish_upload`` instead of sending the data again, because a partner that
        takes files away at once would otherwise receive the same file twice.
        """
        op = "upload"
        remote_dir = self._dir(remote_dir, op)
        self._name(final_name, op)
        if len(final_name.encode("utf-8")) > MAX_NAME_BYTES - _PART_OVERHEAD:
            limit = MAX_NAME_BYTES - _PART_OVERHEAD
            raise self._fail(op, f"refused: remote name is longer than {limit} bytes", retryable=False)
        final = posixpath.join(remote_dir, final_name)
        temp = posixpath.join(remote_dir, part_name(final_name))
        try:
            stream = local_path.open("rb")
        except OSError as exc:
            raise _local_error(exc, self._endpoint.label, op, "open") from exc
        with stream:
            local_size = os.fstat(stream.fileno()).st_size
            with self._remote(op, final_name) as sftp:
                existing = _stat_or_none(sftp, final, final_name)
                if existing is not None:
                    return self._already_there(existing, local_size)
                what = safe_display(final_name)
                if self._send(sftp, stream, temp, _Until(deadline, stop)) != local_size:
                    raise self._fail(op, f"{what} failed: local file changed while sent", retryable=False)
                remote_size = sftp.stat(temp).st_size
                if remote_size != local_size:
                    with suppress(*_REMOTE_ERRORS):
                        sftp.remove(temp)
                    detail = f"{what} failed: remote size {remote_size} != local size {local_size}"
                    raise self._fail(op, detail, retryable=True)
                if before_rename is not None:
                    before_rename()
                return self._finish_rename(sftp, temp, final, final_name, local_size)

    def _send(self, sftp: paramiko.SFTPClient, stream: BinaryIO, temp: str, until: _Until) -> int:
        """Copy the local stream to the remote temp file (pipelined; close waits for every ack).
        Stopped half-way (``until``), it drops the session rather than wait for queued acks."""
        sent = 0
        remote_file = sftp.open(temp, "wb")
        try:
            remote_file.set_pipelined(True)
            while data := _read_local(stream, self._endpoint.label):
                remote_file.write(data)
                sent += len(data)
                if (why := until.reached()) is not None:
                    raise self._fail(
                        "upload", f"{safe_display(posixpath.basename(temp))} failed: {why}", retryable=True
                    )
        except BaseException:
            self.close()
            raise
        remote_file.close()
        return sent

    def finish_upload(self, remote_dir: str, final_name: str) -> RemoteEntry | None:
        """Finish an upload whose data was verified on the server before the rename was attempted.

        Renames ``.NAME.part`` when it is still there; otherwise the rename happened, and the final
        file is returned, or None when the partner has already taken it away. Never sends data.
        """
        op = "upload"
        remote_dir = self._dir(remote_dir, op)
        self._name(final_name, op)
        final = posixpath.join(remote_dir, final_name)
        temp = posixpath.join(remote_dir, part_name(final_name))
        with self._remote(op, final_name) as sftp:
            part = _stat_or_none(sftp, temp, final_name)
            if part is not None:
                return self._finish_rename(sftp, temp, final, final_name, part.size)
            return _stat_or_none(sftp, final, final_name)

    def _already_there(self, existing: RemoteEntry, local_size: int) -> RemoteEntry:
        if existing.size == local_size:
            return existing
        detail = (
            f"{safe_display(existing.name)} refused: remote file already exists with size "
            f"{existing.size}, local size is {local_size}"
        )
        raise self._fail("upload", detail, retryable=False)

    def _finish_rename(
        self, sftp: paramiko.SFTPClient, temp: str, final: str, final_name: str, size: int
    ) -> RemoteEntry:
        """Rename the verified temp file; if that fails but the final file is complete, it's done."""
        try:
            self._rename(sftp, temp, final)
        except TimeoutError:
            raise  # the session is stuck; whether the rename happened is the retry's to find out
        except OSError:
            existing = _stat_or_none(sftp, final, final_name)
            if existing is None or existing.size != size:
                raise
        result = _stat_or_none(sftp, final, final_name)
        return result if result is not None else RemoteEntry(final_name, size, None)

    def _rename(self, sftp: paramiko.SFTPClient, source: str, dest: str) -> None:
        """posix-rename (atomic replace) when the server has it, else plain SFTP rename."""
        if self._posix_rename:
            try:
                sftp.posix_rename(source, dest)
            except OSError as exc:
                # A timeout is not a missing extension: the server may still do the rename.
                if exc.errno in _PERMANENT_ERRNOS or isinstance(exc, TimeoutError):
                    raise
            else:
                return
            sftp.rename(source, dest)
            self._posix_rename = False  # the extension is missing here; plain rename worked
            return
        sftp.rename(source, dest)

    def download(self, remote_dir: str, name: str, local_dir: Path) -> DownloadResult:
        """Download ``name`` into ``local_dir`` atomically; returns (path, sha256 hex, size).

        The data goes to an owner-only (0600) temporary file in ``local_dir``, is fsynced, checked
        against the remote size, then renamed to ``local_dir/name`` (replacing a file of that name).
        The remote file is left in place: call ``delete`` or ``move`` once the caller has stored it.
        """
        got = self.fetch(remote_dir, name, local_dir)
        return DownloadResult(got.path, got.sha256, got.size)

    def fetch(
        self,
        remote_dir: str,
        name: str,
        local_dir: Path,
        *,
        max_bytes: int | None = None,
        deadline: float | None = None,
        stop: threading.Event | None = None,
    ) -> Fetched:
        """``download`` with limits, also returning the remote modification time the data had.

        A file larger than ``max_bytes`` (by the server's word) is refused before anything is read
        (``RemoteFileRefusedError``); past ``deadline`` (``time.monotonic()``) the transfer stops
        (retryable: a slow partner), and so it does once ``stop`` is set. The remote file is stat'ed
        before and after the read, and a file that changed meanwhile fails (retryable), so size and
        time name exactly these bytes.
        """
        op = "download"
        label = self._endpoint.label
        path = posixpath.join(self._dir(remote_dir, op), self._name(name, op))
        try:
            fd, temp_name = tempfile.mkstemp(prefix=".download-", suffix=PART_SUFFIX, dir=local_dir)
        except OSError as exc:
            raise _local_error(exc, label, op, "create temporary file") from exc
        temp = Path(temp_name)
        try:
            writer = _HashingWriter(fd, label)
            try:
                before = self._fetch(path, name, writer, max_bytes, _Until(deadline, stop))
                on_disk = _fsync_size(fd, label)
            finally:
                os.close(fd)
            if not before.size == writer.size == on_disk:
                detail = (
                    f"{safe_display(name)} failed: remote size {before.size}, received {writer.size}, "
                    f"on disk {on_disk} (file still being written?)"
                )
                raise self._fail(op, detail, retryable=True)
            final = local_dir / name
            try:
                temp.replace(final)
                _fsync_dir(local_dir)
            except OSError as exc:
                raise _local_error(exc, label, op, "rename into place") from exc
        except BaseException:
            with suppress(OSError):
                temp.unlink()
            raise
        return Fetched(final, writer.digest.hexdigest(), writer.size, before.mtime)

    def _fetch(
        self, path: str, name: str, writer: _HashingWriter, max_bytes: int | None, until: _Until
    ) -> RemoteEntry:
        """Stream the remote regular file into ``writer``; returns its size and time, unchanged
        from before the read to after it."""
        op = "download"
        what = safe_display(name)
        with self._remote(op, name) as sftp:
            remote = sftp.stat(path)
            if remote.st_mode is not None and not stat.S_ISREG(remote.st_mode):
                raise self._refused(name, "not a regular file")
            size = remote.st_size or 0
            if max_bytes is not None and size > max_bytes:
                raise self._refused(name, f"{size} bytes, more than the limit of {max_bytes}")
            limit = size if max_bytes is None else min(size, max_bytes)
            self._receive(sftp, path, name, limit, writer, until)
            after = sftp.stat(path)
        if (after.st_size, after.st_mtime) != (remote.st_size, remote.st_mtime):
            raise self._fail(op, f"{what} failed: changed while it was read", retryable=True)
        return RemoteEntry(name, size, remote.st_mtime)

    def _receive(  # noqa: PLR0917 - one transfer's parts
        self,
        sftp: paramiko.SFTPClient,
        path: str,
        name: str,
        limit: int,
        writer: _HashingWriter,
        until: _Until,
    ) -> None:
        """Copy the remote file into ``writer`` with read-ahead; never more than ``limit`` bytes
        (a file that grows past its stat'ed size is still being written), never past ``until``.

        A transfer stopped half-way drops the whole session instead of closing the file: a close
        would wait behind every read request still queued at a trickling server.
        """
        remote_file = sftp.open(path, "rb")
        try:
            remote_file.prefetch(limit)
            while data := remote_file.read(_CHUNK):
                writer.write(data)
                if writer.size > limit:
                    detail = f"{safe_display(name)} failed: more data than its size (still being written?)"
                    raise self._fail("download", detail, retryable=True)
                if (why := until.reached()) is not None:
                    raise self._fail("download", f"{safe_display(name)} failed: {why}", retryable=True)
        except BaseException:
            self.close()
            raise
        remote_file.close()

    def remove_unchanged(self, remote_dir: str, entry: RemoteEntry, archive_dir: str | None = None) -> str:
        """Delete (or, with ``archive_dir``, move there) the remote file ``entry`` names, but only
        while it still has the size and time it had when downloaded: a partner that reuses names may
        already have put a new file there, which must be downloaded, not removed unread.

        Returns "removed", "gone" (nothing there) or "changed" (a different file is there now; left).
        The check and the removal are two requests, so a replacement in between is still possible;
        SFTP has no conditional delete.
        """
        op = "move" if archive_dir is not None else "delete"
        path = posixpath.join(self._dir(remote_dir, op), self._name(entry.name, op))
        with self._remote(op, entry.name) as sftp:
            now = _stat_or_none(sftp, path, entry.name)
        if now is None:
            return "gone"
        if (now.size, now.mtime) != (entry.size, entry.mtime):
            return "changed"
        if archive_dir is None:
            return "removed" if self.delete(remote_dir, entry.name) else "gone"
        self.move(remote_dir, entry.name, archive_dir)
        return "removed"

    def delete(self, remote_dir: str, name: str) -> bool:
        """Remove the remote file; returns False if it was already gone (idempotent on retry)."""
        path = posixpath.join(self._dir(remote_dir, "delete"), self._name(name, "delete"))
        with self._remote("delete", name) as sftp:
            try:
                sftp.remove(path)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return False
                raise
        return True

    def move(self, remote_dir: str, name: str, dest_dir: str) -> None:
        """Move the remote file into ``dest_dir`` (same name); done already counts as done.

        Replaces a file of that name in ``dest_dir`` when the server supports posix-rename.
        """
        path = posixpath.join(self._dir(remote_dir, "move"), self._name(name, "move"))
        dest = posixpath.join(self._dir(dest_dir, "move"), name)
        with self._remote("move", name) as sftp:
            try:
                self._rename(sftp, path, dest)
            except OSError:
                if _stat_or_none(sftp, path, name) is None and _stat_or_none(sftp, dest, name) is not None:
                    return  # an earlier attempt moved it and lost the reply
                raise


@dataclass(frozen=True)
class _Until:
    """When a transfer must end early: a ``time.monotonic()`` deadline, or a stop request."""

    deadline: float | None
    stop: threading.Event | None

    def reached(self) -> str | None:
        if self.stop is not None and self.stop.is_set():
            return "stopped (the gateway is shutting down)"
        if self.deadline is not None and time.monotonic() > self.deadline:
            return "too slow, the exchange's time budget ran out"
        return None


def _list_folder(
    sftp: paramiko.SFTPClient, path: str, cap: int | None, until: _Until
) -> tuple[list[paramiko.SFTPAttributes], bool, str | None]:
    """The folder's entries, at most ``cap`` of them, whether more were there, and why reading
    stopped early (``until``), if it did.

    paramiko's ``listdir_attr`` reads the whole folder into memory and ``listdir_iter`` cannot be
    stopped early without leaving requests in flight; this is ``listdir_attr``'s loop (OPENDIR, READDIR
    until EOF, CLOSE) with a cap, on paramiko's request method.
    """
    if cap is None and until == _Until(None, None):
        return sftp.listdir_attr(path), False, None
    sftp_any: Any = sftp  # paramiko's request layer is not in its public (typed) API
    kind, msg = sftp_any._request(sftp_cmd.CMD_OPENDIR, sftp_any._adjust_cwd(path))
    if kind != sftp_cmd.CMD_HANDLE:
        raise paramiko.SFTPError("Expected handle")
    handle = msg.get_binary()
    attrs_type: Any = paramiko.SFTPAttributes
    found: list[paramiko.SFTPAttributes] = []
    truncated = False
    why: str | None = None
    try:
        while not truncated and why is None:
            try:
                kind, msg = sftp_any._request(sftp_cmd.CMD_READDIR, handle)
            except EOFError:
                break
            if kind != sftp_cmd.CMD_NAME:
                raise paramiko.SFTPError("Expected name response")
            for _ in range(msg.get_int()):
                name, longname = msg.get_text(), msg.get_text()
                attr = attrs_type._from_msg(msg, name, longname)
                if name not in {".", ".."}:
                    found.append(attr)
            truncated = cap is not None and len(found) > cap
            why = until.reached()
    finally:
        sftp_any._request(sftp_cmd.CMD_CLOSE, handle)
    return found[:cap], truncated, why


def _stat_or_none(sftp: paramiko.SFTPClient, path: str, name: str) -> RemoteEntry | None:
    try:
        attr = sftp.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return RemoteEntry(name, attr.st_size or 0, attr.st_mtime)


def _fsync_size(fd: int, partner: str) -> int:
    """Flush the downloaded data to disk and return the size the filesystem holds."""
    try:
        os.fsync(fd)
        return os.fstat(fd).st_size
    except OSError as exc:
        raise _local_error(exc, partner, "download", "fsync") from exc


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable: a crash right after must not lose the directory entry."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- retry


def retry(
    op: Callable[[], T],
    *,
    attempts: int,
    base_delay: float,
    max_delay: float,
    sleep: Callable[[float], object] = time.sleep,
    rng: Callable[[], float] = random.random,
    on_retry: Callable[[int, TransferError, float], object] | None = None,
) -> T:
    """Call ``op`` until it succeeds, retrying only retryable TransferErrors.

    Exponential backoff with full jitter: before retry n (1-based) sleep
    ``rng() * min(max_delay, base_delay * 2 ** (n - 1))``. The last error is re-raised after
    ``attempts`` tries; non-retryable errors are raised at once. ``on_retry(attempt, error, delay)``
    lets the caller log each retry.
    """
    if attempts < 1:
        raise ConfigError("retry: attempts must be at least 1")
    if base_delay < 0 or max_delay < 0:
        raise ConfigError("retry: delays must not be negative")
    attempt = 1
    while True:
        try:
            return op()
        except TransferError as exc:
            if not exc.retryable or attempt >= attempts:
                raise
            delay = rng() * min(max_delay, base_delay * 2.0 ** min(attempt - 1, 60))
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
            attempt += 1
