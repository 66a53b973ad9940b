"""The configuration's frozen models and the keys each TOML table accepts (``SCHEMA``)."""

from __future__ import annotations

import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from sqlalchemy.engine import make_url

from gateway.errors import ConfigError
from gateway.runtime.logsetup import register_secret
from gateway.transport.sftp import (
    MAX_NAME_BYTES,
    PART_PREFIX,
    PART_SUFFIX,
    SftpEndpoint,
    load_private_key,
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
Transport = Literal["sftp", "core"]
LogFormat = Literal["auto", "json", "console"]
RETENTION_KINDS = ("payloads", "archive", "quarantine", "results", "rows")

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
            "api",
            "fhir",
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
    "retention": frozenset(RETENTION_KINDS),
    "api": frozenset({"realtime_budget_seconds", "max_body_bytes"}),
    "fhir": frozenset({"payers"}),
    "identity": frozenset({"isa_qualifier", "isa_id", "gs_id", "trace_assigner"}),
    "folders": frozenset(FOLDER_NAMES),
    "inbox": frozenset(
        {
            "stable_seconds",
            "require_done_marker",
            "max_file_bytes",
            "max_requests_per_file",
            "duplicate_window_hours",
            "x12_mode",
        }
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
            "max_files_per_cycle",
            "max_bytes_per_cycle",
            "max_seconds_per_cycle",
            "max_file_bytes",
            "send_acks",
            "isa_qualifier",
            "isa_id",
            "gs_id",
            "payers",
            "leniency",
            "transport",
            "core",
        }
    ),
    "partners.core": frozenset(
        {
            "url",
            "envelope",
            "mode",
            "sender_id",
            "receiver_id",
            "auth",
            "username",
            "password_env",
            "password_file",
            "client_cert",
            "client_key",
            "ca_file",
            "timeout_seconds",
            "retry_seconds",
            "max_connections",
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
        """Create missing folders (mode 0700), reporting every folder that cannot be created.

        A folder of ours made by hand (or by an older release) with looser bits is tightened. A
        folder another user owns is an administrator's shared folder (a billing system's inbox in
        a setgid group folder): we cannot chmod it and leave it as it is.
        """
        problems = []
        for name, path in self.items():
            try:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                st = path.stat()
                if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.geteuid():
                    path.chmod(0o700)
            except OSError as exc:
                problems.append(f"folders.{name}: cannot create {path}: {exc.strerror}")
        _raise_if(problems, "the configured folders")


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
    max_requests_per_file: int = 50_000
    duplicate_window_hours: float = 168.0
    x12_mode: X12Mode = "reenvelope"


@dataclass(frozen=True)
class ApiConfig:
    """``[api]``: the HTTP API of ``x12gw serve``. A call to a real-time partner waits at most
    ``realtime_budget_seconds`` for the answer (CAQH CORE's round trip is 20 s), then gets a 202."""

    realtime_budget_seconds: float = 20.0
    max_body_bytes: int = 1_000_000


@dataclass(frozen=True)
class FhirConfig:
    """``[fhir]``: the Da Vinci PAS front door. ``payers`` is the payer directory: an insurer's FHIR
    identifier ``"<system>|<value>"`` -> the payer id its clearinghouse knows (2010A NM109, PI), since
    PAS bundles name insurers by NPI or other ids a 278 cannot carry as the payer's."""

    payers: dict[str, str] = field(default_factory=dict)


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
class CoreSettings:
    """How a ``transport = "core"`` partner is reached: CAQH CORE connectivity over HTTPS.

    ``mode`` realtime sends each request alone and waits for its answer; batch submits interchanges
    and picks up the results later. The server is trusted only through ``ca_file`` (its CA or its
    own certificate, pinned). ``retry_seconds``: no message is sent again sooner than this after the
    previous attempt (the rule's 90 s). The password is read on use, from the environment or a file."""

    url: str
    ca_file: Path
    envelope: Literal["mime", "soap"] = "mime"
    mode: Literal["realtime", "batch"] = "realtime"
    sender_id: str = ""
    receiver_id: str = ""
    auth: Literal["basic", "mtls"] = "basic"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    timeout_seconds: float = 60.0
    retry_seconds: float = 90.0
    max_connections: int = 4  # the run loop's POSTs in flight at once (real time)

    def password(self, partner: str) -> str | None:
        """The CORE password (environment or file), registered as a secret so logs redact it."""
        if self.password_env is not None:
            return _read_secret_env(self.password_env, f"partner {partner}: core.password_env")
        if self.password_file is None:
            return None
        try:
            value = self.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"partner {partner}: core.password_file cannot be read ({type(exc).__name__})"
            ) from None
        if not value:
            raise ConfigError(f"partner {partner}: core.password_file is empty")
        register_secret(value)
        return value


@dataclass(frozen=True)
class PartnerConfig:
    """One trading partner reached over SFTP (or CAQH CORE, ``core``). Secrets are read on use."""

    name: str
    host: str
    username: str
    isa_id: str
    upload_dir: str
    download_dir: str
    transport: Transport = "sftp"
    core: CoreSettings | None = None
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
    # what one exchange may take from this partner (a hostile or slow partner must not hold the node):
    # files and bytes downloaded per cycle, seconds per cycle, and the largest file taken at all
    max_files_per_cycle: int = 200
    max_bytes_per_cycle: int = 512_000_000
    max_seconds_per_cycle: float = 300.0
    max_file_bytes: int = 100_000_000
    send_acks: bool = True
    isa_qualifier: str = "ZZ"
    gs_id: str = ""
    payers: tuple[str, ...] = ()
    # envelope quirks (transactions.findings.QUIRKS) accepted from this partner with a warning
    leniency: tuple[str, ...] = ()

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
    api: ApiConfig = field(default_factory=ApiConfig)
    fhir: FhirConfig = field(default_factory=FhirConfig)

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
                (f"partners[{index}].core.password_env", partner.core.password_env if partner.core else None),
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


# --------------------------------------------------------------------------------------------- checks


def _raise_if(problems: list[str], what: object) -> None:
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{what} has {count}:\n{listing}")


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


def _file_name_problem(name: str) -> str | None:
    if not _SAFE_FILE_NAME.match(name):
        return "only letters, digits, '.', '_' and '-' are allowed, starting with a letter or digit"
    if ".." in name:
        return "'..' is not allowed"
    if len(name.encode("utf-8")) + len(PART_PREFIX) + len(PART_SUFFIX) > MAX_NAME_BYTES:
        return f"the name would be longer than {MAX_NAME_BYTES - len(PART_PREFIX) - len(PART_SUFFIX)} bytes"
    return None


def _payer_key(payer_id: str) -> str:
    return payer_id.strip().upper()


def _partner_preflight(index: int, partner: PartnerConfig) -> list[str]:
    where = f"partners[{index}]"
    if partner.core is not None:
        return _core_preflight(where, partner.core)
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


def _core_preflight(where: str, core: CoreSettings) -> list[str]:
    """The CORE partner's certificate files exist and can be read (contents are checked on use)."""
    files = [("ca_file", core.ca_file), ("client_cert", core.client_cert), ("client_key", core.client_key)]
    files.append(("password_file", core.password_file))
    return [
        f"{where}.core.{key}: {path} cannot be read"
        for key, path in files
        if path is not None and not os.access(path, os.R_OK)
    ]
