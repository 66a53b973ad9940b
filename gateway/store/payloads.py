"""Raw payloads on disk, referenced by SHA-256 from the store, owner-only."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gateway.runtime.fsutil import LocalIOError, atomic_write, ensure_dir


class PayloadStore:
    """Content-addressed files: ``<root>/<sha[:2]>/<sha>`` (0600, folders 0700). Writing is idempotent.

    The 256 sub-folders are made once per process (remembered in ``_folders``) rather than asked
    for with a ``mkdir`` per write; one that disappeared meanwhile is made again and the write retried."""

    def __init__(self, root: Path) -> None:
        self.root = ensure_dir(root)
        self._folders: set[str] = set()

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> tuple[str, Path]:
        sha = hashlib.sha256(data).hexdigest()
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
        return sha, path

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()
