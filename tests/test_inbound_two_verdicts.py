"""End to end: a payer's 278 approval with an IG error still becomes the authorization record, and the
999 we send back still says what is wrong (issue 13, two verdicts kept apart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.lifecycle import RequestState
from gateway.transport.keys import ensure_key, public_line
from payersim.simulator import ClearinghouseSimulator
from tests.e2e_harness import ROOT, Harness, make_harness, start_simulator
from tests.x12text import fix_se


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Harness, ClearinghouseSimulator]]:
    """Gateway + the paramiko clearinghouse simulator on loopback."""
    ensure_key(tmp_path / "keys" / "client")
    host_key = ensure_key(tmp_path / "keys" / "host")
    sim = start_simulator(tmp_path / "clearinghouse", host_key, public_line(tmp_path / "keys" / "client"))
    h = make_harness(
        tmp_path / "gw",
        port=sim.port,
        host_key_line=sim.host_key_line,
        key_file=tmp_path / "keys" / "client",
        remote_root="",
        clearinghouse=sim.root,
    )
    yield h, sim
    h.ctx.store.close()
    sim.stop()


def _acknowledged(h: Harness) -> bool:
    req = h.requests().get("HOLD-278")
    return req is not None and req.state == RequestState.ACKNOWLEDGED


def _our_999s(h: Harness) -> list[bytes]:
    files = [p for p in (h.clearinghouse / "inbound").rglob("*") if p.is_file()]
    return [p.read_bytes() for p in files if b"ST*999*" in p.read_bytes()]


def test_278_with_ig_error_is_applied_and_our_999_rejects_it(
    world: tuple[Harness, ClearinghouseSimulator],
) -> None:
    """UM02 bad code in the payer's A1: request approved, record validation rejected, 999 IK5 R names UM02."""
    h, _ = world
    h.drop_sample("278-outpatient-mri", trace_number="HOLD-278", subscriber__member_id="ZZMHOLDRESP1")
    assert h.run_until(lambda: _acknowledged(h), timeout=30)
    tracking = h.requests()["HOLD-278"].tracking_number
    text = (ROOT / "sample_edi" / "responses" / "278resp-A1-certified.x12").read_text()
    text = text.replace("TRN*2*AU-0001*9999999999", f"TRN*2*{tracking}*9X12GATEWY")
    text = text.replace("TRN*2*AU-0001-1*9999999999", "TRN*2*HOLD-278-1*9X12GATEWY")
    text = text.replace("UM*HS*I*73", "UM*HS*Q*73")
    (h.clearinghouse / "outbound" / "resp-with-ig-error.x12").write_text(fix_se(text))

    assert h.run_until(lambda: h.settled("HOLD-278"), timeout=30), h.requests()["HOLD-278"].state
    result = h.result(tracking)
    assert result["status"] == "approved"
    auth = result["authorization"]
    assert auth["certification_number"] == "ACMEAUTH0001"
    assert auth["validation"] == "rejected"
    assert any(f["element"] == "UM02" and f["code"] == "7" for f in auth["findings"])
    assert h.run_until(lambda: any(b"IK4*2*1322*7" in d for d in _our_999s(h)), timeout=20)
    (ack,) = [d for d in _our_999s(h) if b"IK4*2*1322*7" in d]
    assert b"IK5*R*5" in ack


def test_response_addressed_to_someone_else_is_not_applied(
    world: tuple[Harness, ClearinghouseSimulator],
) -> None:
    """ISA08 not ours: TA1 R 009 goes back, the approval inside is not applied to our request."""
    h, _ = world
    h.drop_sample("278-outpatient-mri", trace_number="HOLD-278", subscriber__member_id="ZZMHOLDRESP1")
    assert h.run_until(lambda: _acknowledged(h), timeout=30)
    tracking = h.requests()["HOLD-278"].tracking_number
    text = (ROOT / "sample_edi" / "responses" / "278resp-A1-certified.x12").read_text()
    text = text.replace("TRN*2*AU-0001*9999999999", f"TRN*2*{tracking}*9X12GATEWY")
    text = text.replace("*ZZ*X12GATEWAY     *", "*ZZ*SOMEONEELSE    *", 1)
    (h.clearinghouse / "outbound" / "resp-not-for-us.x12").write_text(text)

    def ta1s() -> list[bytes]:
        files = [p for p in (h.clearinghouse / "inbound").rglob("*") if p.is_file()]
        return [p.read_bytes() for p in files if b"TA1*000000512*" in p.read_bytes()]

    assert h.run_until(lambda: bool(ta1s()), timeout=20)
    assert b"*R*009" in ta1s()[0]
    assert h.requests()["HOLD-278"].state == RequestState.ACKNOWLEDGED
