"""The gateway's configuration: one TOML file, validated completely at start-up.

Why it is built this way:

* Every problem names its key (``partners[1].host_keys: ...``) and all problems are reported at
  once, so an operator fixes the file in one pass instead of one error per restart.
* Unknown keys are errors: a misspelt option must not silently fall back to its default.
* Secrets never live in the file. The file names environment variables (``password_env``), which are
  read when the secret is used (``PartnerConfig.password()``), registered with the log redactor, and
  never stored on the frozen config objects (so they cannot leak through ``repr``).
* Relative paths are resolved against the configuration file's folder, not the working directory,
  so the gateway behaves the same whoever starts it from wherever.
* Host keys are pinned: each partner needs ``host_keys`` or a ``known_hosts_file``; unknown server
  keys are never accepted.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import secrets
import socket
import stat
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gateway.errors import ConfigError
from gateway.runtime.durations import parse_period
from gateway.runtime.logsetup import register_secret
from gateway.transport.sftp import (
    MAX_NAME_BYTES,
    PART_PREFIX,
    PART_SUFFIX,
    SftpEndpoint,
    load_private_key,
    parse_public_key,
    pinned_host_keys,
    safe_display,
)
from policy.precert import PrecertRuleError, parse_rules

CONFIG_ENV = "X12GW_CONFIG"
DEFAULT_CONFIG_NAME = "gateway.toml"
DEFAULT_MEMBER_HASH_KEY_ENV = "X12GW_MEMBER_HASH_KEY"
DEFAULT_PAYLOAD_KEY_ENV = "X12GW_PAYLOAD_KEY"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MEMBER_HASH_KEY_FILE = "member_hash.key"
MIN_MEMBER_HASH_KEY_LENGTH = 16
DEFAULT_FILE_NAME_PATTERN = "{partner}-{kind}-{control}.x12"
FILE_NAME_FIELDS = ("partner", "kind", "control", "date", "time")
FOLDER_NAMES = ("inbox", "outbox", "archive", "quarantine", "work", "payloads", "state")
# ISA05/ISA07 codes of X12 5010 (DUNS, DUNS+suffix, HIN, carrier, FI, Medicare, TIN, NAIC, mutually defined).
ISA_QUALIFIERS = ("01", "14", "20", "27", "28", "29", "30", "33", "ZZ")

Usage = Literal["P", "T"]
X12Mode = Literal["reenvelope"]  # passthrough (send as received) is not built yet
AfterDownload = Literal["delete", "move", "leave"]
LogFormat = Literal["auto", "json", "console"]

# The keys each table accepts; anything else is reported as unknown. The example file documents all.
SCHEMA: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            "gateway",
            "identity",
            "folders",
            "inbox",
            "outbox",
            "timeouts",
            "mappings",
            "partners",
            "routing",
            "precert",
            "retention",
        }
    ),
    "gateway": frozenset(
        {
            "database_url",
            "database_password_env",
            "node_id",
            "member_hash_key_env",
            "payload_key_env",
            "usage",
            "lease_seconds",
            "log_level",
            "log_format",
        }
    ),
    "retention": frozenset({"payloads", "archive", "quarantine", "results", "rows"}),
    "identity": frozenset({"isa_qualifier", "isa_id", "gs_id", "trace_assigner"}),
    "folders": frozenset(FOLDER_NAMES),
    "inbox": frozenset(
        {"stable_seconds", "require_done_marker", "max_file_bytes", "duplicate_window_hours", "x12_mode"}
    ),
    "outbox": frozenset({"csv_summary"}),
    "timeouts": frozenset(
        {"ack_overdue_minutes", "response_overdue_minutes_270", "response_overdue_minutes_278"}
    ),
    "mappings": frozenset({"override_dir"}),
    "partners": frozenset(
        {
            "name",
            "host",
            "port",
            "username",
            "key_file",
            "key_passphrase_env",
            "password_env",
            "host_keys",
            "known_hosts_file",
            "upload_dir",
            "download_dir",
            "archive_dir",
            "after_download",
            "file_name_pattern",
            "poll_seconds",
            "timeout_seconds",
            "retry_attempts",
            "pause_after_failures",
            "pause_minutes",
            "max_transactions_per_file",
            "send_acks",
            "isa_qualifier",
            "isa_id",
            "gs_id",
            "payers",
        }
    ),
    "routing": frozenset({"default_partner"}),
    "precert": frozenset({"rules_file", "answer_not_required", "expedited_levels", "expiring_within_days"}),
}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_ISA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/&()-]*$")
_PARTNER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]{1,253}$")
_PAYER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{1,79}$")
_TRACE_ASSIGNER = re.compile(r"^[139][A-Za-z0-9]{9}$")
_SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token")
_DB_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite", "postgresql+psycopg"})
_MISSING: Any = object()


# --------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class GatewaySettings:
    """The ``[gateway]`` table: where state lives and how this node identifies itself."""

    database_url: str
    node_id: str
    member_hash_key_env: str = DEFAULT_MEMBER_HASH_KEY_ENV
    usage: Usage = "T"
    database_password_env: str | None = None
    lease_seconds: float = 120.0  # scale-out: how soon a dead node's claimed work and partners move on
    payload_key_env: str = DEFAULT_PAYLOAD_KEY_ENV
    log_level: str = "INFO"
    log_format: LogFormat = "auto"


@dataclass(frozen=True)
class IdentityConfig:
    """Our own envelope identity: ISA05/06 sender, GS02 application sender, TRN03 trace assigner."""

    isa_qualifier: str
    isa_id: str
    gs_id: str
    trace_assigner: str


@dataclass(frozen=True)
class FoldersConfig:
    """Local folders (absolute paths). Each holds PHI, so ``ensure()`` creates them owner-only."""

    inbox: Path
    outbox: Path
    archive: Path
    quarantine: Path
    work: Path
    payloads: Path
    state: Path

    def items(self) -> tuple[tuple[str, Path], ...]:
        """``(key, path)`` for every folder, in schema order."""
        return tuple((name, cast(Path, getattr(self, name))) for name in FOLDER_NAMES)

    def ensure(self) -> None:
        """Create missing folders (mode 0700), reporting every folder that cannot be created."""
        problems = []
        for name, path in self.items():
            try:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                if stat.S_IMODE(path.stat().st_mode) & 0o077:
                    path.chmod(0o700)  # a folder made by hand (or an older release) is tightened
            except OSError as exc:
                problems.append(f"folders.{name}: cannot create {path}: {exc.strerror}")
        _raise_if(problems, "the configured folders")


RETENTION_KINDS = ("payloads", "archive", "quarantine", "results", "rows")


@dataclass(frozen=True)
class RetentionConfig:
    """``[retention]``: how long ``x12gw purge`` keeps each kind of data (None: forever).

    HIPAA asks for six years of documentation; seven years by default leaves a margin.
    """

    payloads: timedelta | None = timedelta(days=7 * 365)
    archive: timedelta | None = timedelta(days=7 * 365)
    quarantine: timedelta | None = timedelta(days=7 * 365)
    results: timedelta | None = timedelta(days=7 * 365)
    rows: timedelta | None = timedelta(days=7 * 365)


@dataclass(frozen=True)
class InboxConfig:
    """How request files are taken from the inbox folder."""

    stable_seconds: float = 2.0
    require_done_marker: bool = False
    max_file_bytes: int = 50_000_000
    duplicate_window_hours: float = 168.0
    x12_mode: X12Mode = "reenvelope"


@dataclass(frozen=True)
class OutboxConfig:
    """What is written to the outbox besides the JSON results."""

    csv_summary: bool = True


@dataclass(frozen=True)
class TimeoutsConfig:
    """When an outstanding acknowledgement or response is reported as overdue (minutes)."""

    ack_overdue_minutes: float = 60.0
    response_overdue_minutes_270: float = 5.0
    response_overdue_minutes_278: float = 4320.0

    def response_overdue_minutes(self, kind: str) -> float:
        """The response deadline for a 270 or 278 request."""
        if kind == "270":
            return self.response_overdue_minutes_270
        if kind == "278":
            return self.response_overdue_minutes_278
        raise ValueError(f"no response deadline for transaction set {kind!r}")


@dataclass(frozen=True)
class MappingsConfig:
    """Optional folder of per-payer mapping override files."""

    override_dir: Path | None = None


@dataclass(frozen=True)
class PrecertConfig:
    """Pre-certification rules (``policy.precert``) and what the gateway does with them.

    ``answer_not_required``: an inbox 278 whose services need no pre-certification (by 271 evidence or
    the rules) is answered with a "not required" record instead of being sent. ``expedited_levels``:
    UM06 codes whose decision is due within the payer's expedited time. ``expiring_within_days``: how
    early the alerts warn that a certification ends.
    """

    rules_file: Path | None = None
    answer_not_required: bool = False
    expedited_levels: tuple[str, ...] = ("U", "03")
    expiring_within_days: int = 14


@dataclass(frozen=True)
class PartnerConfig:
    """One trading partner reached over SFTP. Secrets are read from the environment on use."""

    name: str
    host: str
    username: str
    isa_id: str
    upload_dir: str
    download_dir: str
    port: int = 22
    key_file: Path | None = None
    key_passphrase_env: str | None = None
    password_env: str | None = None
    host_keys: tuple[str, ...] = ()
    known_hosts_file: Path | None = None
    archive_dir: str | None = None
    after_download: AfterDownload = "delete"
    file_name_pattern: str = DEFAULT_FILE_NAME_PATTERN
    poll_seconds: float = 30.0
    timeout_seconds: float = 30.0
    retry_attempts: int = 5
    pause_after_failures: int = 5
    pause_minutes: float = 15.0
    max_transactions_per_file: int = 100
    send_acks: bool = True
    isa_qualifier: str = "ZZ"
    gs_id: str = ""
    payers: tuple[str, ...] = ()

    def password(self) -> str | None:
        """The SFTP password from ``password_env`` (None when the partner uses a key file)."""
        if self.password_env is None:
            return None
        return _read_secret_env(self.password_env, f"partner {self.name}: password_env")

    def key_passphrase(self) -> str | None:
        """The private key's passphrase from ``key_passphrase_env`` (None when not configured)."""
        if self.key_passphrase_env is None:
            return None
        return _read_secret_env(self.key_passphrase_env, f"partner {self.name}: key_passphrase_env")

    def sftp_endpoint(self) -> SftpEndpoint:
        """The endpoint for ``transport.sftp.SftpClient``, secrets resolved now from the environment."""
        return SftpEndpoint(
            host=self.host,
            port=self.port,
            username=self.username,
            key_file=self.key_file,
            password=self.password(),
            host_keys=self.host_keys,
            known_hosts_file=self.known_hosts_file,
            timeout=self.timeout_seconds,
            partner=self.name,
            key_passphrase=self.key_passphrase(),
        )

    def handles_payer(self, payer_id: str) -> bool:
        """Whether ``payer_id`` is listed under this partner (case and outer spaces ignored)."""
        wanted = _payer_key(payer_id)
        return any(_payer_key(p) == wanted for p in self.payers)

    def file_name(self, kind: str, control: int | str, when: datetime) -> str:
        """The remote file name for an upload, from ``file_name_pattern``.

        ``kind`` is the transaction set (270, 278, 999, TA1...), ``control`` the interchange control
        number (ints are zero-padded to 9 digits), ``when`` gives {date} (YYYYMMDD) and {time} (HHMMSS).
        """
        control_text = f"{control:09d}" if isinstance(control, int) else control
        name = self.file_name_pattern.format(
            partner=self.name,
            kind=kind,
            control=control_text,
            date=when.strftime("%Y%m%d"),
            time=when.strftime("%H%M%S"),
        )
        problem = _file_name_problem(name)
        if problem is not None:
            raise ConfigError(f"partner {self.name}: file_name_pattern gives an unusable name: {problem}")
        return name


