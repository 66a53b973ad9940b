"""Fixtures for CAQH CORE tests: a real HTTPS simulator with generated certificates and a gateway
context whose partner is a ``transport = "core"`` partner pointing at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.runner import open_context
from gateway.stages import intake
from payersim.certs import Pki, make_pki
from payersim.core_server import CoreFaults, CoreServer
from payersim.scenario import Scenario
from tests.test_precert import KEY

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = ROOT / "sample_edi" / "requests"
PASSWORD = "core-test-password-7f3a"  # noqa: S105 - a test credential for the simulator
PASSWORD_ENV = "X12GW_TEST_CORE_PASSWORD"  # noqa: S105 - the variable's name


@dataclass
class CoreRig:
    """A simulator and a way to make gateway contexts for it."""

    tmp: Path
    pki: Pki
    servers: list[CoreServer]
    contexts: list[Context]

    def server(self, *, auth: str = "basic", scenario: Scenario | None = None, **faults: Any) -> CoreServer:
        server = CoreServer(
            scenario or Scenario(),
            pki=self.pki,
            auth=auth,  # type: ignore[arg-type]
            username="x12gw",
            password=PASSWORD,
            faults=CoreFaults(**faults),
        ).start()
        self.servers.append(server)
        return server

    def context(self, server: CoreServer, **core: Any) -> Context:
        base = self.tmp / f"gw{len(self.contexts)}"
        settings: dict[str, Any] = {
            "url": server.url,
            "envelope": "mime",
            "sender_id": "X12GATEWAY",
            "receiver_id": "SIMPAYER",
            "ca_file": str(self.pki.ca_cert),
            "timeout_seconds": 10.0,
            "retry_seconds": 0.2,
        }
        if server.auth == "basic":
            settings |= {"auth": "basic", "username": "x12gw", "password_env": PASSWORD_ENV}
        else:
            settings |= {
                "auth": "mtls",
                "client_cert": str(self.pki.client_cert),
                "client_key": str(self.pki.client_key),
            }
        settings.update(core)
        data = {
            "identity": {"isa_id": "X12GATEWAY", "trace_assigner": "9X12GATEWY"},
            "inbox": {"stable_seconds": 0},
            "partners": [
                {
                    "name": "acme",
                    "transport": "core",
                    "isa_id": "ACMEID",
                    "payers": ["ACME01"],
                    "core": settings,
                }
            ],
            "routing": {"default_partner": "acme"},
        }
        ctx = open_context(parse_config(data, base))
        self.contexts.append(ctx)
        return ctx


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CoreRig]:
    """Certificates (made once per test), simulators started on demand, contexts closed at the end."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    rig = CoreRig(tmp_path, make_pki(tmp_path / "pki"), [], [])
    yield rig
    for server in rig.servers:
        server.stop()
    for ctx in rig.contexts:
        ctx.store.close()


def drop_request(ctx: Context, sample: str, reference: str, **changes: Any) -> int:
    """Put one sample JSON request in the inbox, run intake, and return the new request's store id."""
    doc = json.loads((REQUESTS / f"{sample}.json").read_text())
    doc.update(changes)
    doc["trace_number"] = reference
    (ctx.config.folders.inbox / f"{reference}.json").write_text(json.dumps(doc))
    intake.intake(ctx)
    with ctx.store.read() as tx:
        rows = [r for r in tx.requests.query() if r.payload.get("client_reference") == reference]
    assert len(rows) == 1, rows
    return rows[0].id


def request_state(ctx: Context, request_id: int) -> str:
    with ctx.store.read() as tx:
        return tx.requests.get(request_id).state
