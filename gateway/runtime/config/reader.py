"""A TOML table with typed getters that collect problems (named by key) instead of raising."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.runtime.config.models import _ENV_NAME, _MISSING, _SECRET_WORDS, SCHEMA
from gateway.transport.sftp import (
    safe_display,
)

# --------------------------------------------------------------------------------------------- reader


class _Table:
    """Typed access to one TOML table that records problems under the full key path."""

    def __init__(self, data: object, where: str, problems: list[str], schema: str | None = None) -> None:
        self.where = where
        self.problems = problems
        self.allowed = SCHEMA[where if schema is None else schema]
        if data is _MISSING:
            data = {}
        if not isinstance(data, Mapping):
            problems.append(f"{where}: must be a table")
            data = {}
        self.data: Mapping[str, Any] = data
        for key in data:
            if key not in self.allowed:
                problems.append(self._unknown(key))

    def key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.key(key)}: {message}")

    def _unknown(self, key: str) -> str:
        shown = self.key(safe_display(str(key), 64))
        if any(word in str(key).lower() for word in _SECRET_WORDS):
            return (
                f"{shown}: unknown key; secrets never go in the configuration file, name an environment "
                "variable instead (password_env, key_passphrase_env, database_password_env)"
            )
        close = difflib.get_close_matches(str(key), sorted(self.allowed), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{shown}: unknown key{hint}"

    def table(self, key: str) -> _Table:
        return _Table(self.data.get(key, _MISSING), self.key(key), self.problems)

    def raw(self, key: str, required: bool = False) -> Any:
        value = self.data.get(key, _MISSING)
        if value is _MISSING and required:
            self.problem(key, "is required")
        return value

    def text(self, key: str, default: str = "", *, required: bool = False) -> str:
        value = self.raw(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return default
        return value.strip()

    def optional_text(self, key: str) -> str | None:
        """A string where "" (or absence) means "not set"."""
        return self.text(key) or None

    def env_name(self, key: str) -> str | None:
        """The name of an environment variable; the value is never echoed (it may be a pasted secret)."""
        value = self.optional_text(key)
        if value is not None and not _ENV_NAME.match(value):
            self.problem(
                key,
                "must be the NAME of an environment variable (letters, digits and _, not starting with a "
                "digit), never the secret itself",
            )
            return None
        return value

    def integer(self, key: str, default: int, low: int, high: int | None = None) -> int:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, "must be an integer")
            return default
        if high is not None and not low <= value <= high:
            self.problem(key, f"must be between {low} and {high}")
            return default
        if value < low:
            self.problem(key, f"must be {low} or more")
            return default
        return value

    def number(self, key: str, default: float, *, positive: bool) -> float:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.problem(key, "must be a number")
            return default
        if value < 0 or (positive and value == 0):
            self.problem(key, "must be greater than 0" if positive else "must be 0 or more")
            return default
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.problem(key, f"must be one of: {', '.join(choices)}")
            return default
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is _MISSING:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, "must be a list of strings")
            return ()
        return tuple(v.strip() for v in value)

    def path(self, key: str, base: Path, default: str = "") -> Path | None:
        text = self.text(key, default)
        return _resolve(base, text) if text else None


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return (path if path.is_absolute() else base / path).resolve()