@dataclass(frozen=True)
class RoutingConfig:
    """Where requests for payers not listed under any partner go (None: they are rejected)."""

    default_partner: str | None = None


@dataclass(frozen=True)
class GatewayConfig:
    """The whole validated configuration. ``base_dir`` is the folder relative paths were resolved in."""

    base_dir: Path
    gateway: GatewaySettings
    identity: IdentityConfig
    folders: FoldersConfig
    partners: tuple[PartnerConfig, ...]
    inbox: InboxConfig = field(default_factory=InboxConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    mappings: MappingsConfig = field(default_factory=MappingsConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    source: Path | None = None
    precert: PrecertConfig = field(default_factory=PrecertConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)

    def partner(self, name: str) -> PartnerConfig:
        """The partner called ``name``; ConfigError if there is none."""
        for partner in self.partners:
            if partner.name == name:
                return partner
        known = ", ".join(p.name for p in self.partners) or "none"
        raise ConfigError(f"no partner named {safe_display(name, 64)!r} (configured: {known})")

    def partner_for_payer(self, payer_id: str) -> PartnerConfig | None:
        """The partner that routes ``payer_id``: the one listing it, else ``routing.default_partner``."""
        for partner in self.partners:
            if partner.handles_payer(payer_id):
                return partner
        if self.routing.default_partner is not None:
            return self.partner(self.routing.default_partner)
        return None

    def database_url(self) -> str:
        """The database URL to connect with, the password (if any) added from the environment."""
        url = self.gateway.database_url
        if self.gateway.database_password_env is None:
            return url
        password = _read_secret_env(self.gateway.database_password_env, "gateway.database_password_env")
        return make_url(url).set(password=password).render_as_string(hide_password=False)

    def member_hash_key(self, *, create: bool = False) -> bytes:
        """The HMAC key for member-id hashes: from the environment, else a key file in ``folders.state``.

        All nodes sharing one database must use the same key, so multi-node installations set the
        environment variable; a single node gets a random key file created on first use (mode 0600) by
        ``x12gw run``/``demo`` only (``create``): an operator command never makes a new key, which would
        make every member search silently find nothing.
        """
        env_name = self.gateway.member_hash_key_env
        value = os.environ.get(env_name, "").strip()
        if value:
            if len(value) < MIN_MEMBER_HASH_KEY_LENGTH:
                raise ConfigError(
                    f"gateway.member_hash_key_env: environment variable {env_name} is shorter than "
                    f"{MIN_MEMBER_HASH_KEY_LENGTH} characters"
                )
            register_secret(value)
            return value.encode("utf-8")
        path = self.folders.state / MEMBER_HASH_KEY_FILE
        if not create and not path.exists():
            raise ConfigError(
                f"no member-hash key: {env_name} is not set and {path} does not exist; set the variable "
                "or restore the key file from backup (only `x12gw run` creates a new key)"
            )
        return _member_key_from_file(path)

    def secret_env_references(self) -> tuple[tuple[str, str], ...]:
        """``(key, variable)`` for every environment variable the configuration names for a secret."""
        refs = [("gateway.database_password_env", self.gateway.database_password_env)]
        for index, partner in enumerate(self.partners):
            refs += [
                (f"partners[{index}].password_env", partner.password_env),
                (f"partners[{index}].key_passphrase_env", partner.key_passphrase_env),
            ]
        return tuple((key, name) for key, name in refs if name is not None)

    def missing_environment(self) -> tuple[str, ...]:
        """Environment variables the configuration names for secrets that are unset or empty."""
        names = (name for _, name in self.secret_env_references() if not os.environ.get(name))
        return tuple(dict.fromkeys(names))

    def preflight(self) -> None:
        """Check what only the running system can tell: secrets set, key files usable, host keys found.

        Reports every problem at once (ConfigError); nothing is created or changed.
        """
        problems = [
            f"{key}: environment variable {name} is not set or is empty"
            for key, name in self.secret_env_references()
            if not os.environ.get(name)
        ]
        for index, partner in enumerate(self.partners):
            problems += _partner_preflight(index, partner)
        override = self.mappings.override_dir
        if override is not None and not override.is_dir():
            problems.append(f"mappings.override_dir: {override} is not a folder")
        problems += _precert_preflight(self.precert)
        _raise_if(problems, self.source or "the configuration")


# --------------------------------------------------------------------------------------------- loading


def config_path(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The configuration file: ``--config`` if given, else ``$X12GW_CONFIG``, else ``./gateway.toml``."""
    if cli_value:
        return Path(cli_value)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    local = Path(DEFAULT_CONFIG_NAME)
    if local.is_file():
        return local
    raise ConfigError(
        f"no configuration file: pass --config, set {CONFIG_ENV} or create ./{DEFAULT_CONFIG_NAME}"
    )


def load_config(path: str | os.PathLike[str] | None = None) -> GatewayConfig:
    """Read and validate the TOML file at ``path`` (default: see ``config_path``)."""
    file = config_path(path).expanduser().resolve()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"configuration file {file} cannot be read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"configuration file {file} is not UTF-8 (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {file} is not valid TOML: {exc}") from exc
    return parse_config(data, file.parent, source=file)


def parse_config(
    data: Mapping[str, Any], base_dir: str | os.PathLike[str], *, source: Path | None = None
) -> GatewayConfig:
    """Validate ``data`` (a parsed TOML document); relative paths resolve against ``base_dir``."""
    base = Path(base_dir).expanduser().resolve()
    problems: list[str] = []
    top = _Table(data, "", problems)
    gateway_table = top.table("gateway")
    database_url = _database_url(gateway_table, base)
    settings = _gateway(gateway_table)
    identity = _identity(top.table("identity"))
    folders = _folders(top.table("folders"), base)
    if database_url is None:
        database_url = f"sqlite:///{folders.state / 'gateway.db'}"
    inbox = _inbox(top.table("inbox"))
    outbox = OutboxConfig(csv_summary=top.table("outbox").flag("csv_summary", True))
    timeouts = _timeouts(top.table("timeouts"))
    mappings = MappingsConfig(override_dir=top.table("mappings").path("override_dir", base))
    partners = _partners(top, base)
    config = GatewayConfig(
        base_dir=base,
        gateway=dataclasses.replace(settings, database_url=database_url),
        identity=identity,
        folders=folders,
        partners=partners,
        inbox=inbox,
        outbox=outbox,
        timeouts=timeouts,
        mappings=mappings,
        routing=_routing(top.table("routing"), partners),
        source=source,
        precert=_precert(top.table("precert"), base),
        retention=_retention(top.table("retention")),
    )
    _cross_checks(config, problems)
    _raise_if(problems, source or "the configuration")
    return config


def _raise_if(problems: list[str], what: object) -> None:
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{what} has {count}:\n{listing}")


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


def _precert_preflight(precert: PrecertConfig) -> list[str]:
    """The rules file exists and parses (its own problems are listed under the key)."""
    path = precert.rules_file
    if path is None:
        return []
    try:
        parse_rules(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        return [f"precert.rules_file: {path} cannot be read: {exc.strerror}"]
    except (UnicodeDecodeError, PrecertRuleError) as exc:
        return [f"precert.rules_file: {exc}"]
    return []


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
        send_acks=t.flag("send_acks", True),
        isa_qualifier=_qualifier(t, "isa_qualifier"),
        isa_id=isa_id,
        gs_id=gs_id,
        payers=_payers(t),
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


def _file_name_problem(name: str) -> str | None:
    if not _SAFE_FILE_NAME.match(name):
        return "only letters, digits, '.', '_' and '-' are allowed, starting with a letter or digit"
    if ".." in name:
        return "'..' is not allowed"
    if len(name.encode("utf-8")) + len(PART_PREFIX) + len(PART_SUFFIX) > MAX_NAME_BYTES:
        return f"the name would be longer than {MAX_NAME_BYTES - len(PART_PREFIX) - len(PART_SUFFIX)} bytes"
    return None


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


def _payer_key(payer_id: str) -> str:
    return payer_id.strip().upper()


def _payers(t: _Table) -> tuple[str, ...]:
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


# --------------------------------------------------------------------------------------------- runtime


def _read_secret_env(name: str, what: str) -> str:
    """A secret from the environment, registered for log redaction; the message never holds a value."""
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{what}: environment variable {name} is not set or is empty")
    register_secret(value)
    return value


def _member_key_from_file(path: Path) -> bytes:
    """Read the member-hash key file, creating it atomically (0600, random) if it does not exist."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # fails if another process created it first; theirs wins
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"member hash key file {path} cannot be read") from exc
    if mode & 0o077:
        raise ConfigError(
            f"member hash key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run chmod 600 on it"
        )
    if len(text) < MIN_MEMBER_HASH_KEY_LENGTH:
        raise ConfigError(
            f"member hash key file {path} holds fewer than {MIN_MEMBER_HASH_KEY_LENGTH} characters"
        )
    register_secret(text)
    return text.encode("utf-8")


def _partner_preflight(index: int, partner: PartnerConfig) -> list[str]:
    where = f"partners[{index}]"
    if partner.password_env and not os.environ.get(partner.password_env):
        return []  # reported as a missing variable; the endpoint cannot be built yet
    if partner.key_passphrase_env and not os.environ.get(partner.key_passphrase_env):
        return []
    problems = []
    if partner.key_file is not None:
        try:
            load_private_key(partner.key_file, partner.key_passphrase())
        except ConfigError as exc:
            problems.append(f"{where}.key_file: {exc}")
    if partner.known_hosts_file is not None:
        try:
            keys = pinned_host_keys(partner.sftp_endpoint())
        except ConfigError as exc:
            problems.append(f"{where}.known_hosts_file: {exc}")
        else:
            if len(keys) == len(partner.host_keys):
                problems.append(
                    f"{where}.known_hosts_file: {partner.known_hosts_file} has no key for "
                    f"{partner.sftp_endpoint().host_key_name}"
                )
    return problems


# --------------------------------------------------------------------------------------------- demo


def demo_config_text(base_dir: Path, sim_port: int, sim_host_key_line: str, key_file: Path) -> str:
    """A complete TOML configuration for the demo: one partner, the local simulator on 127.0.0.1.

    ``base_dir`` is where the file will live (folders are its subfolders); write the text there so a
    user can read and edit what the demo ran with.
    """

    def q(value: str) -> str:
        return json.dumps(value)  # a JSON string is a valid TOML basic string

    key = Path(key_file)
    if key.is_absolute() and key.is_relative_to(base_dir):
        key = key.relative_to(base_dir)  # keeps the demo folder relocatable

    return f"""\
# Demo configuration written by `x12gw demo`; see config/gateway.example.toml for every key.
[gateway]
usage = "T"

[identity]
isa_qualifier = "ZZ"
isa_id = "X12GATEWAY"
gs_id = "X12GATEWAY"
trace_assigner = "9X12GATEWY"

[inbox]
stable_seconds = 0.2

[[partners]]
name = "sim-clearinghouse"
host = "127.0.0.1"
port = {int(sim_port)}
username = "x12gw"
key_file = {q(str(key))}
host_keys = [{q(sim_host_key_line)}]
upload_dir = "/inbound"
download_dir = "/outbound"
after_download = "delete"
poll_seconds = 1
timeout_seconds = 10
retry_attempts = 3
pause_minutes = 1
isa_qualifier = "ZZ"
isa_id = "SIMCLEARING"
gs_id = "SIMCLEARING"

[routing]
default_partner = "sim-clearinghouse"
"""


def default_demo_config(
    base_dir: Path, sim_port: int, sim_host_key_line: str, key_file: Path
) -> GatewayConfig:
    """The demo's configuration (``demo_config_text`` parsed with ``base_dir`` as its folder)."""
    text = demo_config_text(base_dir, sim_port, sim_host_key_line, key_file)
    return parse_config(tomllib.loads(text), base_dir)
