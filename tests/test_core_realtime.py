"""CAQH CORE real time against the simulator's HTTPS server with real generated certificates: both
envelope styles, basic and mutual-TLS authentication, pinning, slow payers, broken envelopes, wrong
checksums, 5xx and busy answers with the retry rule, a 999 for a rejected group, and the records."""

from __future__ import annotations

import argparse
import io
import json
import signal
import subprocess
import sys
import threading
from contextlib import redirect_stdout
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import log_cmd
from gateway.lifecycle import FileState, RequestState
from gateway.realtime import batch, exchange
from gateway.realtime.dispatch import file_of, send_realtime
from gateway.runtime.context import Context
from gateway.runtime.runner import Gateway
from gateway.stages import batching, intake
from gateway.transport.core_envelope import new_payload_id
from payersim.certs import issue, make_ca
from payersim.scenario import Scenario
from tests import exactly_once
from tests.core_support import PASSWORD, CoreRig, drop_request, request_state

pytest_plugins = ["tests.core_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 15.0  # generous: a test never passes or fails on wall time, only on what was stored


def _result(ctx: Context, request_id: int) -> dict[str, Any]:
    with ctx.store.read() as tx:
        tracking = tx.requests.get(request_id).tracking_number
    doc: dict[str, Any] = json.loads((ctx.config.folders.outbox / f"{tracking}.json").read_text())
    return doc


def _has_result(ctx: Context, request_id: int, state: str) -> bool:
    """The request's result file is in the outbox and says ``state`` (written after the commit)."""
    try:
        return bool(_result(ctx, request_id)["state"] == state)
    except FileNotFoundError:
        return False


def _file_history(ctx: Context, file_id: int) -> list[Any]:
    with ctx.store.read() as tx:
        return tx.audit.history("file", file_id)


def _outbound_file(ctx: Context, request_id: int) -> int:
    with ctx.store.read() as tx:
        file_id = file_of(tx, request_id)
    assert file_id is not None
    return file_id


def _cycle_until(ctx: Context, predicate: Any, cycles: int = 200) -> bool:
    """Run real run-loop cycles until ``predicate()`` (bounded by a cycle count, not by time)."""
    gateway = Gateway(ctx)
    for _ in range(cycles):
        if predicate():
            return True
        gateway.cycle()
        threading.Event().wait(0.05)
    return bool(predicate())


# ------------------------------------------------------------------------------------ happy paths


def test_mime_basic_270_is_answered_within_the_budget_and_recorded_like_sftp(rig: CoreRig) -> None:
    """MIME envelope, username/password: send_realtime returns True; the outbound file is sent and
    acknowledged, the answer is a delivered inbound file with its envelopes, and the outbox holds the
    same result document an SFTP answer gives."""
    server = rig.server()
    ctx = rig.context(server)
    rid = drop_request(ctx, "270-subscriber", "RT-MIME-1")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is True
    assert request_state(ctx, rid) == RequestState.ANSWERED
    doc = _result(ctx, rid)
    assert doc["state"] == "answered"
    assert doc["status"] == "active"
    [got] = server.received
    assert (got.style, got.payload_type) == ("mime", "X12_270_Request_005010X279A1")
    out_id = _outbound_file(ctx, rid)
    with ctx.store.read() as tx:
        out = tx.files.get(out_id)
        answers = tx.files.query(direction="in", partner="acme")
        assert out.state == FileState.ACKNOWLEDGED
        assert [a.state for a in answers] == [FileState.DELIVERED]
        sets = [
            s.set_id
            for ic in tx.envelopes.interchanges_of_file(answers[0].id)
            for g in tx.envelopes.groups_of_interchange(ic.id)
            for s in tx.envelopes.sets_of_group(g.id)
        ]
    assert sets == ["271"]
    sent = next(h for h in _file_history(ctx, out_id) if h.new_state == FileState.SENT)
    assert sent.detail["transport"] == "core"
    assert sent.detail["envelope"] == "mime"
    assert sent.detail["http_status"] == 200
    assert sent.detail["payload_id"] == got.payload_id
    assert isinstance(sent.detail["elapsed_ms"], int)


def test_soap_mtls_278_is_answered_with_a_certification(rig: CoreRig) -> None:
    """SOAP 1.2 envelope over mutual TLS: the 278 request gets its 278 response, an approval with a
    certification number, in the authorization records."""
    server = rig.server(auth="mtls")
    ctx = rig.context(server, envelope="soap")
    rid = drop_request(ctx, "278-outpatient-mri", "RT-SOAP-1")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is True
    [got] = server.received
    assert (got.style, got.payload_type) == ("soap", "X12_278_Request_005010X217E1_2")
    doc = _result(ctx, rid)
    assert doc["status"] == "approved"
    assert doc["authorization"]["certification_number"].startswith("SIMRT")


def test_the_run_loop_sends_core_requests_in_real_time_not_to_sftp(rig: CoreRig) -> None:
    """A request of a core partner dropped in the inbox is answered by run-loop cycles alone: one
    request per interchange, POSTed, answered."""
    server = rig.server()
    ctx = rig.context(server, envelope="soap")
    first = drop_request(ctx, "270-subscriber", "RT-LOOP-1")
    second = drop_request(ctx, "270-dependent", "RT-LOOP-2")
    assert _cycle_until(ctx, lambda: {request_state(ctx, first), request_state(ctx, second)} == {"answered"})
    assert len(server.received) == 2
    assert _outbound_file(ctx, first) != _outbound_file(ctx, second)


# ----------------------------------------------------------------------------------- authentication


def test_a_client_certificate_from_another_ca_is_refused(rig: CoreRig, tmp_path: Path) -> None:
    """mTLS: a certificate the payer's CA did not sign fails the handshake; nothing reaches the payer,
    the request stays queued (uploading) and the failure is on the file's history."""
    server = rig.server(auth="mtls")
    other_ca, other_key = make_ca(tmp_path / "rogue", "rogue CA")
    cert, key = issue(other_ca, other_key, tmp_path / "rogue", "rogue client", server=False)
    ctx = rig.context(server, client_cert=str(cert), client_key=str(key))
    rid = drop_request(ctx, "270-subscriber", "RT-ROGUE")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is False
    assert server.received == []
    assert request_state(ctx, rid) == RequestState.QUEUED
    failed = [
        h.detail for h in _file_history(ctx, _outbound_file(ctx, rid)) if h.detail and "failed" in h.detail
    ]
    assert failed
    assert failed[0]["error_code"] == "tls"


def test_an_unpinned_server_certificate_is_refused(rig: CoreRig, tmp_path: Path) -> None:
    """The gateway trusts only the configured CA: a server whose certificate another CA signed is
    refused before anything is sent."""
    server = rig.server()
    other_ca, _ = make_ca(tmp_path / "other", "other CA")
    ctx = rig.context(server, ca_file=str(other_ca))
    rid = drop_request(ctx, "270-subscriber", "RT-PIN")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is False
    assert server.received == []
    codes = [h.detail.get("error_code") for h in _file_history(ctx, _outbound_file(ctx, rid)) if h.detail]
    assert "tls_server_certificate" in codes


def test_a_wrong_password_is_refused_and_never_logged(rig: CoreRig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Basic auth with a wrong password: HTTP 401 UnAuthorized, not retried at once, the request stays
    queued; the password appears in no stored state change."""
    server = rig.server()
    monkeypatch.setenv("X12GW_TEST_CORE_PASSWORD", "not-the-right-one-xyz")
    ctx = rig.context(server)
    rid = drop_request(ctx, "270-subscriber", "RT-PW")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is False
    history = _file_history(ctx, _outbound_file(ctx, rid))
    assert any(h.detail and h.detail.get("error_code") == "unauthorized" for h in history)
    assert "not-the-right-one-xyz" not in json.dumps([h.detail for h in history])


# ------------------------------------------------------------------------------------- slow payer


@pytest.mark.parametrize("slow", ["fault", "scenario"])
def test_a_payer_slower_than_the_budget_returns_false_and_the_answer_arrives_later(
    rig: CoreRig, slow: str
) -> None:
    """The budget passes before the payer answers (a latency fault, or the scenario's delay_seconds
    for this member): send_realtime says False at once, the request is still open; the answer is
    stored when it comes (exactly one result)."""
    if slow == "fault":
        server = rig.server(latency_seconds=1.5)
    else:
        rule = '[[rules]]\nmember_id = "ZZM100000001"\ndelay_seconds = 1.5\n'
        server = rig.server(scenario=Scenario.from_toml(rule))
    ctx = rig.context(server)
    rid = drop_request(ctx, "270-subscriber", "RT-SLOW")
    assert send_realtime(ctx, rid, budget_seconds=0.2) is False
    assert request_state(ctx, rid) in {RequestState.QUEUED, RequestState.SENT}
    assert _cycle_until(ctx, lambda: _has_result(ctx, rid, "answered"))
    assert len(server.received) == 1
    assert request_state(ctx, rid) == RequestState.ANSWERED


def test_a_timed_out_post_is_sent_again_by_the_run_loop(rig: CoreRig) -> None:
    """The payer takes longer than the partner's timeout: the attempt fails (file still uploading);
    once the payer is quick again the run loop sends it again and stores the answer."""
    server = rig.server(latency_seconds=2.0)
    ctx = rig.context(server, timeout_seconds=0.5)
    rid = drop_request(ctx, "270-subscriber", "RT-TIMEOUT")
    assert send_realtime(ctx, rid, budget_seconds=5.0) is False
    out_id = _outbound_file(ctx, rid)
    assert any(h.detail and h.detail.get("error_code") == "timeout" for h in _file_history(ctx, out_id))
    server.faults.latency_seconds = 0.0
    assert _cycle_until(ctx, lambda: request_state(ctx, rid) == RequestState.ANSWERED)


def test_an_interrupted_attempt_is_sent_again_only_after_the_retry_interval(rig: CoreRig) -> None:
    """A file left ``uploading`` (the process died mid-POST) is not sent again before
    ``retry_seconds`` have passed since that attempt; after that the run loop resends it."""
    server = rig.server()
    ctx = rig.context(server, retry_seconds=3600.0)
    rid = drop_request(ctx, "270-subscriber", "RT-CRASH")
    batching.batch_all(ctx)
    out_id = _outbound_file(ctx, rid)
    with ctx.store.read() as tx:
        row = tx.files.get(out_id)
    partner = ctx.config.partner("acme")
    detail = {"transport": "core", "payload_id": new_payload_id()}
    assert (
        exchange._begin_attempt(ctx, partner, row, detail) == "270"
    )  # the crash point: attempt recorded, no POST
    for _ in range(3):
        Gateway(ctx).cycle()
    assert server.received == []
    assert request_state(ctx, rid) == RequestState.QUEUED
    later = ctx.clock
    ctx.clock = lambda: later() + timedelta(hours=2)  # the retry interval has passed
    assert _cycle_until(ctx, lambda: request_state(ctx, rid) == RequestState.ANSWERED)
    assert len(server.received) == 1


# --------------------------------------------------------------------------------- faulty payers


@pytest.mark.parametrize(
    ("fault", "code"),
    [("malformed", "malformed_envelope"), ("wrong_checksum", "checksum_mismatch"), ("busy", "Receiver Busy")],
)
def test_a_bad_answer_is_retried_and_stored_once(rig: CoreRig, fault: str, code: str) -> None:
    """A malformed envelope, a wrong checksum or "Receiver Busy": nothing is stored from that answer,
    the failure is recorded with its code, and the next attempt's answer is stored exactly once."""
    server = rig.server(faults={fault: 1})
    ctx = rig.context(server)
    rid = drop_request(ctx, "270-subscriber", f"RT-{fault.replace('_', '-')}")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is False
    out_id = _outbound_file(ctx, rid)
    assert [
        h.detail["error_code"] for h in _file_history(ctx, out_id) if h.detail and "failed" in h.detail
    ] == [code]
    assert _cycle_until(ctx, lambda: request_state(ctx, rid) == RequestState.ANSWERED)
    with ctx.store.read() as tx:
        answered = [h for h in tx.audit.history("request", rid) if h.new_state == RequestState.ANSWERED]
        inbound = tx.files.query(direction="in", partner="acme")
    assert len(answered) == 1
    assert len(inbound) == 1


def test_5xx_answers_are_retried_no_sooner_than_the_rule_allows(rig: CoreRig) -> None:
    """Two HTTP 503s, then an answer: each attempt is recorded; the request is answered once."""
    server = rig.server(http_5xx=2)
    ctx = rig.context(server)
    rid = drop_request(ctx, "270-subscriber", "RT-5XX")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is False
    assert _cycle_until(ctx, lambda: request_state(ctx, rid) == RequestState.ANSWERED)
    failures = [
        h.detail for h in _file_history(ctx, _outbound_file(ctx, rid)) if h.detail and "failed" in h.detail
    ]
    assert [f["http_status"] for f in failures] == [503, 503]
    assert len({f["payload_id"] for f in failures}) == 2  # a new PayloadID per message
    assert len(server.received) == 1


def test_a_payload_the_payer_refuses_rejects_the_request(rig: CoreRig) -> None:
    """ErrorCode PayloadRejected: not retried; the request is rejected with the code as its reason,
    and its result file says so."""
    server = rig.server(reject_payload=1)
    ctx = rig.context(server)
    rid = drop_request(ctx, "270-subscriber", "RT-REFUSED")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is True
    assert request_state(ctx, rid) == RequestState.REJECTED
    assert "PayloadRejected" in _result(ctx, rid)["reason"]


@pytest.mark.parametrize(("ack", "kind", "why"), [("reject", "999", "999"), ("ta1_reject", "TA1", "TA1")])
def test_a_rejected_group_or_interchange_comes_back_as_999_or_ta1_and_rejects_the_request(
    rig: CoreRig, ack: str, kind: str, why: str
) -> None:
    """The scenario rejects the set (or the interchange): the HTTP answer carries a 999 (CORE: only
    when the group is rejected) or a TA1, the inbound stage applies it and the request is rejected."""
    scenario = Scenario.from_toml(f'[[rules]]\nmember_id = "ZZM100000001"\nack = "{ack}"\n')
    server = rig.server(scenario=scenario)
    ctx = rig.context(server)
    rid = drop_request(ctx, "270-subscriber", f"RT-{kind}")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is True
    assert request_state(ctx, rid) == RequestState.REJECTED
    with ctx.store.read() as tx:
        answer = tx.files.query(direction="in", partner="acme")[0]
    assert f"-core-{kind}-" in answer.name
    assert why in (_result(ctx, rid)["reason"] or "")


# ------------------------------------------------------------------------------------------- log show


def _log_show(ctx: Context, *argv: str) -> str:
    parser = argparse.ArgumentParser(prog="x12gw")
    log_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["log", "show", *argv, "--config", str(ctx.config.source)])
    out = io.StringIO()
    with redirect_stdout(out):
        assert args.func(args) == 0
    return out.getvalue()


def test_log_show_lists_each_http_attempt_with_status_payload_id_and_timing(rig: CoreRig) -> None:
    """``log show`` of the request (and of its file) has the HTTP exchanges: the 503 attempt and the
    answered one, each with its envelope style, PayloadID, status and milliseconds; no password."""
    server = rig.server(http_5xx=1)
    ctx = rig.context(server, envelope="soap")
    rid = drop_request(ctx, "270-subscriber", "RT-LOG")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is False
    assert _cycle_until(ctx, lambda: _has_result(ctx, rid, "answered"))
    with ctx.store.read() as tx:
        tracking = tx.requests.get(rid).tracking_number
    view = json.loads(_log_show(ctx, tracking, "--json"))
    rows = view["http_exchanges"]
    assert [(r["envelope"], r["http_status"]) for r in rows] == [
        ("soap realtime", 503),
        ("soap realtime", 200),
    ]
    assert rows[1]["outcome"] == "answered: X12_271_Response_005010X279A1"
    assert all(isinstance(r["elapsed_ms"], int) for r in rows)
    assert {r["payload_id"] for r in rows} <= {
        h.detail.get("payload_id") for h in _file_history(ctx, rows[0]["file_id"]) if h.detail
    }
    file_view = json.loads(_log_show(ctx, f"file:{rows[0]['file_id']}", "--json"))
    assert file_view["http_exchanges"] == rows
    text = _log_show(ctx, tracking)
    assert "http exchanges (CAQH CORE)" in text
    assert "soap realtime" in text
    assert PASSWORD not in text


# ------------------------------------------------------------------------------------------ x12gw sim


def test_x12gw_sim_serves_core_with_its_printed_certificates(rig: CoreRig, tmp_path: Path) -> None:
    """``x12gw sim`` prints the CORE URL, CA and client certificate; a gateway configured with them
    (mutual TLS) gets its 270 answered in real time; SIGTERM stops both servers."""
    root = tmp_path / "simroot"
    code = (
        "import argparse, sys\n"
        "from gateway.cli import sim_cmd\n"
        "p = argparse.ArgumentParser()\n"
        "sim_cmd.register(p.add_subparsers())\n"
        "a = p.parse_args(sys.argv[1:])\n"
        "sys.exit(a.func(a))\n"
    )
    command = [
        sys.executable,
        "-c",
        code,
        "sim",
        "--root",
        str(root),
        "--password-env",
        "X12GW_TEST_CORE_PASSWORD",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(7)]
        printed = dict(line.strip().split(": ", 1) for line in lines[1:])
        assert printed["core-url"].startswith("https://127.0.0.1:")
        settings = {
            "url": printed["core-url"],
            "ca_file": printed["core-ca"],
            "client_cert": printed["core-client-cert"],
            "client_key": printed["core-client-key"],
        }
        ctx = rig.context(_Remote(printed["core-url"]), **settings)  # type: ignore[arg-type]
        rid = drop_request(ctx, "270-subscriber", "RT-CLI")
        assert send_realtime(ctx, rid, budget_seconds=BUDGET) is True
        assert _result(ctx, rid)["status"] == "active"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


class _Remote:
    """What ``CoreRig.context`` reads of a server: a simulator in another process, mutual TLS."""

    auth = "mtls"

    def __init__(self, url: str) -> None:
        self.url = url


# ------------------------------------------------------------------------------------------ batch mode


def test_core_batch_mode_submits_then_picks_up_the_999_and_the_answers(rig: CoreRig) -> None:
    """mode = "batch": the two 270s go in one submitted interchange, the 278 in another (one payload
    type each); the pick-up brings the 999s (the files are acknowledged) and the answers; every result
    is acknowledged to the payer, so nothing is left waiting there."""
    server = rig.server()
    ctx = rig.context(server, mode="batch", envelope="soap")
    first = drop_request(ctx, "270-subscriber", "RT-BATCH-1")
    second = drop_request(ctx, "270-dependent", "RT-BATCH-2")
    review = drop_request(ctx, "278-outpatient-mri", "RT-BATCH-3")
    assert send_realtime(ctx, first, budget_seconds=BUDGET) is False  # batch partners are not real time
    assert _cycle_until(ctx, lambda: all(_has_result(ctx, r, "answered") for r in (first, second, review)))
    # one submission per payload type: the two 270s together, the 278 alone
    assert sorted(r.payload_type for r in server.received) == [
        "X12_270_Request_005010X279A1",
        "X12_278_Request_005010X217E1_2",
    ]
    assert server.results == []
    out_id = _outbound_file(ctx, first)
    assert out_id == _outbound_file(ctx, second)
    with ctx.store.read() as tx:
        assert tx.files.get(out_id).state == FileState.ACKNOWLEDGED
        names = sorted(f.name.split("-")[3] for f in tx.files.query(direction="in", partner="acme"))
    assert names == ["271", "278resp", "999", "999"]


def test_a_batch_result_fetched_again_after_a_lost_acknowledgment_is_stored_once(rig: CoreRig) -> None:
    """The payer hands out a result again (our acknowledgment was lost): it is recognised by its
    PayloadID and not recorded twice."""
    server = rig.server()
    ctx = rig.context(server, mode="batch")
    rid = drop_request(ctx, "270-subscriber", "RT-BATCH-ACK")
    assert _cycle_until(ctx, lambda: _has_result(ctx, rid, "answered"))
    with ctx.store.read() as tx:
        before = tx.files.query(direction="in", partner="acme")
        first = next(f for f in before if "-271-" in f.name)
    payload_id = first.name.removesuffix(".x12").split("-271-", 1)[1]
    server.results.append((payload_id, "271", ctx.payloads.get(first.sha256)))
    assert batch.pick_up(ctx, ctx.config.partner("acme")) == (0, None)
    assert server.results == []
    with ctx.store.read() as tx:
        assert len(tx.files.query(direction="in", partner="acme")) == len(before)


# ------------------------------------------------------------------------------------------ exactly once


def test_exactly_once_with_the_api_and_the_run_loop_racing_through_a_faulty_payer(rig: CoreRig) -> None:
    """Twenty-four 270/278 requests sent by four API-like threads (send_realtime) while the run loop
    cycles too, against a payer that answers 503, busy, malformed and wrong-checksum envelopes now
    and then: the exactly-once audit finds every request answered once, every answer recorded once,
    one result file each, no control number reused."""
    server = rig.server(http_5xx=3, busy=2, malformed=2, wrong_checksum=2)
    ctx = rig.context(server, envelope="soap")
    fed: dict[str, str] = {}
    docs = []
    for n in range(24):
        ref = f"RT-EO-{n:03d}"
        member = f"ZZM7{n:08d}"
        if n % 3:
            docs.append(exactly_once.eligibility(ref, member))
            fed[ref] = "270"
        else:
            docs.append(exactly_once.review(ref, member, "73721"))
            fed[ref] = "278"
    exactly_once.drop(ctx.config.folders.inbox, "requests.json", json.dumps(docs).encode())
    intake.intake(ctx)
    with ctx.store.read() as tx:
        ids = [r.id for r in tx.requests.query(limit=100)]
    assert len(ids) == 24
    queue = list(ids)
    lock = threading.Lock()

    def api_client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                rid = queue.pop()
            send_realtime(ctx, rid, budget_seconds=BUDGET)

    clients = [threading.Thread(target=api_client) for _ in range(4)]
    for t in clients:
        t.start()
    gateway = Gateway(ctx)
    while any(t.is_alive() for t in clients):
        gateway.cycle()
    for t in clients:
        t.join()
    assert _cycle_until(ctx, lambda: exactly_once.settled(ctx.store, fed) and _all_results(ctx, ids))
    received = [r.payload for r in server.received]
    assert (
        exactly_once.audit_realtime(ctx.store, ctx.config.folders, received, fed, retransmissions=True) == []
    )


def _all_results(ctx: Context, ids: list[int]) -> bool:
    return all(_has_result(ctx, rid, "answered") for rid in ids)
