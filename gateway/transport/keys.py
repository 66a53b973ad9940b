"""SSH keys the gateway makes for itself: the simulator's host key and the demo's client key."""

from __future__ import annotations

import os
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from gateway.errors import ConfigError
from gateway.transport.sftp import load_private_key


def ensure_key(path: Path) -> paramiko.PKey:
    """Load the key at ``path``, or generate an ed25519 one (0600, with ``.pub``) when it is absent."""
    if not path.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ConfigError(f"key file {path} cannot be created: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
        Path(f"{path}.pub").write_text(public + "\n", encoding="utf-8")
    return load_private_key(path)


def public_line(path: Path) -> str:
    """The OpenSSH public-key line next to a key made by :func:`ensure_key`."""
    return Path(f"{path}.pub").read_text(encoding="utf-8").strip()
