"""The HTTP API with a real-time partner: ``transport = "core"`` against the simulator's CAQH CORE
server over HTTPS (both envelope styles), answered within the budget (200 and the result), and a
payer slower than the budget (202, then the result arrives at the Location)."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from gateway.runtime.config import ApiConfig
from gateway.runtime.context import Context
from gateway.runtime.retention import purge_rows
from gateway.store import schema as s
from payersim.demo_realtime import run_realtime_demo
from tests.api_support import ROOT, Api, sample, serving
from tests.test_api import add_client

if TYPE_CHECKING:
    from tests.core_support import CoreRig

pytest_plugins = ["tests.core_fixtures"]


def recorded(ctx: Context) -> int:
    with ctx.store.read() as tx:
        return int(tx.conn.execute(select(func.count()).select_from(s.api_requests)).scalar_one())


def outbox_result(ctx: Context, tracking: str) -> object:
    return json.loads((ctx.config.folders.outbox / f"{tracking}.json").read_text())


@pytest.mark.parametrize("envelope", ["mime", "soap"])
def test_realtime_partner_answers_the_call_itself(rig: CoreRig, envelope: str) -> None:
    """A 270 and a 278 to a CORE partner come back as 200 with the mapped result (the outbox file's
    JSON), each sent once in the configured envelope style."""
    server = rig.server()
    ctx = rig.context(server, envelope=envelope)
    key = add_client(ctx, "billing")
    with serving(ctx.config) as port:
        api = Api("127.0.0.1", port)
        status, _, elig = api.call("POST", "/eligibility", sample("270-subscriber"), key=key)
        assert status == 200, elig
        assert (elig["state"], elig["status"]) == ("answered", "active")
        assert elig["eligibility"] is not None
        status, _, auth = api.call("POST", "/authorizations", sample("278-dme-rental"), key=key)
        assert status == 200, auth
        assert auth["kind"] == "278"
        assert auth["authorization"] is not None
        assert api.call("GET", f"/requests/{elig['tracking_number']}", key=key)[2] == elig
        cert = auth["authorization"]["certification_number"]
        assert cert
        assert api.call("GET", f"/authorizations/{cert}", key=key)[2] == auth
        assert api.call("GET", f"/authorizations/{elig['tracking_number']}", key=key)[0] == 404
    assert elig == outbox_result(ctx, elig["tracking_number"])
    assert auth == outbox_result(ctx, auth["tracking_number"])
    assert [r.style for r in server.received] == [envelope, envelope]


def test_payer_slower_than_the_budget_gets_202_then_the_result(rig: CoreRig) -> None:
    """Past the budget the call answers 202 with the Location; the late answer is still stored and
    appears there; a retry with the same Idempotency-Key replays the 202 and sends nothing again."""
    server = rig.server(latency_seconds=3.0)
    ctx = rig.context(server, timeout_seconds=30.0)  # the payer is slow, not gone
    key = add_client(ctx, "billing")
    config = dataclasses.replace(ctx.config, api=ApiConfig(realtime_budget_seconds=0.5))
    with serving(config) as port:
        api = Api("127.0.0.1", port)
        body = sample("270-subscriber")
        status, headers, accepted = api.call(
            "POST", "/eligibility", body, key=key, headers={"Idempotency-Key": "slow-1"}
        )
        assert status == 202, accepted
        location = headers["Location"].removeprefix("/api/v1")
        deadline = time.monotonic() + 60
        result = api.call("GET", location, key=key)[2]
        while result["state"] != "answered":
            assert time.monotonic() < deadline, "the late answer never arrived"
            time.sleep(0.2)
            result = api.call("GET", location, key=key)[2]
        assert result["status"] == "active"
        again = api.call("POST", "/eligibility", body, key=key, headers={"Idempotency-Key": "slow-1"})
        assert (again[0], again[2]) == (202, accepted)
    assert len(server.received) == 1


def test_demo_realtime_answers_every_sample_through_the_api(tmp_path: Path) -> None:
    """``x12gw demo --realtime``: every sample request answered by CORE within its API call (MIME for
    the 270s, SOAP for the 278s), and the demo's table printed with each outcome."""
    out = io.StringIO()
    assert run_realtime_demo(keep=tmp_path / "ws", timeout=60, out=out) == 0, out.getvalue()
    text = out.getvalue()
    assert text.count(" 200 ") == len(list((ROOT / "sample_edi" / "requests").glob("*.json")))
    for status in ("inactive", "active", "cancelled", "approved", "modified", "partially_approved", "denied"):
        assert f"  {status}  " in text or f"  {status}\n" in text, status
    assert "tracking number" in text


def test_purge_removes_a_finished_calls_idempotency_record(rig: CoreRig) -> None:
    """The stored response of a call (sealed PHI) goes with its request when ``purge`` removes it."""
    ctx = rig.context(rig.server())
    key = add_client(ctx, "billing")
    with serving(ctx.config) as port:
        status, _, _ = Api("127.0.0.1", port).call(
            "POST", "/eligibility", sample("270-subscriber"), key=key, headers={"Idempotency-Key": "p-1"}
        )
    assert status == 200
    counts = purge_rows(ctx.store, ctx.clock() + timedelta(days=1), dry_run=False)
    assert (counts["requests"], counts["api_requests"]) == (1, 1)
    with ctx.store.read() as tx:
        assert tx.conn.execute(select(func.count()).select_from(s.api_requests)).scalar_one() == 0


def test_a_retry_while_the_first_call_waits_is_told_to_come_back(rig: CoreRig) -> None:
    """While the first call with a key waits for its real-time answer, a retry gets 409 with
    Retry-After (no second request); once answered, the retry replays the 200."""
    server = rig.server(latency_seconds=2.0)
    ctx = rig.context(server, timeout_seconds=30.0)
    key = add_client(ctx, "billing")
    body = sample("270-subscriber")
    with serving(ctx.config) as port:
        api = Api("127.0.0.1", port)
        first: list[tuple[int, object]] = []
        caller = threading.Thread(
            target=lambda: first.append(
                api.call("POST", "/eligibility", body, key=key, headers={"Idempotency-Key": "w-1"})[::2]
            )
        )
        caller.start()
        deadline = time.monotonic() + 30
        while not recorded(ctx) and caller.is_alive():  # the first call is recorded, now waiting
            assert time.monotonic() < deadline
            time.sleep(0.02)
        status, headers, _ = api.call(
            "POST", "/eligibility", body, key=key, headers={"Idempotency-Key": "w-1"}
        )
        assert (status, headers["Retry-After"]) == (409, "1")
        caller.join()
        assert first[0][0] == 200
        again = api.call("POST", "/eligibility", body, key=key, headers={"Idempotency-Key": "w-1"})
        assert (again[0], again[2]) == first[0]
    assert len(server.received) == 1
