"""The production settings: log level and format from the configuration, and retention periods."""

from __future__ import annotations

import json
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.runtime.config import parse_config
from gateway.runtime.durations import parse_period
from tests.protection_support import cli, write_config

BASE = """
[identity]
isa_id = "X12GATEWAY"
trace_assigner = "9X12GATEWY"

[[partners]]
name = "acme"
host = "sftp.example.com"
username = "gw"
key_file = "keys/acme"
host_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]
upload_dir = "/in"
download_dir = "/out"
isa_id = "ACMEID"
"""


def test_log_and_retention_settings_parse() -> None:
    """log_level, log_format and [retention] periods are read; unset retention keys keep seven years."""
    text = (
        '[gateway]\nlog_level = "DEBUG"\nlog_format = "json"\n[retention]\nrows = "90d"\npayloads = "never"\n'
    )
    config = parse_config(tomllib.loads(text + BASE), "/tmp/x")
    assert (config.gateway.log_level, config.gateway.log_format) == ("DEBUG", "json")
    assert config.retention.rows == timedelta(days=90)
    assert config.retention.payloads is None
    assert config.retention.archive == timedelta(days=7 * 365)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[gateway]\nlog_level = "LOUD"\n', "gateway.log_level"),
        ('[gateway]\nlog_format = "xml"\n', "gateway.log_format"),
        ('[retention]\narchive = "7 years"\n', "retention.archive"),
        ('[retention]\nkept = "7y"\n', "retention"),
    ],
)
def test_bad_production_settings_are_named(text: str, key: str) -> None:
    """A wrong value (or an unknown retention key) is a ConfigError naming the key."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(tomllib.loads(text + BASE), "/tmp/x")


def test_periods() -> None:
    """Periods in years, months, weeks, days and hours; zero and free text are refused."""
    assert parse_period("7y") == timedelta(days=2555)
    assert parse_period("18m") == timedelta(days=540)
    assert parse_period("2w") == timedelta(days=14)
    assert parse_period("36h") == timedelta(hours=36)
    assert parse_period("NEVER") is None
    for bad in ("0d", "7", "y", "seven years", "-1d"):
        with pytest.raises(ConfigError):
            parse_period(bad)


@pytest.mark.parametrize(("fmt", "level"), [("json", "INFO"), ("console", "WARNING")])
def test_run_logs_in_the_configured_format_and_level(
    tmp_path: Path, phi_log_dir: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, level: str
) -> None:
    """`x12gw run --once` writes JSON lines or console lines as configured, at the configured level."""
    monkeypatch.delenv("X12GW_PAYLOAD_KEY", raising=False)
    _, path = write_config(tmp_path)
    text = path.read_text().replace(
        "[gateway]\n", f'[gateway]\nlog_format = "{fmt}"\nlog_level = "{level}"\n', 1
    )
    path.write_text(text)
    done = cli(["run", "--once", "--config", str(path)], phi_log_dir, f"run-{fmt}")
    assert done.returncode == 1, done.stderr[-2000:]  # no SFTP server here: --once says the partner failed
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines
    if fmt == "json":
        events = [json.loads(line) for line in lines]
        assert "gateway started" in [e["event"] for e in events]
    else:
        assert not any(line.startswith("{") for line in lines)
        assert not any("gateway started" in line for line in lines)  # INFO is below WARNING
