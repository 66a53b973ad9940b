"""``exchange.endpoint`` makes a partner's CORE endpoint once per partner configuration instead of
per call: the same endpoint as made fresh, and a password (environment or file) read again once
``ENDPOINT_RECHECK_SECONDS`` have passed, so a changed password is used from then on."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gateway.realtime import exchange
from gateway.runtime.config import PartnerConfig, load_config
from tests.core_support import core_config_lines, mtls_core

PKI = Path("/nonexistent/pki")
FIRST, SECOND = "first-password-1", "second-password-2"


def _partner(tmp_path: Path, core: Mapping[str, Any]) -> PartnerConfig:
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(core_config_lines(dict(core))) + "\n")
    return load_config(path).partner("acme")


class _Pki:
    ca_cert = PKI / "ca.pem"
    client_cert = PKI / "client.pem"
    client_key = PKI / "client.key"


def test_an_mtls_endpoint_is_made_once_and_is_what_making_it_gives(tmp_path: Path) -> None:
    """Mutual TLS: the same endpoint object call after call, equal to one made fresh."""
    partner = _partner(tmp_path, mtls_core("https://payer.example/core", _Pki()))
    first = exchange.endpoint(partner)
    assert exchange.endpoint(partner) is first
    assert first == exchange._endpoint(partner)


def test_a_changed_password_is_used_once_the_recheck_time_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Basic auth: the password read when the endpoint was made, then, past the recheck time, the
    new one from the environment."""
    monkeypatch.setenv("X12GW_TEST_ENDPOINT_PASSWORD", FIRST)
    monkeypatch.setattr(exchange, "ENDPOINT_RECHECK_SECONDS", 0.2)
    core = {
        "url": "https://payer.example/core",
        "sender_id": "X12GATEWAY",
        "receiver_id": "SIMPAYER",
        "auth": "basic",
        "username": "x12gw",
        "password_env": "X12GW_TEST_ENDPOINT_PASSWORD",
        "ca_file": str(PKI / "ca.pem"),
    }
    partner = _partner(tmp_path, core)
    assert exchange.endpoint(partner).password == FIRST
    monkeypatch.setenv("X12GW_TEST_ENDPOINT_PASSWORD", SECOND)
    assert exchange.endpoint(partner).password == FIRST
    time.sleep(0.25)
    made = exchange.endpoint(partner)
    assert made.password == SECOND
    assert made == exchange._endpoint(partner)


def test_each_configuration_has_its_own_endpoint(tmp_path: Path) -> None:
    """Two configurations of the partner (another URL): each gets its own endpoint."""
    one = _partner(tmp_path, mtls_core("https://payer.example/one", _Pki()))
    two = _partner(tmp_path, mtls_core("https://payer.example/two", _Pki()))
    assert exchange.endpoint(one).url.endswith("/one")
    assert exchange.endpoint(two).url.endswith("/two")
