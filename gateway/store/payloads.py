"""Raw payloads, referenced by SHA-256 from the store: owner-only files, or rows of the store itself.

Two homes, one name (the SHA-256), so every reader asks by hash and finds either:

* **files** ``<root>/<sha[:2]>/<sha>`` (0600, folders 0700), written and synced by ``put`` before the
  transaction that records the row naming them (the batch stages, anything large);
* **blobs** in ``payload_blobs`` (sealed with the payload key like the JSON columns), for payloads of
  at most ``INLINE_MAX_BYTES`` that the caller ``stage``\\ s and then ``record``\\ s in the transaction
  that records the row naming them. Why: a real-time call stored four small payloads as four files,
  each an inode to allocate, a file and a folder to fsync (on this host's journal-less ext4, a scan of
  recently freed inodes per file: about a third of ``serve``'s CPU). A blob commits with its row, so
  there is no step between them for a crash to fall into: both or neither.

A blob row is written ``ON CONFLICT DO NOTHING``: the same bytes stored twice (a retried body) are one
row, like one file. ``x12gw purge`` removes blobs no kept ``files`` row names, like files; a
companion blob (``stage(companion_of=...)``: a CORE envelope, which no row names) goes with the payload
it travels with.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.runtime.fsutil import LocalIOError, atomic_write, ensure_dir
from gateway.store import fastsql
from gateway.store import schema as s
from gateway.store.errors import store_error
from gateway.store.sealing import ring_of, stored_bytes

if TYPE_CHECKING:
    from gateway.store.store import Store, Tx

INLINE_MAX_BYTES = 256 * 1024  # larger payloads stay files (a row that size would bloat the database)
RECENT_BYTES = 8 * 1024 * 1024  # blobs recorded lately, kept in memory for the reads that follow
CHUNK = 1 << 20

_INSERTS: dict[str, Insert] = {}
_INSERTS_GUARD = threading.Lock()


def _blob_insert(dialect_name: str) -> Insert:
    """``INSERT .. ON CONFLICT (sha256) DO NOTHING`` for the dialect, built once (fast path)."""
    found = _INSERTS.get(dialect_name)
    if found is None:
        with _INSERTS_GUARD:
            found = _INSERTS.get(dialect_name)
            if found is None:
                dialect: Any = postgresql if dialect_name == "postgresql" else sqlite_dialect
                stmt = dialect.insert(s.payload_blobs).on_conflict_do_nothing(index_elements=["sha256"])
                found = _INSERTS[dialect_name] = fastsql.register(stmt)
    return found


@dataclass(frozen=True)
class Payload:
    """A payload ready to be named by a row: ``path`` is its durable file, or None while it waits to be
    kept in the store by ``PayloadStore.record`` in the transaction that records that row."""

    sha256: str
    data: bytes = field(repr=False)  # PHI
    path: Path | None
    # ``data`` as the blob's column stores it (sealed), made when staged: None for a file, or when
    # no store was bound yet (then sealed as it is bound)
    stored: bytes | None = field(default=None, repr=False)
    companion_of: str | None = None  # the payload whose row keeps this one (``stage``)

    @property
    def payload_path(self) -> str | None:
        """What the row's ``payload_path`` says: the file, or None for a blob."""
        return None if self.path is None else str(self.path)


