"""Raw payloads on disk, referenced by SHA-256 from the store, owner-only."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gateway.runtime.fsutil import atomic_write, ensure_dir


class PayloadStore:
    """Content-addressed files: ``<root>/<sha[:2]>/<sha>`` (0600, folders 0700). Writing is idempotent."""

    def __init__(self, root: Path) -> None:
        self.root = ensure_dir(root)

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> tuple[str, Path]:
        sha = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha)
        if not path.exists():
            ensure_dir(path.parent)
            atomic_write(path, data)
        return sha, path

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()
