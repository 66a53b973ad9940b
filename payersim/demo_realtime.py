"""``x12gw demo --realtime``: the demo's requests through the HTTP API and CAQH CORE real time.

In a workspace it generates a CA with server and client certificates, starts two simulator CORE
endpoints (HTTP MIME multipart and SOAP 1.2, both with mutual TLS, answering from the demo scenario),
configures one ``transport = "core"`` partner per envelope style, serves ``x12gw serve``'s app on a
loopback port and POSTs every sample request to ``/api/v1`` with an API key: the eligibility requests
go to the MIME partner (payer ``ACME01``), the authorization requests to the SOAP partner (the same
plan's utilization-management payer id, ``ACME01UM``). Each call waits for its real-time answer; the
table printed at the end is ``x12gw demo``'s.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import uvicorn

from gateway.lifecycle import RequestState
from gateway.runtime.config import GatewayConfig, load_config
from gateway.runtime.runner import Gateway, open_context
from gateway.runtime.storeopen import open_store
from gateway.web import apiauth
from gateway.web.app import create_app
from payersim.certs import Pki, make_pki
from payersim.core_server import CoreServer
from payersim.demo import SAMPLES, print_table, table
from payersim.scenario import Scenario

UM_PAYER = "ACME01UM"
STYLES = {"270": "mime", "278": "soap"}
OPEN = frozenset({RequestState.NEW, RequestState.QUEUED, RequestState.SENT, RequestState.ACKNOWLEDGED})


def config_text(base: Path, pki: Pki, urls: dict[str, str]) -> str:
    """The gateway's configuration: one CORE real-time partner per envelope style, mutual TLS."""

    def partner(name: str, style: str, payer: str) -> str:
        return f"""
[[partners]]
name = "{name}"
transport = "core"
isa_id = "SIMPAYER"
payers = ["{payer}"]
[partners.core]
url = {json.dumps(urls[style])}
envelope = "{style}"
sender_id = "X12GATEWAY"
receiver_id = "SIMPAYER"
auth = "mtls"
client_cert = {json.dumps(str(pki.client_cert))}
client_key = {json.dumps(str(pki.client_key))}
ca_file = {json.dumps(str(pki.ca_cert))}
timeout_seconds = 30
retry_seconds = 5
"""

    return (
        f"""# Written by `x12gw demo --realtime`: two CAQH CORE partners on the local simulator.
[gateway]
usage = "T"
database_url = {json.dumps(f"sqlite:///{base / 'state' / 'gateway.db'}")}

[identity]
isa_qualifier = "ZZ"
isa_id = "X12GATEWAY"
gs_id = "X12GATEWAY"
trace_assigner = "9X12GATEWY"
"""
        + partner("core-mime", "mime", "ACME01")
        + partner("core-soap", "soap", UM_PAYER)
    )


@contextmanager
def api_server(config: GatewayConfig) -> Iterator[int]:
    """``x12gw serve``'s app on a free loopback port (uvicorn in a thread); yields the port."""
    store = open_store(config, role="serve")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    settings = uvicorn.Config(
        create_app(config, store), log_config=None, access_log=False, lifespan="off", server_header=False
    )
    server = uvicorn.Server(settings)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        store.close()


def post(port: int, key: str, path: str, body: dict[str, Any], idempotency_key: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST",
            path,
            body=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                "Idempotency-Key": idempotency_key,
            },
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def api_requests() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(name, endpoint, body) of each sample request; authorizations go to the UM payer id."""
    for path in sorted((SAMPLES / "requests").glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        kind = doc.pop("type")
        if kind == "278":
            doc["payer"] = {**doc["payer"], "id": UM_PAYER}
        yield path.stem, "/api/v1/eligibility" if kind == "270" else "/api/v1/authorizations", doc


def core_workspace(base: Path, more_config: str = "") -> tuple[Path, dict[str, CoreServer]]:
    """In ``base``: a PKI, the simulator's two CORE endpoints (MIME and SOAP, mutual TLS, the demo
    scenario, started) and the configuration naming them (plus ``more_config``); its path and the
    servers (the caller stops them)."""
    base.mkdir(parents=True, exist_ok=True)
    pki = make_pki(base / "pki")
    scenario = Scenario.load(SAMPLES / "scenarios" / "demo.toml")
    servers = {style: CoreServer(scenario, pki=pki, auth="mtls").start() for style in ("mime", "soap")}
    config_path = base / "gateway.toml"
    text = config_text(base, pki, {k: s.url for k, s in servers.items()}) + more_config
    config_path.write_text(text, encoding="utf-8")
    return config_path, servers


def run_realtime_demo(*, keep: Path | None = None, timeout: float = 60.0, out: TextIO = sys.stdout) -> int:
    base = keep or Path(tempfile.mkdtemp(prefix="x12gw-demo-rt-"))
    config_path, servers = core_workspace(base)
    ctx = open_context(load_config(config_path), allow_upgrade=True)
    try:
        _, key = apiauth.add_client(ctx.store, f"demo-{int(time.time())}", apiauth.SCOPES)
        assert key is not None  # noqa: S101 - a key client always gets a key
        out.write(
            f"workspace: {base}\nCORE simulator: MIME {servers['mime'].url}, SOAP {servers['soap'].url}\n"
        )
        out.write("eligibility via HTTP MIME multipart, authorizations via SOAP 1.2 (payer id ACME01UM)\n")
        ok = _post_all(ctx.config, key, out)
        done = _settle(Gateway(ctx), timeout)
        out.write("\n")
        print_table(table(ctx), out)
        out.write(f"\nresult files: {ctx.config.folders.outbox}\n")
        if not (ok and done):
            out.write("demo: not every request was answered in real time\n")
        return 0 if ok and done else 1
    finally:
        ctx.store.close()
        for server in servers.values():
            server.stop()
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _post_all(config: GatewayConfig, key: str, out: TextIO) -> bool:
    ok = True
    with api_server(config) as port:
        for name, path, body in api_requests():
            started = time.perf_counter()
            status, reply = post(port, key, path, body, name)
            ms = (time.perf_counter() - started) * 1000
            shown = reply.get("status") or reply.get("title")
            out.write(f"  POST {path:<24} {name:<28} {status} {shown} ({ms:.0f} ms)\n")
            ok = ok and status == 200
    return ok


def _settle(gateway: Gateway, timeout: float) -> bool:
    """Run cycles until no request waits to be sent or answered (a pend is an answer in real time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with gateway.ctx.store.read() as tx:
            waiting = [r for r in tx.requests.query(limit=10_000) if r.state in OPEN]
        if not waiting:
            return True
        gateway.cycle()
        time.sleep(0.5)
    return False


settle = _settle  # x12gw demo --fhir waits the same way
