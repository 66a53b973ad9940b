"""Helpers for CAQH CORE tests: a real HTTPS simulator with generated certificates and gateway contexts
whose partner is a ``transport = "core"`` partner pointing at it (the fixture is in ``core_fixtures``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.runtime.config import load_config
from gateway.runtime.context import Context
from gateway.runtime.runner import open_context
from gateway.stages import intake
from payersim.certs import Pki
from payersim.core_server import CoreFaults, CoreServer
from payersim.scenario import Scenario

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

    def server(
        self,
        *,
        auth: str = "basic",
        scenario: Scenario | None = None,
        faults: dict[str, Any] | None = None,
        **fault: Any,
    ) -> CoreServer:
        server = CoreServer(
            scenario or Scenario(),
            pki=self.pki,
            auth=auth,  # type: ignore[arg-type]
            username="x12gw",
            password=PASSWORD,
            faults=CoreFaults(**(faults or {}), **fault),
        ).start()
        self.servers.append(server)
        return server

    def context(self, server: CoreServer, *, database_url: str | None = None, **core: Any) -> Context:
        base = self.tmp / f"gw{len(self.contexts)}"
        settings: dict[str, Any] = {
            "url": server.url,
            "envelope": "mime",
            "sender_id": "X12GATEWAY",
            "receiver_id": "SIMPAYER",
            "ca_file": str(self.pki.ca_cert),
            "timeout_seconds": 2.0,
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
        base.mkdir(parents=True, exist_ok=True)
        lines = core_config_lines(settings, database_url=database_url)
        path = base / "gateway.toml"
        path.write_text("\n".join(lines) + "\n")
        ctx = open_context(load_config(path))
        self.contexts.append(ctx)
        return ctx


def core_config_lines(
    core: dict[str, Any], *, database_url: str | None = None, partner: tuple[str, ...] = ()
) -> list[str]:
    """A gateway configuration with one CORE partner ``acme`` (payer ACME01, the default route):
    ``core`` is its ``[partners.core]`` table, ``partner`` more lines of its ``[[partners]]`` table."""
    return [
        *(["[gateway]", f"database_url = {json.dumps(database_url)}"] if database_url else []),
        "[identity]",
        'isa_id = "X12GATEWAY"',
        'trace_assigner = "9X12GATEWY"',
        "[inbox]",
        "stable_seconds = 0",
        "[routing]",
        'default_partner = "acme"',
        "[[partners]]",
        'name = "acme"',
        'transport = "core"',
        'isa_id = "ACMEID"',
        'payers = ["ACME01"]',
        *partner,
        "[partners.core]",
        *(f"{k} = {json.dumps(v)}" for k, v in core.items()),
    ]


def mtls_core(url: str, pki: Any, **more: Any) -> dict[str, Any]:
    """The ``[partners.core]`` table of a mutual-TLS partner at ``url`` with the simulator's ``pki``."""
    return {
        "url": url,
        "sender_id": "X12GATEWAY",
        "receiver_id": "SIMPAYER",
        "auth": "mtls",
        "ca_file": str(pki.ca_cert),
        "client_cert": str(pki.client_cert),
        "client_key": str(pki.client_key),
        **more,
    }


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
