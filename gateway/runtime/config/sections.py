"""The global sections: [gateway], [identity], [folders], [inbox], [timeouts], [routing], [precert],
[retention]."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import cast

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gateway.errors import ConfigError
from gateway.runtime.config.models import (
    _DB_DRIVERS,
    _ISA_ID,
    _NODE_ID,
    _TRACE_ASSIGNER,
    DEFAULT_MEMBER_HASH_KEY_ENV,
    DEFAULT_PAYLOAD_KEY_ENV,
    FOLDER_NAMES,
    ISA_QUALIFIERS,
    LOG_LEVELS,
    RETENTION_KINDS,
    FoldersConfig,
    GatewaySettings,
    IdentityConfig,
    InboxConfig,
    LogFormat,
    PartnerConfig,
    PrecertConfig,
    RetentionConfig,
    RoutingConfig,
    TimeoutsConfig,
    Usage,
    X12Mode,
)
from gateway.runtime.config.reader import _resolve, _Table
from gateway.runtime.durations import parse_period

# --------------------------------------------------------------------------------------------- sections


def _gateway(t: _Table) -> GatewaySettings:
    """``[gateway]`` except the database URL (its default depends on ``folders.state``)."""
    node_id = t.text("node_id") or f"{socket.gethostname()}-{os.getpid()}"
    if not _NODE_ID.match(node_id):
        t.problem("node_id", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return GatewaySettings(
        database_url="",
        node_id=node_id,
        member_hash_key_env=t.env_name("member_hash_key_env") or DEFAULT_MEMBER_HASH_KEY_ENV,
        usage=cast(Usage, t.choice("usage", "T", ("P", "T"))),
        database_password_env=t.env_name("database_password_env"),
        lease_seconds=t.number("lease_seconds", 120.0, positive=True),
        payload_key_env=t.env_name("payload_key_env") or DEFAULT_PAYLOAD_KEY_ENV,
        log_level=t.choice("log_level", "INFO", LOG_LEVELS),
        log_format=cast(LogFormat, t.choice("log_format", "auto", ("auto", "json", "console"))),
    )


def _database_url(t: _Table, base: Path) -> str | None:
    """The database URL (None: the default), a relative SQLite path resolved against ``base``.

    A password in the URL is refused: it would be a secret in the file (and in every log of the URL).
    """
    default = None
    text = t.text("database_url")
    if not text:
        return default
    try:
        url = make_url(text)
    except ArgumentError:
        t.problem("database_url", "is not a database URL (sqlite:///PATH or postgresql+psycopg://...)")
        return default
    if url.drivername not in _DB_DRIVERS:
        t.problem(
            "database_url",
            "must use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB (other drivers are not installed)",
        )
        return default
    if url.password is not None:
        t.problem(
            "database_url",
            "must not contain a password; name an environment variable in gateway.database_password_env",
        )
        return default
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        url = url.set(database=str(_resolve(base, str(url.database))))
    return url.render_as_string(hide_password=False)


def _isa_id(t: _Table, key: str, value: str, low: int = 1) -> None:
    if not (low <= len(value) <= 15 and _ISA_ID.match(value)):
        t.problem(
            key,
            f"must be {low}-15 characters: letters, digits, space or . _ / & ( ) - "
            "(starting with a letter or digit)",
        )


def _qualifier(t: _Table, key: str) -> str:
    return t.choice(key, "ZZ", ISA_QUALIFIERS)


def _identity(t: _Table) -> IdentityConfig:
    isa_id = t.text("isa_id", required=True)
    if "isa_id" in t.data:
        _isa_id(t, "isa_id", isa_id)
    gs_id = t.text("gs_id") or isa_id
    if isa_id:
        _isa_id(t, "gs_id", gs_id, low=2)
    trace = t.text("trace_assigner", required=True)
    if "trace_assigner" in t.data and not _TRACE_ASSIGNER.match(trace):
        t.problem(
            "trace_assigner",
            "must be exactly 10 letters or digits, starting with 1 (EIN), 3 (DUNS) or 9 (assigned id)",
        )
    return IdentityConfig(
        isa_qualifier=_qualifier(t, "isa_qualifier"), isa_id=isa_id, gs_id=gs_id, trace_assigner=trace
    )


def _folders(t: _Table, base: Path) -> FoldersConfig:
    paths: dict[str, Path] = {}
    for name in FOLDER_NAMES:
        path = t.path(name, base, default=name)
        if path is None:  # an explicit "" is the same as leaving the default
            path = _resolve(base, name)
        paths[name] = path
    for i, (a, path_a) in enumerate(paths.items()):
        for b, path_b in list(paths.items())[i + 1 :]:
            if path_a == path_b:
                t.problem(b, f"must differ from folders.{a}")
            elif path_a.is_relative_to(path_b) or path_b.is_relative_to(path_a):
                t.problem(b, f"must not be inside folders.{a}, or contain it")
    return FoldersConfig(**paths)


def _inbox(t: _Table) -> InboxConfig:
    return InboxConfig(
        stable_seconds=t.number("stable_seconds", 2.0, positive=False),
        require_done_marker=t.flag("require_done_marker", False),
        max_file_bytes=t.integer("max_file_bytes", 50_000_000, 1),
        max_requests_per_file=t.integer("max_requests_per_file", 50_000, 1),
        duplicate_window_hours=t.number("duplicate_window_hours", 168.0, positive=False),
        x12_mode=cast(X12Mode, t.choice("x12_mode", "reenvelope", ("reenvelope",))),
    )


def _timeouts(t: _Table) -> TimeoutsConfig:
    return TimeoutsConfig(
        ack_overdue_minutes=t.number("ack_overdue_minutes", 60.0, positive=True),
        response_overdue_minutes_270=t.number("response_overdue_minutes_270", 5.0, positive=True),
        response_overdue_minutes_278=t.number("response_overdue_minutes_278", 4320.0, positive=True),
    )


def _routing(t: _Table, partners: tuple[PartnerConfig, ...]) -> RoutingConfig:
    default = t.optional_text("default_partner")
    if default is not None and default not in {p.name for p in partners}:
        t.problem("default_partner", "must name one of the [[partners]]")
    return RoutingConfig(default_partner=default)


def _retention(t: _Table) -> RetentionConfig:
    values: dict[str, timedelta | None] = {}
    for kind in RETENTION_KINDS:
        text = t.text(kind)
        if not text:
            continue
        try:
            values[kind] = parse_period(text, t.key(kind))
        except ConfigError as exc:
            t.problem(kind, str(exc).partition(": ")[2])
    return RetentionConfig(**values)


def _precert(t: _Table, base: Path) -> PrecertConfig:
    levels = t.texts("expedited_levels") if "expedited_levels" in t.data else ("U", "03")
    for index, level in enumerate(levels):
        if level not in ("E", "U", "03"):
            t.problem(f"expedited_levels[{index}]", "must be a UM06 level of service: E, U or 03")
    return PrecertConfig(
        rules_file=t.path("rules_file", base),
        answer_not_required=t.flag("answer_not_required", False),
        expedited_levels=tuple(dict.fromkeys(levels)),
        expiring_within_days=t.integer("expiring_within_days", 14, 0, 3650),
    )
