"""The [[partners]] sections: SFTP endpoint, credentials, pinned host keys, folders, file names."""

from __future__ import annotations

import string
from pathlib import Path
from typing import cast

from gateway.errors import ConfigError
from gateway.runtime.config.core_partner import core_partner
from gateway.runtime.config.models import (
    _HOST,
    _MISSING,
    _PARTNER_NAME,
    _PAYER_ID,
    DEFAULT_FILE_NAME_PATTERN,
    FILE_NAME_FIELDS,
    AfterDownload,
    GatewayConfig,
    PartnerConfig,
    _file_name_problem,
    _payer_key,
)
from gateway.runtime.config.reader import _Table
from gateway.runtime.config.sections import _isa_id, _qualifier
from gateway.transport.sftp import (
    parse_public_key,
    safe_display,
)
from transactions.findings import QUIRKS

# --------------------------------------------------------------------------------------------- partners


def _partners(top: _Table, base: Path) -> tuple[PartnerConfig, ...]:
    raw = top.raw("partners")
    if raw is _MISSING or raw == []:
        top.problem("partners", "at least one [[partners]] table is required")
        return ()
    if not isinstance(raw, list):
        top.problem("partners", "must be an array of tables, written [[partners]]")
        return ()
    return tuple(
        _partner(_Table(item, f"partners[{i}]", top.problems, "partners"), base) for i, item in enumerate(raw)
    )


def _partner(t: _Table, base: Path) -> PartnerConfig:
    name = t.text("name", required=True)
    if "name" in t.data and not _PARTNER_NAME.match(name):
        t.problem("name", "must be 1-63 of a-z, 0-9 and '-', starting with a letter or digit")
    if t.choice("transport", "sftp", ("sftp", "core")) == "core":
        return core_partner(t, base, name, payers=payers(t), leniency=leniency(t))
    host = t.text("host", required=True)
    if "host" in t.data and not _HOST.match(host):
        t.problem("host", "must be a host name or IP address")
    username = t.text("username", required=True)
    if "username" in t.data and (not username or not username.isprintable() or " " in username):
        t.problem("username", "must be non-empty, without spaces or control characters")
    isa_id = t.text("isa_id", required=True)
    if "isa_id" in t.data:
        _isa_id(t, "isa_id", isa_id)
    gs_id = t.text("gs_id") or isa_id
    if isa_id:
        _isa_id(t, "gs_id", gs_id, low=2)
    key_file, password_env, passphrase_env = _credentials(t, base)
    host_keys, known_hosts = _host_keys(t, base)
    after_download = cast(AfterDownload, t.choice("after_download", "delete", ("delete", "move", "leave")))
    upload_dir, download_dir, archive_dir = _remote_dirs(t, after_download)
    pattern = t.text("file_name_pattern", DEFAULT_FILE_NAME_PATTERN)
    _check_file_name_pattern(t, pattern, name)
    return PartnerConfig(
        name=name,
        host=host,
        port=t.integer("port", 22, 1, 65535),
        username=username,
        key_file=key_file,
        key_passphrase_env=passphrase_env,
        password_env=password_env,
        host_keys=host_keys,
        known_hosts_file=known_hosts,
        upload_dir=upload_dir,
        download_dir=download_dir,
        archive_dir=archive_dir,
        after_download=after_download,
        file_name_pattern=pattern,
        poll_seconds=t.number("poll_seconds", 30.0, positive=True),
        timeout_seconds=t.number("timeout_seconds", 30.0, positive=True),
        retry_attempts=t.integer("retry_attempts", 5, 1, 100),
        pause_after_failures=t.integer("pause_after_failures", 5, 1),
        pause_minutes=t.number("pause_minutes", 15.0, positive=False),
        max_transactions_per_file=t.integer("max_transactions_per_file", 100, 1, 10000),
        max_files_per_cycle=t.integer("max_files_per_cycle", 200, 1, 100_000),
        max_bytes_per_cycle=t.integer("max_bytes_per_cycle", 512_000_000, 1),
        max_seconds_per_cycle=t.number("max_seconds_per_cycle", 300.0, positive=True),
        max_file_bytes=t.integer("max_file_bytes", 100_000_000, 1),
        send_acks=t.flag("send_acks", True),
        isa_qualifier=_qualifier(t, "isa_qualifier"),
        isa_id=isa_id,
        gs_id=gs_id,
        payers=payers(t),
        leniency=leniency(t),
    )


def _credentials(t: _Table, base: Path) -> tuple[Path | None, str | None, str | None]:
    key_file = t.path("key_file", base)
    password_env = t.env_name("password_env")
    passphrase_env = t.env_name("key_passphrase_env")
    has_key = key_file is not None
    has_password = bool(t.text("password_env"))  # even if malformed: that is reported on its own
    if has_key and has_password:
        t.problem("key_file", "give key_file or password_env, not both")
    elif not has_key and not has_password:
        t.problem("key_file", "give key_file or password_env (the password itself stays in the environment)")
    if passphrase_env is not None and not has_key:
        t.problem("key_passphrase_env", "only applies together with key_file")
    return key_file, password_env, passphrase_env


