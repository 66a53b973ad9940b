"""The payload (data-at-rest) key: from the environment, else a key file only ``run``/``demo`` create.

Same rules as the member-hash key (``GatewayConfig.member_hash_key``): several nodes sharing a database
set the environment variable (``gateway.payload_key_env``); a single node may keep ``payload.key`` in
``folders.state`` (0600). Losing it makes the stored requests and results unreadable, so it belongs in
the backup (README: backup and restore), kept apart from the database backup.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gateway.errors import ConfigError, StoreError
from gateway.runtime.config import GatewayConfig
from gateway.runtime.logsetup import register_secret
from gateway.store.sealing import new_key_text, parse_key

PAYLOAD_KEY_FILE = "payload.key"


def payload_key_path(config: GatewayConfig) -> Path:
    return config.folders.state / PAYLOAD_KEY_FILE


def payload_key(config: GatewayConfig, *, create: bool = False) -> bytes:
    """The data key: environment first, then the key file (created 0600 when ``create``)."""
    env_name = config.gateway.payload_key_env
    value = os.environ.get(env_name, "").strip()
    if value:
        register_secret(value)
        try:
            return parse_key(value)
        except StoreError as exc:
            raise ConfigError(f"gateway.payload_key_env: {env_name}: {exc}") from None
    path = payload_key_path(config)
    if not path.exists():
        if not create:
            raise ConfigError(
                f"no payload key: {env_name} is not set and {path} does not exist; set the variable or "
                "restore the key file from backup (only `x12gw run` creates a new key)"
            )
        write_key_file(path, new_key_text())
    return read_key_file(path)


def write_key_file(path: Path, text: str) -> None:
    """Write a key file atomically, 0600; an existing file wins (another process was first)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (text + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink()


def read_key_file(path: Path) -> bytes:
    """A key file's key; refused when group or others may read it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"key file {path} cannot be read") from exc
    if mode & 0o077:
        raise ConfigError(
            f"key file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            "run chmod 600 on it"
        )
    register_secret(text)
    try:
        return parse_key(text)
    except StoreError as exc:
        raise ConfigError(f"key file {path}: {exc}") from None
