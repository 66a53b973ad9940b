"""Remote file names: what the gateway will ask an SFTP server for, and how it shows names it was given."""

from __future__ import annotations

import re
import unicodedata

from gateway.errors import TransferError

MAX_NAME_BYTES = 255
PART_PREFIX = "."
PART_SUFFIX = ".part"
_PART_OVERHEAD = len(PART_PREFIX) + len(PART_SUFFIX)
_DRIVE_PATH = re.compile(r"^[A-Za-z]:")
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def safe_display(text: str, limit: int = 80) -> str:
    """Show an untrusted name in a message: unsafe characters escaped, length capped."""
    out = []
    for ch in text[:limit]:
        if unicodedata.category(ch) in _UNSAFE_CATEGORIES or ch == "\\":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + ("..." if len(text) > limit else "")


def remote_name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe single remote file name, or None if it is.

    The reason never contains the offending characters themselves, only their code points.
    """
    if not name:
        return "name is empty"
    for index, ch in enumerate(name):
        if ch == "\x00":
            return f"name contains NUL at position {index}"
        if unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            return f"name contains control character U+{ord(ch):04X} at position {index}"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"name is longer than {MAX_NAME_BYTES} bytes"
    checks = (
        ("/" in name, "name contains '/'"),
        ("\\" in name, "name contains a backslash"),
        (".." in name, "name contains '..'"),
        (name.startswith("-"), "name starts with '-'"),
        (name.startswith("."), "name starts with '.'"),
        (_DRIVE_PATH.match(name) is not None, "name looks like a drive-qualified path"),
    )
    return next((reason for bad, reason in checks if bad), None)


def check_remote_name(name: str, *, partner: str = "", operation: str = "check name") -> str:
    """Return ``name`` if it is a safe single file name, else raise a non-retryable TransferError."""
    problem = remote_name_problem(name)
    if problem is not None:
        prefix = f"sftp {partner}: " if partner else "sftp: "
        raise TransferError(
            f"{prefix}{operation} refused: remote {problem}",
            retryable=False,
            partner=partner,
            operation=operation,
        )
    return name


def part_name(final_name: str) -> str:
    """The temporary name an upload is written under before the rename (hidden from listings)."""
    return f"{PART_PREFIX}{final_name}{PART_SUFFIX}"


def _check_remote_dir(remote_dir: str, partner: str, operation: str) -> str:
    """Remote directories come from configuration, but still must not carry NUL or control chars."""
    if not remote_dir or any(unicodedata.category(ch) in _UNSAFE_CATEGORIES for ch in remote_dir):
        raise TransferError(
            f"sftp {partner}: {operation} refused: remote directory is empty or has control characters",
            retryable=False,
            partner=partner,
            operation=operation,
        )
    return remote_dir
