"""The HTTP API for billing systems over real HTTP (uvicorn on a loopback port, TLS with generated
certificates for mutual TLS): validation, recording like the inbox, 202 then the result after the run
loop and the simulator answered, idempotency, API keys and scopes, client certificates, OpenAPI."""

from __future__ import annotations

import io
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.cli import main
from gateway.lifecycle import Entity, FileState, RequestState
from gateway.runtime.config import load_config
from gateway.runtime.context import Context
from gateway.runtime.runner import Gateway, open_context
from gateway.store import Store, make_engine, sqlite_url
from gateway.store import schema as s
from gateway.web import apiauth
from gateway.web.api import routes
from gateway.web.app import SECURITY_HEADERS
from gateway.web.openapi import document
from payersim.demo import prepare, run_until_answered
from tests.api_support import ROOT, Api, make_pki, sample, serving
from tests.web_support import free_socket, http_call, serve

SCENARIO = ROOT / "sample_edi" / "scenarios" / "demo.toml"
X12GW = (
    [str(Path(sys.executable).parent / "x12gw")]
    if (Path(sys.executable).parent / "x12gw").exists()
    else [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]
)


pytest_plugins = ["tests.api_fixtures"]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, Context]]:
    """The workspace on SQLite, then on PostgreSQL (a fresh schema on the test server)."""
    # imported here: test_web loads tests.store_fixtures as a plugin, which must not be imported first
    from tests.store_fixtures import postgres_schema, require_postgres  # noqa: PLC0415

    with ExitStack() as stack:
        ws = prepare(tmp_path / "ws", SCENARIO)
        stack.callback(ws.simulator.stop)
        if request.param == "postgresql":
            url = stack.enter_context(postgres_schema(require_postgres()))
            text = ws.config_path.read_text().replace(
                "[gateway]\n", f"[gateway]\ndatabase_url = {json.dumps(url)}\n", 1
            )
            ws.config_path.write_text(text)
        ctx = open_context(load_config(ws.config_path), allow_upgrade=True)
        stack.callback(ctx.store.close)
        yield ws.config_path, ctx


def add_client(ctx: Context, name: str, *scopes: str) -> str:
    _, key = apiauth.add_client(ctx.store, name, scopes or apiauth.SCOPES)
    assert key is not None
    return key


def count(ctx: Context, table: Any) -> int:
    with ctx.store.read() as tx:
        return int(tx.conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_eligibility_is_accepted_recorded_like_an_inbox_file_and_answered_later(
    workspace: tuple[Path, Context],
) -> None:
    """A POST to a batch partner gets 202 and a Location; the call is a file (source api) and a request
    with their state changes; after the run loop and the simulator, the Location has the result."""
    config_path, ctx = workspace
    key = add_client(ctx, "billing")
    with serving(config_path) as port:
        api = Api("127.0.0.1", port)
        status, headers, body = api.call("POST", "/eligibility", sample("270-subscriber"), key=key)
        assert status == 202, body
        tracking = body["tracking_number"]
        assert headers["Location"] == f"/api/v1/requests/{tracking}"
        with ctx.store.read() as tx:
            req = tx.requests.get_by_tracking(tracking)
            assert req is not None
            assert req.state == RequestState.NEW
            assert req.payload["client_reference"] == "EL-0001"
            file_row = tx.files.get(req.source_file_id or 0)
            assert (file_row.partner, file_row.state) == ("api", FileState.ACCEPTED)
            moves = [(c.old_state, c.new_state) for c in tx.audit.history(Entity.FILE, file_row.id)]
        assert moves == [(None, "claiming"), ("claiming", "claimed"), ("claimed", "accepted")]
        assert ctx.payloads.get(file_row.sha256) == json.dumps(sample("270-subscriber")).encode()

        status, _, pending = api.call("GET", f"/requests/{tracking}", key=key)
        assert (status, pending["state"]) == (200, "new")
        assert run_until_answered(Gateway(ctx), 90, expected=1, progress=lambda _m: None)
        status, _, done = api.call("GET", f"/requests/{tracking}", key=key)
        assert status == 200
        assert done["state"] == "answered"
        assert done["status"] == "active"
        outbox = json.loads((ctx.config.folders.outbox / f"{tracking}.json").read_text())
        assert done == outbox
    shown = io.StringIO()
    with redirect_stdout(shown):
        main(["log", "show", tracking, "--config", str(config_path)])
    assert "api call          file" in shown.getvalue()


def test_every_problem_of_a_body_is_reported_at_once_without_values(workspace: tuple[Path, Context]) -> None:
    """A 422 lists each bad field by path and reason, never the values sent; nothing is stored."""
    config_path, ctx = workspace
    key = add_client(ctx, "billing")
    bad = sample("270-subscriber")
    bad["provider"]["npi"] = "1234567890"  # wrong check digit
    bad["subscriber"]["birth_date"] = "CANARYTEST-1"
    bad["subscriber"].pop("first_name")
    bad["service_types"] = "30"
    bad["colour"] = "ZZM999999999"
    with serving(config_path) as port:
        status, headers, body = Api("127.0.0.1", port).call("POST", "/eligibility", bad, key=key)
    assert status == 422
    assert headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in body["errors"]}
    assert fields == {
        "colour",
        "provider.npi",
        "subscriber.first_name",
        "subscriber.birth_date",
        "service_types",
    }
    assert "CANARYTEST" not in json.dumps(body)
    assert "ZZM999999999" not in json.dumps(body)
    assert count(ctx, s.requests) == 0
    assert count(ctx, s.files) == 0


