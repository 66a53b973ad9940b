"""Log-based alerting sees what needs a person: 999 and TA1 rejections, quarantined files and decisions
in response sets we rejected are warning-level events (a partner pause is an error), never info.
Against the clearinghouse simulator over real SFTP, logs captured as the gateway writes them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from gateway.runtime.logsetup import configure_logging, reset_logging
from gateway.transport.keys import ensure_key, public_line
from tests.e2e_harness import ROOT, Harness, make_harness, start_simulator

BAD_271 = "bad-271-000000077.x12"


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=out)
    yield out
    reset_logging()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Harness]:
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
    yield h
    h.ctx.store.close()
    sim.stop()


def _events(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def _levels(out: io.StringIO, event: str) -> set[str]:
    return {str(e["level"]) for e in _events(out) if e["event"] == event}


def _rejected_271() -> bytes:
    """A 271 whose payer name segment is missing: the set is rejected on receipt (not a fatal file)."""
    lines = (ROOT / "sample_edi" / "responses" / "271-dependent-active.x12").read_bytes().splitlines(True)
    return b"".join(line for line in lines if not line.startswith(b"NM1*PR"))


def test_rejections_and_quarantines_are_warnings(world: Harness, capture: io.StringIO) -> None:
    """TA1 and 999 rejections, an inbox quarantine and a rejected 271 that answers nothing log at warning."""
    h = world
    h.drop_sample("270-subscriber", trace_number="REJ-TA1", subscriber__member_id="ZZMREJECTTA1")
    assert h.run_until(lambda: h.settled("REJ-TA1"), timeout=30)
    h.drop_sample("270-subscriber", trace_number="REJ-999", subscriber__member_id="ZZMREJECT999")
    h.drop("broken.json", b'{"type": "270", "trace_number": ')
    assert h.run_until(lambda: h.settled("REJ-999"), timeout=30)
    outbound = h.clearinghouse / "outbound"
    (outbound / f".{BAD_271}").write_bytes(_rejected_271())
    (outbound / f".{BAD_271}").rename(outbound / BAD_271)
    assert h.run_until(lambda: not (outbound / BAD_271).exists(), timeout=30)
    h.gateway.cycle()

    assert _levels(capture, "interchange rejected by TA1") == {"warning"}
    assert _levels(capture, "transaction set rejected by 999") == {"warning"}
    # the rejected 271 is still read (two verdicts, issue 13); it answers nothing of ours: a warning
    assert _levels(capture, "response matches no request") == {"warning"}
    inbox = [e for e in _events(capture) if e["event"] == "inbox file processed"]
    assert {e["level"] for e in inbox if e["state"] == "quarantined"} == {"warning"}
    assert {e["level"] for e in inbox if e["state"] == "accepted"} == {"info"}
    ta1 = next(e for e in _events(capture) if e["event"] == "interchange rejected by TA1")
    assert ta1["partner"] == "sim"
    assert ta1["note"]
