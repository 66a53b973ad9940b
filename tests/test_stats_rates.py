"""``x12gw stats`` figures that were wrong: the acceptance rate must count a TA1 rejection (every set
of the interchange is rejected, though no 999 comes for it), and a pended 278 has no turnaround yet
(it is still waiting for its decision). Real run: gateway, SFTP, clearinghouse simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.operators.queries import compute_stats
from gateway.transport.keys import ensure_key, public_line
from payersim.scenario import Scenario
from payersim.simulator import ClearinghouseSimulator
from tests.e2e_harness import SCENARIO, Harness, make_harness

PEND_RULE = '\n[[rules]]\nprocedure = "E0601"\nreview = "pend"\n'


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Harness]:
    client = ensure_key(tmp_path / "keys" / "client")  # noqa: F841 - written to disk for the config
    host_key = ensure_key(tmp_path / "keys" / "host")
    root = tmp_path / "clearinghouse"
    for folder in ("inbound", "outbound"):
        (root / folder).mkdir(parents=True)
    scenario = Scenario.from_toml(SCENARIO + PEND_RULE, "stats scenario")
    keys = (public_line(tmp_path / "keys" / "client"),)
    sim = ClearinghouseSimulator(root, scenario, host_key=host_key, authorized_keys=keys).start()
    h = make_harness(
        tmp_path / "gw",
        port=sim.port,
        host_key_line=sim.host_key_line,
        key_file=tmp_path / "keys" / "client",
        remote_root="",
        clearinghouse=root,
    )
    yield h
    h.ctx.store.close()
    sim.stop()


def test_acceptance_rate_counts_ta1_and_pended_is_not_turnaround(world: Harness) -> None:
    """One set rejected by TA1, two accepted: 2/3 accepted; only the answered 270 has a turnaround."""
    h = world
    h.drop_sample("270-subscriber", trace_number="REJ-TA1", subscriber__member_id="ZZMREJECTTA1")
    assert h.run_until(lambda: h.settled("REJ-TA1"), timeout=30)
    h.drop_sample("270-subscriber")
    h.drop_sample("278-dme-rental")
    pended = "AU-0003"
    assert h.run_until(
        lambda: h.settled("EL-0001") and pended in h.requests() and h.requests()[pended].state == "pended",
        timeout=30,
    ), {k: v.state for k, v in h.requests().items()}
    with h.ctx.store.read() as tx:
        doc = compute_stats(tx, since=None, until=None)
    acks = doc["acknowledgments"]
    assert (acks["acknowledged"], acks["accepted"], acks["rejected"]) == (3, 2, 1)
    assert acks["acceptance_rate"] == round(2 / 3, 4)
    kinds = {t["kind"]: t["count"] for t in doc["turnaround"]}
    assert kinds == {"270": 1}, "a pended 278 is not answered: no turnaround yet"