def test_wrong_type_unroutable_payer_and_not_json_are_refused(workspace: tuple[Path, Context]) -> None:
    """A 278 body sent to /eligibility, a payer no partner handles, a body that is not JSON (422/415),
    too large (413), a malformed Idempotency-Key (400): nothing is stored."""
    config_path, ctx = workspace
    text = config_path.read_text().replace('default_partner = "sim-clearinghouse"', "")
    config_path.write_text(
        text.replace('gs_id = "SIMCLEARING"', 'gs_id = "SIMCLEARING"\npayers = ["ACME01"]')
    )
    key = add_client(ctx, "billing")
    unrouted = sample("270-subscriber")
    unrouted["payer"]["id"] = "NOBODY"
    with serving(config_path) as port:
        api = Api("127.0.0.1", port)
        wrong = {**sample("278-outpatient-mri"), "type": "278"}
        assert api.call("POST", "/eligibility", wrong, key=key)[2]["errors"][0]["field"] == "type"
        status, _, body = api.call("POST", "/eligibility", unrouted, key=key)
        assert (status, body["errors"]) == (
            422,
            [{"field": "payer.id", "reason": body["errors"][0]["reason"]}],
        )
        assert api.call("POST", "/eligibility", raw=b"{", key=key)[0] == 422
        too_large = b" " * (ctx.config.api.max_body_bytes + 1)
        assert api.call("POST", "/eligibility", raw=too_large, key=key)[0] == 413
        long_key = {"Idempotency-Key": "k" * 256}
        assert api.call("POST", "/eligibility", sample("270-subscriber"), key=key, headers=long_key)[0] == 400
        assert (
            api.call("POST", "/eligibility", raw=b"x", key=key, headers={"Content-Type": "text/plain"})[0]
            == 415
        )
    assert count(ctx, s.requests) == 0


