"""``transport = "core"`` partners in the configuration: defaults, what is required, what is refused,
and the password read from a file (as a secret) or the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.runtime.config import parse_config
from gateway.runtime.logsetup import redact_text


def _data(core: dict[str, Any] | None, **partner: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "north", "transport": "core", "isa_id": "NORTHPAYER", **partner}
    if core is not None:
        entry["core"] = core
    return {"identity": {"isa_id": "X12GATEWAY", "trace_assigner": "9X12GATEWY"}, "partners": [entry]}


BASIC = {
    "url": "https://core.example/rt",
    "ca_file": "ca.pem",
    "sender_id": "X12GATEWAY",
    "receiver_id": "NORTH",
    "username": "x12gw",
    "password_env": "NORTH_CORE_PASSWORD",
}


def _problems(data: dict[str, Any], tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, tmp_path)
    return str(info.value)


def test_a_core_partner_gets_real_time_defaults(tmp_path: Path) -> None:
    """MIME, real time, basic auth, 60 s timeout, 90 s retry; one request per interchange; no 999s
    sent back; paths resolved against the file's folder."""
    partner = parse_config(_data(BASIC), tmp_path).partners[0]
    core = partner.core
    assert core is not None
    assert partner.transport == "core"
    assert (core.envelope, core.mode, core.auth) == ("mime", "realtime", "basic")
    assert (core.timeout_seconds, core.retry_seconds) == (60.0, 90.0)
    assert core.ca_file == tmp_path.resolve() / "ca.pem"
    assert partner.max_transactions_per_file == 1
    assert partner.send_acks is False


def test_batch_mode_keeps_the_configured_interchange_size(tmp_path: Path) -> None:
    """mode = "batch" fills interchanges like SFTP does (max_transactions_per_file)."""
    partner = parse_config(
        _data({**BASIC, "mode": "batch"}, max_transactions_per_file=50), tmp_path
    ).partners[0]
    assert partner.max_transactions_per_file == 50


@pytest.mark.parametrize(
    ("core", "partner", "problem"),
    [
        (None, {}, "partners[0].core: a [partners.core] table is required"),
        ({**BASIC, "url": "http://core.example/rt"}, {}, "partners[0].core.url: must be an https:// URL"),
        ({k: v for k, v in BASIC.items() if k != "ca_file"}, {}, "partners[0].core.ca_file: is required"),
        ({k: v for k, v in BASIC.items() if k != "password_env"}, {}, "partners[0].core.password_env: give"),
        ({**BASIC, "auth": "mtls"}, {}, "partners[0].core.client_cert: is required"),
        ({**BASIC, "envelope": "json"}, {}, "partners[0].core.envelope: must be one of: mime, soap"),
        (BASIC, {"host": "sftp.example"}, "partners[0].host: applies to SFTP partners only"),
        ({**BASIC, "password": "x"}, {}, "secrets never go in the configuration file"),
    ],
)
def test_what_a_core_partner_refuses(
    tmp_path: Path, core: dict[str, Any] | None, partner: dict[str, Any], problem: str
) -> None:
    """Each mistake is reported under its own key."""
    assert problem in _problems(_data(core, **partner), tmp_path)


def test_the_password_file_is_read_on_use_and_redacted_from_logs(tmp_path: Path) -> None:
    """password_file: read when needed, registered as a secret so no log line can show it."""
    (tmp_path / "pw").write_text("file-password-123\n")
    core = {k: v for k, v in BASIC.items() if k != "password_env"} | {"password_file": "pw"}
    partner = parse_config(_data(core), tmp_path).partners[0]
    assert partner.core is not None
    assert partner.core.password(partner.name) == "file-password-123"
    assert "file-password-123" not in redact_text("login with file-password-123")
