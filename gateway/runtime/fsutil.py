"""Filesystem primitives with the guarantees the gateway relies on.

Writes are atomic (temporary file in the same folder, fsync, rename, fsync of the folder) and
owner-only (0600 files, 0700 folders), so a crash never leaves a half-written result where a billing
system could read it, and payloads (PHI) are never readable by other users. A full disk or any other
OS error surfaces as :class:`LocalIOError` with the operation and path, never a raw traceback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import GatewayError
from gateway.runtime.filemask import mask_file_name
from gateway.runtime.randpool import POOL

FILE_MODE = 0o600
DIR_MODE = 0o700
IGNORED_SUFFIXES = (".tmp", ".part", ".done", ".partial", ".swp")


class LocalIOError(GatewayError):
    """A local file operation failed (disk full, permissions ...); ``retryable`` when it may pass later."""

    def __init__(self, operation: str, path: Path, exc: OSError) -> None:
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        # the name masked: inbox file names may be PHI, and this message is logged
        super().__init__(f"{operation} {mask_file_name(path.name)}: {reason}")
        self.retryable = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EBUSY, errno.EIO)
        self.disk_full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        self.missing = exc.errno == errno.ENOENT  # the folder (or a file in it) is not there


@contextlib.contextmanager
def io_errors(operation: str, path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise LocalIOError(operation, path, exc) from None


def ensure_dir(path: Path) -> Path:
    with io_errors("create folder", path):
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    return path


_MADE: set[Path] = set()  # folders ``known_dir`` has made sure of in this process


def known_dir(path: Path) -> Path:
    """``ensure_dir`` once per process and folder: a folder written on every real-time call (the
    outbox) is not created again each time (a ``mkdir`` and a ``stat``, each letting the interpreter
    lock go). A caller whose write then finds the folder gone (removed by hand while running) calls
    :func:`remade_dir` and writes again."""
    if path not in _MADE:
        ensure_dir(path)
        _MADE.add(path)
    return path


def remade_dir(path: Path) -> Path:
    """``known_dir`` after a write found ``path`` missing: created again (and known again)."""
    _MADE.discard(path)
    return known_dir(path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` atomically and durably (readers see the old file or the whole new one)."""
    tmp = path.with_name(f".{path.name}.{POOL.hex(4)}.tmp")
    with io_errors("write", path):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            _write_synced(fd, data)
            tmp.replace(path)
            fsync_dir(path.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


def _write_synced(fd: int, data: bytes) -> None:
    """All of ``data`` to the open ``fd``, synced, then the descriptor closed (whatever happens).

    Straight through ``os.write``: a real-time call writes several small files, and a buffered file
    object for each costs CPU the write does not need (the bytes written are the same)."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


_SYNC_THREADS = 8  # concurrent fsyncs of one batch (2.5x one by one on this project's host)
# fewer files than this are synced one by one: starting the threads costs more CPU than a real-time
# answer's two files (its result and summary) gain from syncing together
_PARALLEL_FROM = 3


def atomic_write_all(folder: Path, items: list[tuple[str, bytes]], *, mode: int = FILE_MODE) -> None:
    """``atomic_write`` for many files of one folder, with one folder ``fsync`` instead of one per file.

    Every file's data is written to its temporary name and ``fsync``-ed, then each is renamed into
    place and the folder is synced once (a global ``sync()`` was tried: it also flushes every other
    process's writes, and cost more than it saved on a shared host). A crash leaves every target old
    or whole, as ``atomic_write`` does; the caller records its own progress only after this returns
    (the outbox's delivery does), so nothing is lost after a power cut."""
    temps = [(folder / f".{name}.{POOL.hex(4)}.tmp", folder / name) for name, _ in items]

    def durable(job: tuple[tuple[Path, Path], bytes]) -> None:
        (tmp, path), data = job
        with io_errors("write", path):
            _write_synced(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), data)

    try:
        # the temporary files are written and synced by a few threads at once: the file system
        # commits concurrent syncs together, and every one has returned before any rename below
        if len(items) >= _PARALLEL_FROM:
            with ThreadPoolExecutor(max_workers=_SYNC_THREADS) as pool:
                list(pool.map(durable, zip(temps, (data for _, data in items), strict=True)))
        else:
            for job in zip(temps, (data for _, data in items), strict=True):
                durable(job)
        for tmp, path in temps:
            with io_errors("write", path):
                tmp.replace(path)
        if temps:
            with io_errors("write", folder):
                fsync_dir(folder)
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


def _is_temp_name(name: str) -> bool:
    """A name ``atomic_write`` writes under: ``.<target>.<8 hex>.tmp``."""
    stem, _, token = name.removesuffix(".tmp").rpartition(".")
    return (
        name.startswith(".")
        and name.endswith(".tmp")
        and len(stem) > 1
        and len(token) == 8
        and all(c in "0123456789abcdef" for c in token)
    )


def remove_stale_temp_files(folder: Path, *, now: float, older_than: float) -> int:
    """Delete ``atomic_write`` temporary files under ``folder`` older than ``older_than`` seconds.

    A process killed in the middle of ``atomic_write`` leaves its temporary file behind (partial
    PHI). A live writer needs milliseconds, so an old one is garbage, even in folders that several
    nodes share. Returns how many were removed.
    """
    removed = 0
    if not folder.exists():
        return 0
    with io_errors("clean", folder):
        for path in folder.rglob(".*.tmp"):
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if _is_temp_name(path.name) and stat.S_ISREG(st.st_mode) and now - st.st_mtime > older_than:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with io_errors("read", path), path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def read_capped(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path``, or None when it holds more than ``limit`` bytes.

    The size is taken from ``fstat`` of the opened descriptor before anything is read, and the read
    itself stops at ``limit + 1`` bytes, so a file that is huge (or grows while read) never takes
    more memory than the limit allows. Opened by :func:`open_regular`: a symlink swapped in, a FIFO
    or a hard link is refused, never followed.
    """
    with io_errors("read", path), open_regular(path) as (fd, _):
        return read_fd_capped(fd, limit)


def move(src: Path, dest_dir: Path, name: str | None = None) -> Path:
    """Move the regular file ``src`` into ``dest_dir`` (same filesystem), never overwriting: a clash
    gets a suffix. The result is always an owner-only regular file of ours.

    ``src`` is examined through a descriptor opened with ``O_NOFOLLOW | O_NONBLOCK``: a symbolic
    link, FIFO, device or folder is refused (:class:`NotARegularFileError`) and never renamed or chmodded.
    A file another user owns (a billing system's, taken from a shared inbox) cannot be chmodded by us:
    it is copied into a new file of ours and then removed, so the archive step cannot fail for
    ownership after its requests were committed.
    """
    ensure_dir(dest_dir)
    target = dest_dir / (name or src.name)
    if target.exists() or target.is_symlink():
        target = dest_dir / f"{target.stem}.{secrets.token_hex(3)}{target.suffix}"
    with io_errors("move", src), open_regular(src) as (fd, st):
        if st.st_uid == os.geteuid():
            src.rename(target)
            os.fchmod(fd, FILE_MODE)
        else:
            _copy_from(fd, target)
            src.unlink()
        fsync_dir(dest_dir)
    return target


def _copy_from(fd: int, target: Path) -> None:
    """Write what ``fd`` holds to ``target`` as a new owner-only file (atomically, durably)."""
    tmp = target.with_name(f".{target.name}.{POOL.hex(4)}.tmp")
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        while chunk := os.read(fd, 1 << 20):
            os.write(out, chunk)
        os.fsync(out)
        os.close(out)
        out = -1
        tmp.replace(target)
    except BaseException:
        if out >= 0:
            os.close(out)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class NotARegularFileError(GatewayError):
    """An entry that is not a regular file with one link: never read, renamed or chmodded."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{mask_file_name(path.name)}: {reason}")
        self.reason = reason


SYMLINK = "symbolic link: never followed; copy or move the file itself into the inbox"
HARD_LINK = "file has more than one hard link: never taken; copy the file into the inbox instead"
NOT_REGULAR = "not a regular file (a FIFO, socket, device or folder): never taken"


def kind_reason(st: os.stat_result) -> str | None:
    """Why an entry with this ``lstat``/``fstat`` is never taken, or None for a plain regular file."""
    if stat.S_ISLNK(st.st_mode):
        return SYMLINK
    if not stat.S_ISREG(st.st_mode):
        return NOT_REGULAR
    if st.st_nlink > 1:
        return HARD_LINK
    return None


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[tuple[int, os.stat_result]]:
    """A read-only descriptor of ``path`` and its ``fstat``, only if it is a regular file with one link.

    ``O_NOFOLLOW`` refuses a symlink (even one swapped in after a listing), ``O_NONBLOCK`` keeps a
    FIFO from blocking the open, and the checks are made on the descriptor itself, so what is then
    read, renamed or chmodded is the very file that was checked. Raises :class:`NotARegularFileError`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotARegularFileError(path, SYMLINK) from None
        raise
    try:
        st = os.fstat(fd)
        if (why := kind_reason(st)) is not None:
            raise NotARegularFileError(path, why)
        yield fd, st
    finally:
        os.close(fd)


def read_fd_capped(fd: int, limit: int) -> bytes | None:
    """Everything ``fd`` holds from its start, or None when that is more than ``limit`` bytes."""
    if os.fstat(fd).st_size > limit:
        return None
    os.lseek(fd, 0, os.SEEK_SET)
    parts, total = [], 0
    while total <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - total))):
        parts.append(chunk)
        total += len(chunk)
    return None if total > limit else b"".join(parts)


def sha256_fd(fd: int) -> tuple[str, int]:
    """SHA-256 and size of what ``fd`` holds, read in chunks (for files too large to hold)."""
    digest = hashlib.sha256()
    size = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def same_version(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two stats show one file unchanged: same inode, size and modification time."""
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns)


_SAFE_EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")


def internal_name(file_id: int, external: str) -> str:
    """The name the gateway gives a file in its own folders (work, archive, quarantine): the file id
    and, when short and plain, the extension, e.g. ``42.json``.

    External names are unbounded (a 250-byte name plus a prefix exceeds the 255-byte limit of file
    names) and may hold any byte; the original name is kept only in the store.
    """
    ext = external.rpartition(".")[2] if "." in external else ""
    return f"{file_id}.{ext.lower()}" if _SAFE_EXTENSION.fullmatch(ext) else str(file_id)


def file_id_of(internal: str) -> int | None:
    """The file id an internal name (or an older release's ``<id>__<name>``) starts with, or None."""
    found = re.match(r"(\d+)(?:__|\.|$)", internal)
    return int(found.group(1)) if found else None


def storable_name(name: str) -> str:
    """A name as the store keeps it: bytes that are not UTF-8 (surrogate-escaped by ``os``) spelled
    ``\\xff``, since no database column or hash can carry a lone surrogate."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class Candidate:
    path: Path
    size: int
    mtime: float
    stat: os.stat_result | None = None  # the listing's lstat: the version that was judged complete


def is_ignored(name: str) -> bool:
    """Names a writer uses while a file is incomplete (dot-files, *.tmp, *.part, markers)."""
    return name.startswith(".") or name.endswith(IGNORED_SUFFIXES) or name.endswith(".reason.json")


def fresh_marker(folder: Path, name: str, st: os.stat_result) -> bool:
    """Whether ``NAME.done`` announces this version of NAME: a regular file no older than it.

    A marker left behind by an earlier file of the same name is older than a new file that is
    still being written, so the new file is not taken half-written on the strength of it.
    """
    try:
        marker = (folder / f"{name}.done").lstat()
    except OSError:
        return False
    return stat.S_ISREG(marker.st_mode) and marker.st_mtime_ns >= st.st_mtime_ns


def complete_files(
    folder: Path, *, now: float, stable_seconds: float, require_done_marker: bool
) -> list[Candidate]:
    """Files in ``folder`` that are complete: a regular file with one link and not a temporary
    name, unchanged for ``stable_seconds`` (by size and mtime) and, when required, announced by a
    ``NAME.done`` marker written after it (see :func:`fresh_marker`)."""
    out = []
    with io_errors("list", folder):
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    for entry in entries:
        if is_ignored(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if kind_reason(st) is not None or now - st.st_mtime < stable_seconds:
            continue  # links and special files: the inbox-skips stage says why
        if require_done_marker and not fresh_marker(folder, entry.name, st):
            continue
        out.append(Candidate(Path(entry.path), st.st_size, st.st_mtime, st))
    return out