def test_same_idempotency_key_gives_the_same_response_and_one_request(
    any_workspace: tuple[Path, Context],
) -> None:
    """Retries with one key and body replay the first response (concurrent ones too) and create one
    request; the key with another body is refused; another client's same key is its own."""
    config_path, ctx = any_workspace
    key = add_client(ctx, "billing")
    other = add_client(ctx, "other")
    body = sample("278-outpatient-mri")
    with serving(config_path) as port:
        api = Api("127.0.0.1", port)
        replies: list[tuple[int, Any]] = []

        def post() -> None:
            status, _, got = api.call(
                "POST", "/authorizations", body, key=key, headers={"Idempotency-Key": "k-1"}
            )
            replies.append((status, got))

        threads = [threading.Thread(target=post) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        first = next(got for status, got in replies if status == 202)
        assert all(status in (202, 409) for status, _ in replies)
        status, headers, again = api.call(
            "POST", "/authorizations", body, key=key, headers={"Idempotency-Key": "k-1"}
        )
        assert (status, again, headers["Idempotent-Replayed"]) == (202, first, "true")
        changed = {**body, "days": 3}
        status, _, refused = api.call(
            "POST", "/authorizations", changed, key=key, headers={"Idempotency-Key": "k-1"}
        )
        assert status == 422
        assert "different" in refused["title"]
        status, _, theirs = api.call(
            "POST", "/authorizations", body, key=other, headers={"Idempotency-Key": "k-1"}
        )
        assert status == 202
        assert theirs["tracking_number"] != first["tracking_number"]
        status, _, _ = api.call("GET", f"/authorizations/{first['tracking_number']}", key=other)
        assert status == 404  # a client reads only its own requests
        status, _, auth = api.call("GET", f"/authorizations/{first['tracking_number']}", key=key)
        assert (status, auth["kind"]) == (200, "278")
    assert count(ctx, s.requests) == 2


def test_keys_and_scopes_401_and_403(workspace: tuple[Path, Context]) -> None:
    """No key, an unknown or revoked key: 401 with a Bearer challenge; a key without the scope: 403."""
    config_path, ctx = workspace
    reader = add_client(ctx, "reader", "requests:read")
    writer = add_client(ctx, "writer", "eligibility:write")
    with serving(config_path) as port:
        api = Api("127.0.0.1", port)
        body = sample("270-subscriber")
        status, headers, _ = api.call("POST", "/eligibility", body)
        assert (status, headers["WWW-Authenticate"]) == (401, 'Bearer realm="x12gw"')
        assert api.call("POST", "/eligibility", body, key="x12gw_not-a-key")[0] == 401
        assert api.call("POST", "/eligibility", body, key=reader)[0] == 403
        assert api.call("POST", "/authorizations", sample("278-outpatient-mri"), key=writer)[0] == 403
        assert api.call("POST", "/eligibility", body, key=writer)[0] == 202
        assert apiauth.revoke_client(ctx.store, "writer")
        assert api.call("POST", "/eligibility", body, key=writer)[0] == 401


def test_the_posts_short_way_answers_with_every_header_the_stack_adds(
    workspace: tuple[Path, Context],
) -> None:
    """POST /eligibility and /authorizations (called past the middleware stack) carry the security
    headers and no-store on 202, 401, 403 and 422 as every other route does; a GET there is still the
    router's 405."""
    config_path, ctx = workspace
    key = add_client(ctx, "writer", "eligibility:write")
    with serving(config_path) as port:
        api = Api("127.0.0.1", port)
        answers = [
            api.call("POST", "/eligibility", sample("270-subscriber"), key=key),
            api.call("POST", "/eligibility", sample("270-subscriber")),
            api.call("POST", "/authorizations", sample("278-outpatient-mri"), key=key),
            api.call("POST", "/eligibility", {"type": "270"}, key=key),
            api.call("GET", "/eligibility", key=key),
        ]
        probe = api.call("GET", "/openapi.json")  # the stack's own answer, for comparison
    assert [status for status, _, _ in answers] == [202, 401, 403, 422, 405]
    for status, headers, _ in [*answers, probe]:
        for name, value in SECURITY_HEADERS:
            assert headers.get_all(name.decode()) == [value.decode()], (status, name)
    for status, headers, _ in answers[:4]:
        assert headers["Cache-Control"] == "no-store", status


def test_api_keys_command_prints_the_key_once_and_stores_its_hash(workspace: tuple[Path, Context]) -> None:
    """``api-keys add`` prints a key that works; the store holds only its SHA-256; list and revoke."""
    config_path, ctx = workspace
    out = io.StringIO()
    with redirect_stdout(out):
        assert (
            main(["api-keys", "add", "clinic", "--scope", "requests:read", "--config", str(config_path)]) == 0
        )
    key = out.getvalue().strip().splitlines()[-1]
    assert key.startswith("x12gw_")
    with ctx.store.read() as tx:
        stored = tx.conn.execute(select(s.api_clients)).one()._mapping
    assert stored["key_hash"] == apiauth.key_hash(key)
    assert key not in json.dumps({k: str(v) for k, v in stored.items()})
    assert apiauth.find_client(ctx.store, key=key) is not None
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["api-keys", "list", "--config", str(config_path)]) == 0
        assert main(["api-keys", "revoke", "clinic", "--config", str(config_path)]) == 0
    assert "clinic" in out.getvalue()
    assert key not in out.getvalue()
    assert apiauth.find_client(ctx.store, key=key) is None


