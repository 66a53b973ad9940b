"""Configuration: every validation rule names its key, paths resolve against the file, secrets stay out."""

from __future__ import annotations

import copy
import dataclasses
import io
import os
import stat
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.errors import ConfigError
from gateway.runtime import logsetup
from gateway.runtime.config import (
    CONFIG_ENV,
    MEMBER_HASH_KEY_FILE,
    SCHEMA,
    GatewayConfig,
    config_path,
    default_demo_config,
    demo_config_text,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "gateway.example.toml"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEJDjQV2EwpqNs3K+OY7FVWuI6hEk6QKQDvVogXt/S71"
DELETE = object()


def minimal() -> dict[str, Any]:
    return {
        "identity": {"isa_id": "OURID", "trace_assigner": "9OURTRACE1"},
        "partners": [
            {
                "name": "acme",
                "host": "sftp.example.com",
                "username": "gw",
                "key_file": "keys/acme",
                "host_keys": [HOST_KEY],
                "upload_dir": "/in",
                "download_dir": "/out",
                "isa_id": "ACMEID",
                "payers": ["ACME01"],
            }
        ],
    }


def second_partner(**changes: Any) -> dict[str, Any]:
    partner = dict(minimal()["partners"][0], name="blue", isa_id="BLUEID", payers=["BLUE01"])
    partner.update(changes)
    return partner


def changed(path: str, value: object, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """``data`` (default: minimal()) with the dotted ``path`` set to ``value`` (or removed: DELETE)."""
    out = copy.deepcopy(minimal() if data is None else data)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


def problems(data: dict[str, Any], base: Path) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base)
    return str(info.value)


def ed25519_private_key_file(path: Path, mode: int = 0o600) -> str:
    """Write an unencrypted OpenSSH ed25519 private key to ``path``; return its public key line."""
    key = ed25519.Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    path.chmod(mode)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()


# --------------------------------------------------------------------------------------------- happy path


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    """A minimal file parses, and every default matches the documented schema."""
    config = parse_config(minimal(), tmp_path)
    base = tmp_path.resolve()
    assert config.base_dir == base
    assert config.gateway.usage == "T"
    assert config.gateway.member_hash_key_env == "X12GW_MEMBER_HASH_KEY"
    assert config.gateway.node_id.endswith(f"-{os.getpid()}")
    assert config.gateway.database_url == f"sqlite:///{base / 'state' / 'gateway.db'}"
    assert config.identity.isa_qualifier == "ZZ"
    assert config.identity.gs_id == "OURID"
    assert dict(config.folders.items()) == {name: base / name for name, _ in config.folders.items()}
    assert config.inbox.stable_seconds == 2.0
    assert config.inbox.require_done_marker is False
    assert config.inbox.max_file_bytes == 50_000_000
    assert config.inbox.duplicate_window_hours == 168
    assert config.inbox.x12_mode == "reenvelope"
    assert config.outbox.csv_summary is True
    assert config.timeouts.ack_overdue_minutes == 60
    assert config.timeouts.response_overdue_minutes("270") == 5
    assert config.timeouts.response_overdue_minutes("278") == 4320
    assert config.mappings.override_dir is None
    assert config.routing.default_partner is None
    partner = config.partners[0]
    assert (partner.port, partner.after_download, partner.file_name_pattern) == (
        22,
        "delete",
        "{partner}-{kind}-{control}.x12",
    )
    assert (partner.poll_seconds, partner.timeout_seconds, partner.retry_attempts) == (30, 30, 5)
    assert (partner.pause_after_failures, partner.pause_minutes) == (5, 15)
    assert partner.max_transactions_per_file == 100
    assert partner.send_acks is True
    assert (partner.isa_qualifier, partner.gs_id) == ("ZZ", "ACMEID")
    assert partner.key_file == base / "keys" / "acme"


def test_relative_paths_resolve_against_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths (folders, keys, SQLite URL, overrides) resolve in the file's folder, not the cwd."""
    conf_dir = tmp_path / "etc" / "x12gw"
    conf_dir.mkdir(parents=True)
    data = changed("partners.0.known_hosts_file", "keys/known_hosts")
    data["folders"] = {"inbox": "../spool/in", "state": "/var/lib/x12gw-state"}
    data["gateway"] = {"database_url": "sqlite:///db/gw.sqlite"}
    data["mappings"] = {"override_dir": "overrides"}
    text = tomllib_dump(data)
    (conf_dir / "gateway.toml").write_text(text, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config("../etc/x12gw/gateway.toml")
    base = conf_dir.resolve()
    assert config.source == base / "gateway.toml"
    assert config.base_dir == base
    assert config.folders.inbox == tmp_path.resolve() / "etc" / "spool" / "in"
    assert config.folders.state == Path("/var/lib/x12gw-state")
    assert config.folders.outbox == base / "outbox"
    assert config.gateway.database_url == f"sqlite:///{base / 'db' / 'gw.sqlite'}"
    assert config.mappings.override_dir == base / "overrides"
    assert config.partners[0].key_file == base / "keys" / "acme"
    assert config.partners[0].known_hosts_file == base / "keys" / "known_hosts"


def tomllib_dump(data: dict[str, Any]) -> str:
    """A tiny TOML writer for the shapes these tests use (tables, arrays of tables, scalars, lists)."""

    def scalar(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines: list[str] = []
    for section, body in data.items():
        tables = body if isinstance(body, list) else [body]
        for table in tables:
            lines.append(f"[[{section}]]" if isinstance(body, list) else f"[{section}]")
            lines += [f"{k} = {scalar(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_database_urls_other_than_relative_sqlite_are_kept(tmp_path: Path) -> None:
    """PostgreSQL URLs, absolute SQLite paths and in-memory SQLite pass through unchanged."""
    for url in ("postgresql+psycopg://x12gw@db.example.com:5432/x12gw", "sqlite:////srv/gw.db", "sqlite://"):
        config = parse_config(changed("gateway.database_url", url), tmp_path)
        assert config.gateway.database_url == url


def test_config_path_comes_from_argument_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config wins over X12GW_CONFIG, which wins over ./gateway.toml; with none the error says how."""
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "from-env.toml"))
    assert config_path("cli.toml") == Path("cli.toml")
    assert config_path(None) == tmp_path / "from-env.toml"
    (tmp_path / "from-env.toml").write_text(tomllib_dump(minimal()), encoding="utf-8")
    assert load_config().source == (tmp_path / "from-env.toml").resolve()
    monkeypatch.delenv(CONFIG_ENV)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"pass --config, set X12GW_CONFIG or create \./gateway\.toml"):
        config_path(None)
    (tmp_path / "gateway.toml").write_text(tomllib_dump(minimal()), encoding="utf-8")
    assert config_path(None) == Path("gateway.toml")


def test_unreadable_or_malformed_files_are_config_errors(tmp_path: Path) -> None:
    """A missing file and a TOML syntax error both raise ConfigError saying where."""
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway]\nusage = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 2"):
        load_config(bad)


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    """Configuration objects cannot be changed after validation."""
    config = parse_config(minimal(), tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.partners[0].port = 2222  # type: ignore[misc]  # the refused assignment is what is tested


# --------------------------------------------------------------------------------------------- validation

RULES: list[tuple[str, object, str]] = [
    ("gateway.usage", "X", "gateway.usage: must be one of: P, T"),
    ("gateway.node_id", "bad id!", "gateway.node_id: must be 1-64"),
    ("gateway.member_hash_key_env", "not a name", "gateway.member_hash_key_env: must be the NAME"),
    ("gateway.database_password_env", "1BAD", "gateway.database_password_env: must be the NAME"),
    ("gateway.database_url", "mysql://u@h/db", "gateway.database_url: must use sqlite:///PATH"),
    ("gateway.database_url", "postgresql://u@h/db", "gateway.database_url: must use sqlite:///PATH"),
    ("gateway.database_url", "not a url", "gateway.database_url: is not a database URL"),
    ("gateway.database_url", 5, "gateway.database_url: must be a string"),
    ("identity.isa_id", DELETE, "identity.isa_id: is required"),
    ("identity.isa_id", "X" * 16, "identity.isa_id: must be 1-15 characters"),
    ("identity.isa_id", "BAD*ID", "identity.isa_id: must be 1-15 characters"),
    ("identity.isa_qualifier", "99", "identity.isa_qualifier: must be one of: 01, 14"),
    ("identity.gs_id", "A", "identity.gs_id: must be 2-15 characters"),
    ("identity.trace_assigner", "9SHORT", "identity.trace_assigner: must be exactly 10"),
    ("identity.trace_assigner", "5123456789", "identity.trace_assigner: must be exactly 10"),
    ("identity.trace_assigner", DELETE, "identity.trace_assigner: is required"),
    ("folders.outbox", "inbox", "folders.outbox: must differ from folders.inbox"),
    ("folders.archive", "inbox/archive", "folders.archive: must not be inside folders.inbox"),
    ("folders.inbox", 5, "folders.inbox: must be a string"),
    ("inbox.stable_seconds", -1, "inbox.stable_seconds: must be 0 or more"),
    ("inbox.require_done_marker", "yes", "inbox.require_done_marker: must be true or false"),
    ("inbox.max_file_bytes", 0, "inbox.max_file_bytes: must be 1 or more"),
    ("inbox.max_file_bytes", 1.5, "inbox.max_file_bytes: must be an integer"),
    ("inbox.duplicate_window_hours", "x", "inbox.duplicate_window_hours: must be a number"),
    ("inbox.x12_mode", "copy", "inbox.x12_mode: must be one of: reenvelope"),
    ("outbox.csv_summary", 1, "outbox.csv_summary: must be true or false"),
    ("timeouts.ack_overdue_minutes", 0, "timeouts.ack_overdue_minutes: must be greater than 0"),
    ("timeouts.response_overdue_minutes_270", True, "response_overdue_minutes_270: must be a number"),
    ("timeouts.response_overdue_minutes_278", -5, "timeouts.response_overdue_minutes_278: must be greater"),
    ("mappings.override_dir", 3, "mappings.override_dir: must be a string"),
    ("partners.0.name", "Acme Corp", "partners[0].name: must be 1-63 of a-z"),
    ("partners.0.name", "-acme", "partners[0].name: must be 1-63 of a-z"),
    ("partners.0.name", DELETE, "partners[0].name: is required"),
    ("partners.0.host", "bad host", "partners[0].host: must be a host name"),
    ("partners.0.host", DELETE, "partners[0].host: is required"),
    ("partners.0.port", 0, "partners[0].port: must be between 1 and 65535"),
    ("partners.0.port", 70000, "partners[0].port: must be between 1 and 65535"),
    ("partners.0.port", "22", "partners[0].port: must be an integer"),
    ("partners.0.username", DELETE, "partners[0].username: is required"),
    ("partners.0.username", "a b", "partners[0].username: must be non-empty"),
    ("partners.0.password_env", "ACME_PW", "partners[0].key_file: give key_file or password_env, not both"),
    ("partners.0.key_file", DELETE, "partners[0].key_file: give key_file or password_env"),
    ("partners.0.key_passphrase_env", "1X", "partners[0].key_passphrase_env: must be the NAME"),
    ("partners.0.host_keys", ["ssh-ed25519 not-base64!"], "partners[0].host_keys[0]: public key line of"),
    ("partners.0.host_keys", ["garbage"], "partners[0].host_keys[0]: public key line must look like"),
    ("partners.0.host_keys", HOST_KEY, "partners[0].host_keys: must be a list of strings"),
    (
        "partners.0.host_keys",
        DELETE,
        "partners[0].host_keys: give host_keys or known_hosts_file (host keys are pinned; unknown keys are "
        "never accepted)",
    ),
    ("partners.0.upload_dir", DELETE, "partners[0].upload_dir: is required"),
    ("partners.0.download_dir", "", "partners[0].download_dir: must be a non-empty remote folder"),
    ("partners.0.after_download", "archive", "partners[0].after_download: must be one of: delete, move"),
    ("partners.0.after_download", "move", 'partners[0].archive_dir: is required when after_download = "move'),
    ("partners.0.archive_dir", "/done", 'partners[0].archive_dir: only applies when after_download = "move"'),
    ("partners.0.file_name_pattern", "{partner}-{kind}.x12", "must contain {control}"),
    ("partners.0.file_name_pattern", "{payer}-{control}.x12", "unknown placeholder {payer}; use only"),
    ("partners.0.file_name_pattern", "{control:>10}.x12", "{control} must not have a format spec"),
    ("partners.0.file_name_pattern", "../{control}.x12", "does not give a safe file name"),
    ("partners.0.file_name_pattern", "{control} file.x12", "does not give a safe file name"),
    ("partners.0.file_name_pattern", "{control}" + "x" * 250, "does not give a safe file name"),
    ("partners.0.file_name_pattern", "{control.x12", "partners[0].file_name_pattern: has unbalanced"),
    ("partners.0.poll_seconds", 0, "partners[0].poll_seconds: must be greater than 0"),
    ("partners.0.timeout_seconds", -1, "partners[0].timeout_seconds: must be greater than 0"),
    ("partners.0.retry_attempts", 0, "partners[0].retry_attempts: must be between 1 and 100"),
    ("partners.0.pause_after_failures", 0, "partners[0].pause_after_failures: must be 1 or more"),
    ("partners.0.pause_minutes", -1, "partners[0].pause_minutes: must be 0 or more"),
    ("partners.0.max_transactions_per_file", 0, "partners[0].max_transactions_per_file: must be between"),
    ("partners.0.max_transactions_per_file", 20000, "partners[0].max_transactions_per_file: must be between"),
    ("partners.0.send_acks", "no", "partners[0].send_acks: must be true or false"),
    ("partners.0.isa_qualifier", "Z", "partners[0].isa_qualifier: must be one of"),
    ("partners.0.isa_id", DELETE, "partners[0].isa_id: is required"),
    ("partners.0.isa_id", "OURID", "partners[0].isa_id: must differ from identity.isa_id"),
    ("partners.0.gs_id", "G" * 16, "partners[0].gs_id: must be 2-15 characters"),
    ("partners.0.payers", "ACME01", "partners[0].payers: must be a list of strings"),
    ("partners.0.payers", ["A"], "partners[0].payers[0]: must be 2-80"),
    ("partners.0.payers", ["ACME01", " acme01"], "partners[0].payers[1]: is listed twice"),
    ("routing.default_partner", "nobody", "routing.default_partner: must name one of the [[partners]]"),
    ("partners", {"name": "acme"}, "partners: must be an array of tables, written [[partners]]"),
    ("partners", DELETE, "partners: at least one [[partners]] table is required"),
    ("gateway", 5, "gateway: must be a table"),
    ("gatway", {}, "gatway: unknown key (did you mean gateway?)"),
    ("inbox.stable_second", 1, "inbox.stable_second: unknown key (did you mean stable_seconds?)"),
    ("partners.0.hostkeys", [], "partners[0].hostkeys: unknown key (did you mean host_keys?)"),
    ("partners.0.colour", "red", "partners[0].colour: unknown key"),
    ("partners.0.password", "x", "partners[0].password: unknown key; secrets never go in the configuration"),
]


@pytest.mark.parametrize(("path", "value", "expected"), RULES, ids=[f"{r[0]}={r[1]!r}"[:60] for r in RULES])
def test_each_rule_reports_its_key(tmp_path: Path, path: str, value: object, expected: str) -> None:
    """Each invalid setting is rejected with a message naming the key and the rule."""
    assert expected in problems(changed(path, value), tmp_path)


def test_archive_dir_must_differ_from_download_dir(tmp_path: Path) -> None:
    """Moving downloaded files into the folder they came from would fetch them again forever."""
    data = changed("partners.0.after_download", "move")
    data = changed("partners.0.archive_dir", "/out/", data)
    assert "partners[0].archive_dir: must differ from download_dir" in problems(data, tmp_path)


def test_key_passphrase_needs_a_key_file(tmp_path: Path) -> None:
    """A passphrase variable next to password authentication is a mistake, reported as such."""
    data = changed("partners.0.key_file", DELETE)
    data = changed("partners.0.password_env", "ACME_PW", data)
    data = changed("partners.0.key_passphrase_env", "ACME_PASS", data)
    assert "partners[0].key_passphrase_env: only applies together with key_file" in problems(data, tmp_path)


def test_known_hosts_file_alone_satisfies_host_key_pinning(tmp_path: Path) -> None:
    """host_keys or known_hosts_file: either one pins the server."""
    data = changed("partners.0.host_keys", DELETE)
    data = changed("partners.0.known_hosts_file", "known_hosts", data)
    assert parse_config(data, tmp_path).partners[0].known_hosts_file == tmp_path.resolve() / "known_hosts"


def test_duplicate_partner_names_and_payers_across_partners(tmp_path: Path) -> None:
    """Partner names are unique and a payer is routed to one partner only."""
    data = minimal()
    data["partners"].append(second_partner(name="acme", payers=["blue01", "acme01"]))
    message = problems(data, tmp_path)
    assert "partners[1].name: duplicates partners[0].name" in message
    assert "partners[1].payers[1]: is already routed to partners[0] (acme)" in message


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    """One ConfigError lists every problem, each on its own line, so the file is fixed in one pass."""
    data = changed("gateway.usage", "X")
    data = changed("partners.0.port", 0, data)
    data = changed("partners.0.host_keys", DELETE, data)
    data = changed("inbox.stable_secs", 1, data)
    message = problems(data, tmp_path)
    assert "has 4 problems:" in message
    listed = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(listed) == 4
    assert {line.split(":")[0] for line in listed} == {
        "  - gateway.usage",
        "  - partners[0].port",
        "  - partners[0].host_keys",
        "  - inbox.stable_secs",
    }


def test_secrets_pasted_into_the_file_are_never_echoed(tmp_path: Path) -> None:
    """A password put where a variable name belongs (or in a URL) is refused without repeating it."""
    canary = "Hunter2-Canary!"
    data = changed("partners.0.key_file", DELETE)
    data = changed("partners.0.password_env", canary, data)
    data = changed("gateway.database_url", f"postgresql+psycopg://gw:{canary}@db/gw", data)
    message = problems(data, tmp_path)
    assert "partners[0].password_env: must be the NAME of an environment variable" in message
    assert "gateway.database_url: must not contain a password" in message
    assert canary not in message


# --------------------------------------------------------------------------------------------- routing


def routed_to(config: GatewayConfig, payer_id: str) -> str | None:
    """The name of the partner ``payer_id`` routes to (None: no partner)."""
    partner = config.partner_for_payer(payer_id)
    return partner.name if partner is not None else None


def test_partner_for_payer_uses_the_list_then_the_default(tmp_path: Path) -> None:
    """Listed payers go to their partner (case-insensitively); others to routing.default_partner."""
    data = minimal()
    data["partners"].append(second_partner())
    config = parse_config(data, tmp_path)
    assert routed_to(config, " acme01 ") == "acme"
    assert routed_to(config, "BLUE01") == "blue"
    assert config.partner_for_payer("OTHER") is None
    data["routing"] = {"default_partner": "blue"}
    assert routed_to(parse_config(data, tmp_path), "OTHER") == "blue"


def test_partner_by_name(tmp_path: Path) -> None:
    """partner(name) finds a partner; an unknown name is a ConfigError listing the configured ones."""
    config = parse_config(minimal(), tmp_path)
    assert config.partner("acme").host == "sftp.example.com"
    with pytest.raises(ConfigError, match=r"no partner named 'nope' \(configured: acme\)"):
        config.partner("nope")


def test_file_name_renders_the_pattern(tmp_path: Path) -> None:
    """Upload names fill every placeholder; control numbers are zero-padded to 9 digits."""
    data = changed("partners.0.file_name_pattern", "{partner}_{kind}_{date}T{time}_{control}.x12")
    partner = parse_config(data, tmp_path).partners[0]
    when = datetime(2025, 1, 31, 23, 59, 58)  # noqa: DTZ001 - a fixed value, not the clock
    assert partner.file_name("278", 42, when) == "acme_278_20250131T235958_000000042.x12"
    with pytest.raises(ConfigError, match="unusable name"):
        partner.file_name("../278", 42, when)


# --------------------------------------------------------------------------------------------- secrets


def password_config(tmp_path: Path, env_name: str = "ACME_SFTP_PW") -> GatewayConfig:
    data = changed("partners.0.key_file", DELETE)
    data = changed("partners.0.password_env", env_name, data)
    return parse_config(data, tmp_path)


def test_password_is_read_from_the_environment_at_use_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """password() reads the named variable when called, so the config itself never holds it."""
    monkeypatch.delenv("ACME_SFTP_PW", raising=False)
    config = password_config(tmp_path)
    monkeypatch.setenv("ACME_SFTP_PW", "Pw-Canary-1")
    partner = config.partners[0]
    assert partner.password() == "Pw-Canary-1"
    endpoint = partner.sftp_endpoint()
    assert (endpoint.password, endpoint.host_keys, endpoint.partner) == ("Pw-Canary-1", (HOST_KEY,), "acme")
    assert "Pw-Canary-1" not in repr(config)
    assert "Pw-Canary-1" not in repr(endpoint)


def test_missing_password_variable_is_named_but_no_value_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unset or empty password variable raises ConfigError naming the variable only."""
    monkeypatch.delenv("ACME_SFTP_PW", raising=False)
    config = password_config(tmp_path)
    with pytest.raises(ConfigError, match="partner acme: password_env: environment variable ACME_SFTP_PW is"):
        config.partners[0].password()
    assert config.missing_environment() == ("ACME_SFTP_PW",)
    monkeypatch.setenv("ACME_SFTP_PW", "")
    with pytest.raises(ConfigError, match="ACME_SFTP_PW is not set or is empty"):
        config.partners[0].sftp_endpoint()


def test_password_read_from_environment_is_redacted_from_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once read, the password is registered with the log redactor (even under a non-secret-looking name)."""
    monkeypatch.setenv("ACME_SFTP_PW", "Zq9-Canary-Secret")
    password = password_config(tmp_path).partners[0].password()
    out = io.StringIO()
    logsetup.configure_logging(json=True, stream=out)
    try:
        logsetup.get_logger("test").warning(f"login failed with {password}", detail={"attempt": password})
    finally:
        logsetup.reset_logging()
    assert "Zq9-Canary-Secret" not in out.getvalue()
    assert "[redacted]" in out.getvalue()


def test_database_password_comes_from_its_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """database_url() adds the password from database_password_env; the stored URL never has it."""
    data = changed("gateway.database_url", "postgresql+psycopg://gw@db.example.com/gw")
    data = changed("gateway.database_password_env", "GW_DB_PASSWORD", data)
    config = parse_config(data, tmp_path)
    monkeypatch.setenv("GW_DB_PASSWORD", "db-canary")
    assert config.database_url() == "postgresql+psycopg://gw:db-canary@db.example.com/gw"
    assert "db-canary" not in repr(config)
    monkeypatch.delenv("GW_DB_PASSWORD")
    with pytest.raises(ConfigError, match=r"gateway\.database_password_env: environment variable GW_DB_"):
        config.database_url()


def test_member_hash_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The member-hash key comes from the named variable, which must be long enough to be a key."""
    config = parse_config(changed("gateway.member_hash_key_env", "GW_HASH_KEY"), tmp_path)
    monkeypatch.setenv("GW_HASH_KEY", "k" * 32)
    assert config.member_hash_key() == b"k" * 32
    monkeypatch.setenv("GW_HASH_KEY", "short")
    with pytest.raises(ConfigError, match="GW_HASH_KEY is shorter than 16"):
        config.member_hash_key()
    assert not (config.folders.state / MEMBER_HASH_KEY_FILE).exists()


def test_member_hash_key_file_is_created_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the variable, a random key file (0600) in folders.state is created once (by run only)
    and reused."""
    monkeypatch.delenv("X12GW_MEMBER_HASH_KEY", raising=False)
    config = parse_config(minimal(), tmp_path)
    with pytest.raises(ConfigError, match="only `x12gw run` creates a new key"):
        config.member_hash_key()  # an operator command never makes a key
    key = config.member_hash_key(create=True)
    path = config.folders.state / MEMBER_HASH_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64
    assert config.member_hash_key() == key
    assert [p.name for p in config.folders.state.iterdir()] == [MEMBER_HASH_KEY_FILE]
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="accessible by group or others"):
        config.member_hash_key()


# --------------------------------------------------------------------------------------------- preflight


def test_preflight_passes_with_usable_key_and_known_hosts(tmp_path: Path) -> None:
    """With the key file readable only by its owner and the host in known_hosts, preflight is silent."""
    ed25519_private_key_file(tmp_path / "keys" / "acme")
    (tmp_path / "known_hosts").write_text(f"[sftp.example.com]:2222 {HOST_KEY}\n", encoding="utf-8")
    data = changed("partners.0.host_keys", DELETE)
    data = changed("partners.0.known_hosts_file", "known_hosts", data)
    data = changed("partners.0.port", 2222, data)
    parse_config(data, tmp_path).preflight()


def test_preflight_reports_every_runtime_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unsafe key files, known_hosts without the host, unset variables and a missing override folder."""
    monkeypatch.delenv("BLUE_PW", raising=False)
    ed25519_private_key_file(tmp_path / "keys" / "acme", mode=0o644)
    (tmp_path / "known_hosts").write_text(f"other.example.com {HOST_KEY}\n", encoding="utf-8")
    data = changed("partners.0.known_hosts_file", "known_hosts")
    blue = second_partner()
    del blue["key_file"]
    blue["password_env"] = "BLUE_PW"  # noqa: S105 - the name of a variable, not a password
    data["partners"].append(blue)
    data["mappings"] = {"override_dir": "no-such-folder"}
    config = parse_config(data, tmp_path)
    with pytest.raises(ConfigError) as info:
        config.preflight()
    message = str(info.value)
    assert "has 4 problems" in message
    assert "partners[0].key_file: private key file" in message
    assert "accessible by group or others" in message
    assert "partners[0].known_hosts_file:" in message
    assert "has no key for sftp.example.com" in message
    assert "partners[1].password_env: environment variable BLUE_PW is not set" in message
    assert "mappings.override_dir:" in message


def test_folders_are_created_owner_only(tmp_path: Path) -> None:
    """ensure() creates every configured folder with mode 0700 (they hold PHI)."""
    config = parse_config(minimal(), tmp_path)
    config.folders.ensure()
    for _, path in config.folders.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o700


# --------------------------------------------------------------------------------------------- example, demo


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_KEY_PASSPHRASE", "example-passphrase")
    monkeypatch.setenv("BLUE_SFTP_PASSWORD", "example-password")
    monkeypatch.setenv("NORTH_CORE_PASSWORD", "example-core-password")


def test_example_config_parses(example_env: None) -> None:
    """config/gateway.example.toml is valid, with both authentication styles and move-after-download."""
    config = load_config(EXAMPLE)
    assert [p.name for p in config.partners] == ["acme-clearinghouse", "blue-direct", "north-payer"]
    assert config.missing_environment() == ()
    assert config.partners[1].password() == "example-password"
    assert routed_to(config, "BLUEPLAN") == "acme-clearinghouse"
    assert routed_to(config, "unlisted") == "acme-clearinghouse"
    assert config.folders.state == EXAMPLE.parent / "state"


def test_example_config_shows_every_key() -> None:
    """Every key the parser accepts appears in the example file, so the example documents them all."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert set(data) == SCHEMA[""]
    for section, keys in SCHEMA.items():
        if not section:
            continue
        if "." in section:  # a sub-table of an array of tables, e.g. partners.core
            outer, inner = section.split(".")
            tables = [t[inner] for t in data[outer] if inner in t]
        else:
            tables = data[section] if isinstance(data[section], list) else [data[section]]
        shown = set().union(*(set(t) for t in tables))
        assert shown == keys, section


def test_demo_config_points_at_the_local_simulator(tmp_path: Path) -> None:
    """The demo helper yields a valid config: one partner on 127.0.0.1, default route to it."""
    key_file = tmp_path / "keys" / "demo_ed25519"
    config = default_demo_config(tmp_path, 2299, HOST_KEY, key_file)
    partner = config.partner("sim-clearinghouse")
    assert (partner.host, partner.port, partner.host_keys) == ("127.0.0.1", 2299, (HOST_KEY,))
    assert partner.key_file == key_file.resolve()
    assert config.partner_for_payer("ANYPAYER") is partner
    assert config.folders.inbox == tmp_path.resolve() / "inbox"
    assert 'key_file = "keys/demo_ed25519"' in demo_config_text(tmp_path, 2299, HOST_KEY, key_file)


def test_partner_leniency_lists_known_quirks_and_defaults_to_strict(tmp_path: Path) -> None:
    """`leniency` accepts only known envelope quirks; a partner without it is strict (empty)."""
    assert parse_config(minimal(), tmp_path).partners[0].leniency == ()
    config = parse_config(changed("partners.0.leniency", ["gs01", "isa12", "gs01"]), tmp_path)
    assert config.partners[0].leniency == ("gs01", "isa12")
    message = problems(changed("partners.0.leniency", ["gs01", "anything"]), tmp_path)
    assert "partners[0].leniency[1]: must be one of: gs01, gs08, isa12, version" in message