class PayloadStore:
    """Payloads by SHA-256: files under ``root`` and blobs in ``store`` (see the module docstring).

    The 256 sub-folders are made once per process (remembered in ``_folders``) rather than asked
    for with a ``mkdir`` per write; one that disappeared meanwhile is made again and the write retried.
    ``store`` may be bound later (``bind``: a ``Context`` binds its store); without one, only files
    are read."""

    def __init__(self, root: Path, store: Store | None = None) -> None:
        self.root = ensure_dir(root)
        self.store = store
        self._folders: set[str] = set()
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_bytes = 0
        self._lock = threading.Lock()

    def bind(self, store: Store) -> None:
        """Read blobs from ``store`` (the store the rows naming them are in)."""
        self.store = store

    def path_for(self, sha256: str) -> Path:
        """Where the payload's file is (or would be): blobs have none."""
        return self.root / sha256[:2] / sha256

    # -- writing ----------------------------------------------------------------------------------

    def put(self, data: bytes) -> tuple[str, Path]:
        """Store ``data`` as a file (idempotent), durable when this returns."""
        sha = hashlib.sha256(data).hexdigest()
        return sha, self._write_file(sha, data)

    def stage(self, data: bytes, *, companion_of: str | None = None) -> Payload:
        """``data`` ready to be named by a row: small payloads are kept in the store by ``record``
        in that row's transaction (nothing written yet), larger ones are files written now.

        ``companion_of``: no row will name this payload, it travels with the payload of that hash (a
        CORE envelope with the X12 it carried) and is kept as long as that one is. Only a blob row can
        say so, so a companion is a blob whatever its size (envelopes are real-time sized)."""
        sha = hashlib.sha256(data).hexdigest()
        if companion_of is None and len(data) > INLINE_MAX_BYTES:
            return Payload(sha, data, self._write_file(sha, data))
        store = self.store
        if store is None:
            return Payload(sha, data, None, companion_of=companion_of)
        # sealed now, before the transaction that records it: not while it holds the writer lock
        sealed = stored_bytes(ring_of(store.engine.dialect), data)
        return Payload(sha, data, None, sealed, companion_of)

    def record(self, tx: Tx, *payloads: Payload) -> None:
        """In the caller's transaction (the one recording the rows that name them): the staged
        payloads kept in the store (one statement; those with a file are already durable)."""
        rows = [
            {
                "sha256": p.sha256,
                "size": len(p.data),
                "data": p.data if p.stored is None else p.stored,
                "companion_of": p.companion_of,
                "created_at": tx.now(),
            }
            for p in payloads
            if p.path is None
        ]
        if not rows:
            return
        try:
            fastsql.execute(tx.conn, _blob_insert(tx.conn.dialect.name), rows if len(rows) > 1 else rows[0])
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, "record payload") from None
        for p in payloads:
            if p.path is None:
                self._remember(p.sha256, p.data)

    def _write_file(self, sha: str, data: bytes) -> Path:
        path = self.path_for(sha)
        if not path.exists():
            folder = path.parent
            if folder.name not in self._folders:
                ensure_dir(folder)
                self._folders.add(folder.name)
            try:
                atomic_write(path, data)
            except LocalIOError:
                if folder.is_dir():
                    raise
                self._folders.discard(folder.name)  # removed behind our back: made again, written again
                ensure_dir(folder)
                atomic_write(path, data)
        return path

    # -- reading ----------------------------------------------------------------------------------

    def get(self, sha256: str) -> bytes:
        """The payload's bytes, wherever it is kept; ``FileNotFoundError`` when it is nowhere."""
        found = self.find(sha256)
        if found is None:
            raise FileNotFoundError(f"payload {sha256} is not stored")
        return found

    def find(self, sha256: str, payload_path: str | None = None) -> bytes | None:
        """The payload's bytes (its file, a file at ``payload_path`` as an older row names it, or its
        blob), or None when it is gone (retention, a moved folder)."""
        with self._lock:
            data = self._recent.get(sha256)
        if data is not None:
            return data
        for path in (self.path_for(sha256), Path(payload_path) if payload_path else None):
            if path is not None and path.is_file():
                try:
                    return path.read_bytes()
                except OSError:
                    continue
        return self._blob(sha256)

    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The payload in pieces of at most 1 MiB: a file is never all in memory at once (a blob is
        small and comes whole). ``FileNotFoundError`` when it is nowhere."""
        path = self.path_for(sha256)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            yield self.get(sha256)
            return
        with fh:
            yield from iter(lambda: fh.read(CHUNK), b"")

    def file_for(self, sha256: str) -> Path:
        """A file holding the payload, for readers that need a path (an SFTP upload): its own file,
        or one written now from its blob (the same bytes under the same name); when it is kept
        nowhere, the path it would have (the reader's own error says it is missing)."""
        path = self.path_for(sha256)
        if path.is_file():
            return path
        data = self._blob(sha256)
        return path if data is None else self._write_file(sha256, data)  # nowhere: the reader says so

    def _blob(self, sha256: str) -> bytes | None:
        if self.store is None:
            return None
        b = s.payload_blobs
        with self.store.read() as tx:
            data = tx.conn.execute(select(b.c.data).where(b.c.sha256 == sha256)).scalar()
        return None if data is None else bytes(data)

    def _remember(self, sha256: str, data: bytes) -> None:
        """Keep a recorded blob for the reads that follow on this process (the real-time sender reads
        the 270 it just recorded to POST it): the name is the hash, so the bytes can never be stale."""
        with self._lock:
            if sha256 in self._recent:
                self._recent.move_to_end(sha256)
                return
            self._recent[sha256] = data
            self._recent_bytes += len(data)
            while self._recent_bytes > RECENT_BYTES and self._recent:
                _, old = self._recent.popitem(last=False)
                self._recent_bytes -= len(old)