def test_client_certificates_authenticate_and_a_wrong_one_is_refused(
    workspace: tuple[Path, Context], tmp_path: Path
) -> None:
    """Over mutual TLS a registered certificate subject is the client (its scopes apply); a certificate
    the CA did not sign is refused in the handshake; a signed but unregistered one gets 401."""
    config_path, ctx = workspace
    pki = make_pki(tmp_path / "pki")
    good = pki.client("good", "billing-a")
    forged = pki.client("forged", "billing-a", signed=False)
    stranger = pki.client("stranger", "billing-z")
    apiauth.add_client(
        ctx.store, "billing-a", ("eligibility:write",), cert_subject="O=x12gw tests,CN=billing-a"
    )
    with serving(config_path, tls=pki.server, client_ca=pki.ca_cert) as port:
        status, _, body = Api("127.0.0.1", port, pki.context(good)).call(
            "POST", "/eligibility", sample("270-subscriber")
        )
        assert status == 202, body
        assert (
            Api("127.0.0.1", port, pki.context(good)).call("GET", f"/requests/{body['tracking_number']}")[0]
            == 403
        )
        assert (
            Api("127.0.0.1", port, pki.context(stranger)).call(
                "POST", "/eligibility", sample("270-subscriber")
            )[0]
            == 401
        )
        with pytest.raises((ssl.SSLError, ConnectionError)):
            Api("127.0.0.1", port, pki.context(forged)).call("POST", "/eligibility", sample("270-subscriber"))
        assert (
            Api("127.0.0.1", port, pki.context(None)).call("POST", "/eligibility", sample("270-subscriber"))[
                0
            ]
            == 401
        )


def test_openapi_served_equals_the_checked_in_document_and_describes_every_route(
    workspace: tuple[Path, Context],
) -> None:
    """/api/v1/openapi.json is docs/openapi.json, and every API route and method is in it."""
    config_path, _ = workspace
    checked_in = json.loads((ROOT / "docs" / "openapi.json").read_text())
    with serving(config_path) as port:
        status, _, served = Api("127.0.0.1", port).call("GET", "/openapi.json")
    assert status == 200
    assert served == checked_in == document()
    for route in routes():
        methods = {m.lower() for m in route.methods or ()} - {"head"}
        assert methods <= set(checked_in["paths"][route.path]), route.path


def test_api_logs_hold_no_phi(workspace: tuple[Path, Context], phi_log_dir: Path) -> None:
    """Accepted, refused and read calls with canary PHI leave no canary in any log line (our access
    line has the route template, never the path or body)."""
    config_path, ctx = workspace
    key = add_client(ctx, "billing")
    log = phi_log_dir / "pytest-session.log"
    before = log.stat().st_size if log.exists() else 0
    with serving(config_path) as port:
        api = Api("127.0.0.1", port)
        _, _, body = api.call("POST", "/eligibility", sample("270-dependent"), key=key)
        bad = sample("270-subscriber")
        bad["subscriber"]["gender"] = "CANARYTEST"
        assert api.call("POST", "/eligibility", bad, key=key)[0] == 422
        assert api.call("GET", f"/requests/{body['tracking_number']}", key=key)[0] == 200
    from tests.test_phi_canary import canaries_in  # noqa: PLC0415 - the suite's one canary scanner

    text = log.read_text(encoding="utf-8")[before:]
    assert '"route": "POST /eligibility"' in text
    assert canaries_in(text) == []


def test_an_unusable_store_is_a_503_problem_not_a_stack_trace(
    workspace: tuple[Path, Context], tmp_path: Path
) -> None:
    """When the database cannot be opened a call gets 503 problem+json with Retry-After."""
    config_path, _ = workspace
    broken = Store(make_engine(sqlite_url(tmp_path / "missing-dir" / "db.sqlite")))
    with serve(config_path, store=broken) as srv:
        reply = http_call(
            srv, "/api/v1/eligibility", method="POST", headers={"Authorization": "Bearer x12gw_k"}
        )
    assert (reply.status, reply.headers["Retry-After"]) == (503, "5")
    assert reply.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in reply.body


def test_serve_with_two_worker_processes_takes_api_calls(workspace: tuple[Path, Context]) -> None:
    """``x12gw serve --workers 2``: each worker builds the app from the same configuration; calls are
    answered and recorded once each, whichever worker takes them."""
    config_path, ctx = workspace
    key = add_client(ctx, "billing")
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    cmd = [*X12GW, "serve", "--config", str(config_path), "--listen", f"127.0.0.1:{port}", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        api = Api("127.0.0.1", port)
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "x12gw serve exited"
            try:
                status, _, body = api.call("POST", "/eligibility", sample("270-subscriber"), key=key)
                break
            except ConnectionError:
                assert time.monotonic() < deadline, "x12gw serve did not start"
                time.sleep(0.2)
        assert status == 202, body
        for n in range(6):
            doc = {**sample("270-subscriber"), "trace_number": f"W-{n}"}
            assert api.call("POST", "/eligibility", doc, key=key)[0] == 202
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert count(ctx, s.requests) == 7
