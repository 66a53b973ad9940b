"""``x12gw serve`` without a browser: health, readiness, metrics from the store, users, cookies."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text

from gateway.cli import main
from gateway.lifecycle import Entity, FileState, PartnerEvent, PartnerState, RequestState
from gateway.runtime.config import load_config
from gateway.runtime.storeopen import open_store
from gateway.store import Store, hash_member_id, make_engine, sqlite_url
from gateway.store import schema as s
from gateway.store.payloads import PayloadStore
from gateway.store.store import MIGRATIONS_DIR
from gateway.web import figures, users
from gateway.web.metrics import finding_codes
from tests.lifecycle_support import rewind_request, walk_file
from tests.web_support import PASSWORD, Server, demo_copy, free_socket, http_call, self_signed, serve
from tests.x12text import built
from transactions.acks import AckEnvelope, build_999, parse_acks
from transactions.validation import validate

pytest_plugins = ["tests.store_fixtures"]

X12GW = (
    [str(Path(sys.executable).parent / "x12gw")]
    if (Path(sys.executable).parent / "x12gw").exists()
    else [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]
)


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_copy(tmp_path_factory, "web")


def metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = http_call(server, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(reply.body):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def pause(store: Store, partner: str, minutes: float = 60) -> None:
    with store.begin() as tx:
        tx.audit.record_move(
            Entity.PARTNER,
            0,
            PartnerState.ACTIVE,
            PartnerEvent.PAUSE,
            {"partner": partner, "reason": "x", "minutes": minutes},
        )


def test_healthz_answers_while_readyz_reports_an_unreachable_database(demo: Path, tmp_path: Path) -> None:
    """/healthz needs no database; /readyz says 503 and why when the database cannot be opened."""
    broken = Store(make_engine(sqlite_url(tmp_path / "missing-dir" / "db.sqlite")))
    with serve(demo, store=broken) as srv:
        assert http_call(srv, "/healthz").status == 200
        reply = http_call(srv, "/readyz")
        assert reply.status == 503
        assert "database unreachable" in reply.body


def test_readyz_is_ready_on_the_demo_and_not_when_every_partner_is_paused(demo: Path) -> None:
    """Ready on a migrated, active demo; 503 naming the partner while it is paused; ready again after."""
    with serve(demo) as srv:
        reply = http_call(srv, "/readyz", headers={"Accept": "application/json"})
        assert reply.status == 200, reply.body
        body = json.loads(reply.body)
        assert body["checks"] == {"database": "ok", "migrations": "current", "partners": "1 of 1 active"}
        pause(srv.store, "sim-clearinghouse")
        reply = http_call(srv, "/readyz")
        assert reply.status == 503
        assert "every partner is paused: sim-clearinghouse" in reply.body
        with srv.store.begin() as tx:
            tx.audit.record_move(
                Entity.PARTNER, 0, PartnerState.PAUSED, PartnerEvent.RESUME, {"partner": "sim-clearinghouse"}
            )
        assert http_call(srv, "/readyz").status == 200


def test_readyz_refuses_a_schema_behind_the_release(demo: Path, tmp_path: Path) -> None:
    """A database migrated only to 0003 is reported as outdated (serve itself never migrates)."""
    url = sqlite_url(tmp_path / "old.sqlite")
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
    engine.dispose()
    config_text = demo.read_text().replace('usage = "T"', f'usage = "T"\ndatabase_url = "{url}"')
    demo.write_text(config_text)
    with serve(demo) as srv:
        reply = http_call(srv, "/readyz")
        assert reply.status == 503
        assert "database schema at 0003" in reply.body
    with make_engine(url).connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0003"


def test_metrics_show_live_figures_from_the_store(demo: Path) -> None:
    """Every scrape reads the store: request and file counts match it, and a change shows at once."""
    with serve(demo) as srv:
        first = metrics(srv)
        with srv.store.read() as tx:
            counts = figures.requests_by_state(tx)
        for kind, state, n in counts:
            assert first["x12gw_requests", (("kind", kind), ("state", state))] == n
        assert first["x12gw_requests", (("kind", "278"), ("state", "answered"))] == 6
        assert first["x12gw_responses", (("decision", "denied"), ("set", "278"))] == 1
        assert first["x12gw_acceptance_ratio", ()] == 1.0
        assert first["x12gw_transaction_set_acks", (("code", "A"), ("level", "set"))] == 9
        assert first["x12gw_ack_latency_seconds", (("quantile", "0.5"),)] >= 0
        assert first["x12gw_partner_paused", (("partner", "sim-clearinghouse"),)] == 0
        with srv.store.begin() as tx:
            req = tx.requests.query(state="answered", kind="278", limit=1)[0]
            rewind_request(tx, req.tracking_number, RequestState.OVERDUE)
        pause(srv.store, "sim-clearinghouse")
        second = metrics(srv)
        assert second["x12gw_requests", (("kind", "278"), ("state", "answered"))] == 5
        assert second["x12gw_requests", (("kind", "278"), ("state", "overdue"))] == 1
        assert second["x12gw_partner_paused", (("partner", "sim-clearinghouse"),)] == 1
        assert second["x12gw_partner_pauses_total", (("partner", "sim-clearinghouse"),)] == 1


def _rejecting_999() -> bytes:
    """Our 999 about a 278 with an impossible birth date (an element error, IK4 code 8)."""
    broken = built("278-outpatient-mri").replace("DMG*D8*19700101", "DMG*D8*19701399")
    report = validate(broken.encode()).interchanges[0]
    env = AckEnvelope("ZZ", "X12GATEWAY", 900, 900, datetime(2026, 11, 26, tzinfo=UTC))
    data = build_999(report, env, 1)
    assert data is not None
    return data


def test_validation_findings_are_counted_from_acknowledgment_files(demo: Path) -> None:
    """Error codes in our outgoing 999s become x12gw_validation_findings, counted once per file."""
    data = _rejecting_999()
    codes = finding_codes(parse_acks(data))
    assert codes["element", "8"] == 1, codes
    config = load_config(demo)
    sha, path = PayloadStore(config.folders.payloads).put(data)
    with serve(demo) as srv:
        with srv.store.begin() as tx:
            ack = tx.files.record(
                direction="out",
                partner="sim-clearinghouse",
                name="ack.x12",
                sha256=sha,
                size=len(data),
                payload_path=str(path),
                state=FileState.QUEUED,
            )
            walk_file(tx, ack.id, FileState.QUEUED, FileState.SENT)
        for _ in range(2):  # a second scrape must not count the file again
            found = metrics(srv)
            for (level, code), n in codes.items():
                key = (
                    "x12gw_validation_findings_total",
                    (("code", code), ("direction", "out"), ("level", level)),
                )
                assert found[key] == n


def test_serve_command_answers_health_and_metrics(demo: Path) -> None:
    """``x12gw serve --listen`` in its own process answers /healthz, /readyz and /metrics, and its
    console lists every demo request (the issue's done-when: demo --keep, then serve)."""
    store = open_store(load_config(demo), role="operator")
    users.add_user(store, "alice", "viewer", PASSWORD)
    with store.read() as tx:
        trackings = [r.tracking_number for r in tx.requests.query(limit=100)]
    store.close()
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [
            *X12GW,
            "serve",
            "--config",
            str(demo),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    reader = open_store(load_config(demo), role="serve")  # only to fill Server; the test reads HTTP
    srv = Server(f"http://127.0.0.1:{port}", load_config(demo), reader, port=port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = http_call(srv, "/healthz")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert reply.status == 200
        assert http_call(srv, "/readyz").status == 200
        assert 'x12gw_requests{kind="270",state="answered"} 3.0' in http_call(srv, "/metrics").body
        assert http_call(srv, "/console/").headers["location"] == "/console/login"
        _header, token = _login(srv, "alice")
        page = http_call(srv, "/console/transactions", cookies={"x12gw_session": token})
        assert page.status == 200
        assert len(trackings) == 9
        assert all(t in page.body for t in trackings)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        reader.close()


def test_users_command_adds_lists_and_removes(
    demo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Password from stdin, stored only as a salted scrypt hash; list and remove; bad input refused."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "alice", "--role", "operator", "--config", str(demo)]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["users", "add", "bob", "--role", "viewer", "--config", str(demo)]) == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "bob", "--role", "viewer", "--config", str(demo)]) == 0
    capsys.readouterr()
    assert main(["users", "list", "--json", "--config", str(demo)]) == 0
    listed = json.loads(capsys.readouterr().out)["users"]
    assert [(u["name"], u["role"]) for u in listed] == [("alice", "operator"), ("bob", "viewer")]
    store = Store(make_engine(load_config(demo).database_url()))
    try:
        with store.read() as tx:
            hashes = [r.password_hash for r in tx.conn.execute(select(s.users))]
        assert all(h.startswith("scrypt$") and PASSWORD not in h for h in hashes)
        assert hashes[0].split("$")[4] != hashes[1].split("$")[4], "each user has its own salt"
        assert users.authenticate(store, "alice", PASSWORD) is not None
        assert users.authenticate(store, "alice", PASSWORD + "x") is None
        assert main(["users", "remove", "alice", "--config", str(demo)]) == 0
        assert main(["users", "remove", "alice", "--config", str(demo)]) == 1
        assert users.authenticate(store, "alice", PASSWORD) is None
    finally:
        store.close()


def _login(srv: Server, name: str) -> tuple[str, str]:
    page = http_call(srv, "/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.body)
    assert token is not None
    cookie = page.cookies()[0].split(";")[0].split("=", 1)
    reply = http_call(
        srv,
        "/console/login",
        method="POST",
        form={"csrf": token.group(1), "name": name, "password": PASSWORD},
        cookies={cookie[0]: cookie[1]},
    )
    assert reply.status == 303, reply.body
    session = next(c for c in reply.cookies() if c.startswith("x12gw_session="))
    return session, session.split(";")[0].split("=", 1)[1]


def test_session_cookie_flags_and_login_csrf(demo: Path) -> None:
    """HttpOnly, SameSite=Strict, path /console; Secure when asked; a login without its token is refused."""
    store = open_store(load_config(demo), role="operator")
    users.add_user(store, "alice", "viewer", PASSWORD)
    store.close()
    with serve(demo) as srv:
        header, _token = _login(srv, "alice")
        flags = {f.strip().lower() for f in header.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/console"} <= flags
        assert "secure" not in flags
        refused = http_call(
            srv, "/console/login", method="POST", form={"name": "alice", "password": PASSWORD}
        )
        assert refused.status == 403
        assert "x12gw_session" not in " ".join(refused.cookies())
    with serve(demo, secure_cookies=True) as srv:
        header, _token = _login(srv, "alice")
        assert "secure" in {f.strip().lower() for f in header.split(";")[1:]}
    with serve(demo, tls=self_signed(demo.parent)) as srv:  # served over TLS: Secure without asking
        header, token = _login(srv, "alice")
        assert "secure" in {f.strip().lower() for f in header.split(";")[1:]}
        assert http_call(srv, "/console/", cookies={"x12gw_session": token}).status == 200


KEY = b"client-reference-test-key"


def test_users_sessions_and_figures_on_both_backends(store: Store) -> None:
    """Users, sessions, partner pauses and the client-reference lookup work on SQLite and PostgreSQL."""
    from gateway.web.browse import requests_by_reference  # noqa: PLC0415

    alice = users.add_user(store, "alice", "operator", PASSWORD)
    token, session = users.start_session(store, alice)
    found = users.find_session(store, token)
    assert found is not None
    assert (found.user.name, found.csrf_token) == ("alice", session.csrf_token)
    users.add_user(store, "alice", "viewer", PASSWORD + "2")  # a new password ends the sessions
    assert users.find_session(store, token) is None
    with store.begin() as tx:
        tx.requests.insert(
            tracking_number="GW-T-1",
            kind="278",
            payer_id="ACME01",
            partner="p1",
            source_file_id=None,
            payload={"client_reference": "AU-0042"},
            member_id_hash="0" * 64,
            client_reference_hash=hash_member_id("AU-0042", KEY),
        )
        tx.audit.record_move(
            Entity.PARTNER, 0, PartnerState.ACTIVE, PartnerEvent.PAUSE, {"partner": "p1", "minutes": 30}
        )
    with store.read() as tx:
        assert [r.tracking_number for r in requests_by_reference(tx, "AU-0042", KEY)] == ["GW-T-1"]
        assert requests_by_reference(tx, "AU-0043", KEY) == []
        states = figures.partner_states(tx, ["p1", "p2"], store.clock())
    assert [(p.name, p.paused, p.pauses) for p in states] == [("p1", True, 1), ("p2", False, 0)]