def _host_keys(t: _Table, base: Path) -> tuple[tuple[str, ...], Path | None]:
    lines = tuple(line for line in t.texts("host_keys") if line)
    for index, line in enumerate(lines):
        try:
            parse_public_key(line)
        except ConfigError as exc:
            t.problem(f"host_keys[{index}]", f"{exc} (expected an OpenSSH public key line)")
    known_hosts = t.path("known_hosts_file", base)
    if not lines and known_hosts is None:
        t.problem(
            "host_keys",
            "give host_keys or known_hosts_file (host keys are pinned; unknown keys are never accepted)",
        )
    return lines, known_hosts


def _remote_dir_ok(value: str) -> bool:
    return bool(value) and value.isprintable()


def _remote_dirs(t: _Table, after_download: str) -> tuple[str, str, str | None]:
    dirs = {}
    for key in ("upload_dir", "download_dir"):
        dirs[key] = t.text(key, required=True)
        if key in t.data and not _remote_dir_ok(dirs[key]):
            t.problem(key, "must be a non-empty remote folder without control characters")
    archive = t.optional_text("archive_dir")
    if after_download == "move":
        if archive is None:
            t.problem("archive_dir", 'is required when after_download = "move"')
        elif not _remote_dir_ok(archive):
            t.problem("archive_dir", "must be a remote folder without control characters")
        elif archive.rstrip("/") == dirs["download_dir"].rstrip("/"):
            t.problem("archive_dir", "must differ from download_dir")
    elif archive is not None:
        t.problem("archive_dir", 'only applies when after_download = "move"')
    return dirs["upload_dir"], dirs["download_dir"], archive


def _check_file_name_pattern(t: _Table, pattern: str, partner: str) -> None:
    key = "file_name_pattern"
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError:
        t.problem(key, "has unbalanced { or }")
        return
    fields = [(f, spec, conv) for _, f, spec, conv in parts if f is not None]
    allowed = "{" + "} {".join(FILE_NAME_FIELDS) + "}"
    for name, spec, conversion in fields:
        if name not in FILE_NAME_FIELDS:
            t.problem(key, f"unknown placeholder {{{safe_display(name, 32)}}}; use only {allowed}")
            return
        if spec or conversion:
            t.problem(key, f"placeholder {{{name}}} must not have a format spec or conversion")
            return
    if "control" not in {f for f, _, _ in fields}:
        t.problem(key, "must contain {control} so that every file gets a unique name")
        return
    sample = pattern.format(
        partner=partner or "partner", kind="278", control="000000001", date="20250131", time="235959"
    )
    problem = _file_name_problem(sample)
    if problem is not None:
        t.problem(key, f"does not give a safe file name: {problem}")


def leniency(t: _Table) -> tuple[str, ...]:
    quirks = t.texts("leniency")
    for index, quirk in enumerate(quirks):
        if quirk not in QUIRKS:
            t.problem(f"leniency[{index}]", f"must be one of: {', '.join(sorted(QUIRKS))}")
    return tuple(dict.fromkeys(q for q in quirks if q in QUIRKS))


def payers(t: _Table) -> tuple[str, ...]:
    payers = t.texts("payers")
    seen: set[str] = set()
    for index, payer in enumerate(payers):
        if not _PAYER_ID.match(payer):
            t.problem(f"payers[{index}]", "must be 2-80 letters, digits, space, '.', '_' or '-'")
        elif _payer_key(payer) in seen:
            t.problem(f"payers[{index}]", "is listed twice")
        seen.add(_payer_key(payer))
    return payers


def _cross_checks(config: GatewayConfig, problems: list[str]) -> None:
    """Rules that span tables: unique partner names and payers, partner ISA ids distinct from ours."""
    names: dict[str, int] = {}
    payers: dict[str, int] = {}
    ours = (config.identity.isa_qualifier, config.identity.isa_id)
    for index, partner in enumerate(config.partners):
        if partner.name and partner.name in names:
            problems.append(f"partners[{index}].name: duplicates partners[{names[partner.name]}].name")
        names.setdefault(partner.name, index)
        if partner.isa_id and (partner.isa_qualifier, partner.isa_id) == ours:
            problems.append(
                f"partners[{index}].isa_id: must differ from identity.isa_id (sender and receiver would be "
                "the same)"
            )
        for j, payer in enumerate(partner.payers):
            other = payers.setdefault(_payer_key(payer), index)
            if other != index:
                problems.append(
                    f"partners[{index}].payers[{j}]: is already routed to partners[{other}] "
                    f"({config.partners[other].name})"
                )
