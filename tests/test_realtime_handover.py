"""The real-time call's result handed over by its own delivery (no read back), and the files it writes."""

from __future__ import annotations

import copy
import json
import shutil
import threading
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from gateway.lifecycle import Entity, RequestEvent, RequestState, allows, target
from gateway.realtime import dispatch
from gateway.realtime.dispatch import send_realtime
from gateway.runtime.jsontext import dumps_indent2_sorted
from gateway.stages import inbound
from gateway.stages.outbox import rendered_results, result_document, summary_file_name, write_results
from gateway.store import Tx
from gateway.store.payloads import PayloadStore
from payersim.scenario import Outcome, Scenario
from tests.core_support import CoreRig, drop_request

pytest_plugins = ["tests.core_fixtures"]

BUDGET = 15.0  # generous: a test never passes or fails on wall time, only on what was stored


def _tracking(rig_ctx: Any, request_id: int) -> str:
    with rig_ctx.store.read() as tx:
        return str(tx.requests.get(request_id).tracking_number)


def test_the_handed_document_is_the_outbox_file_and_what_the_store_gives(rig: CoreRig) -> None:
    """``on_stored`` gets the document the delivery wrote: the outbox file's bytes, and the same
    document ``result_document`` reads from the store afterwards (the old path, kept for others)."""
    ctx = rig.context(rig.server())
    rid = drop_request(ctx, "270-subscriber", "RT-HAND-1")
    tracking = _tracking(ctx, rid)
    handed: list[dict[str, Any]] = []
    assert send_realtime(
        ctx, rid, budget_seconds=BUDGET, on_stored=lambda doc: handed.append(doc()), tracking=tracking
    )
    [doc] = handed
    assert (ctx.config.folders.outbox / f"{tracking}.json").read_bytes() == dumps_indent2_sorted(doc).encode()
    with ctx.store.read() as tx:
        assert result_document(tx, tx.requests.get(rid)) == doc
    assert doc["state"] == "answered"


def test_without_its_tracking_number_the_caller_reads_the_stored_request(rig: CoreRig) -> None:
    """A caller that names no tracking number gets the document read from the store, the same one."""
    ctx = rig.context(rig.server())
    rid = drop_request(ctx, "270-subscriber", "RT-HAND-2")
    handed: list[dict[str, Any]] = []
    assert send_realtime(ctx, rid, budget_seconds=BUDGET, on_stored=lambda doc: handed.append(doc()))
    tracking = _tracking(ctx, rid)
    assert json.loads((ctx.config.folders.outbox / f"{tracking}.json").read_text()) == handed[0]


def test_results_and_their_summary_are_written_together_and_documents_handed_after(rig: CoreRig) -> None:
    """``write_results`` with a summary writes both files (the summary as before) and hands each
    document to ``on_document`` only once both are in place."""
    ctx = rig.context(rig.server())
    rid = drop_request(ctx, "270-subscriber", "RT-HAND-3")
    tracking = _tracking(ctx, rid)
    outbox = ctx.config.folders.outbox
    seen: list[tuple[bool, bool]] = []

    def on_document(doc: dict[str, Any]) -> None:
        seen.append(
            ((outbox / f"{doc['tracking_number']}.json").exists(), (outbox / "summary-9.csv").exists())
        )

    assert write_results(ctx, [tracking], summary_name=summary_file_name(9), on_document=on_document) == 1
    assert seen == [(True, True)]
    lines = (outbox / "summary-9.csv").read_text().splitlines()
    assert lines[0].startswith("tracking_number,client_reference,kind,state")
    assert lines[1].startswith(f"{tracking},")
    assert not [p.name for p in outbox.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_payload_folder_removed_behind_the_store_is_made_again(tmp_path: Path) -> None:
    """PayloadStore remembers the folders it made; one removed meanwhile is made again on the next put."""
    payloads = PayloadStore(tmp_path / "payloads")
    sha, path = payloads.put(b"first")
    shutil.rmtree(path.parent)
    again, path2 = payloads.put(b"first")
    assert (again, path2) == (sha, path)
    assert payloads.get(sha) == b"first"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"


def test_delivery_threads_are_bounded_and_every_queued_delivery_still_runs() -> None:
    """At most ``most`` daemon threads start however many deliveries wait; each delivery runs once."""
    workers = dispatch._Workers(most=2)
    gate, ran, lock = threading.Event(), [], threading.Lock()
    finished = [threading.Event() for _ in range(5)]

    def job(n: int) -> None:
        gate.wait()
        with lock:
            ran.append(n)
        finished[n].set()

    for n in range(5):
        workers.submit(partial(job, n))
    started = [t for t in threading.enumerate() if t.name.startswith("core-") and t.daemon]
    assert workers._started == 2
    assert len(started) >= 2
    gate.set()
    for event in finished:
        assert event.wait(60)
    assert sorted(ran) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("outcome", ["active", "inactive", "not_found", "unable_to_respond"])
def test_documents_rendered_from_the_written_outcomes_equal_those_read_back(
    rig: CoreRig, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the answer's transaction, the documents rendered from the 271 outcomes it wrote and the
    request as its own UPDATEs left and returned it (no read back) equal those ``rendered_results``
    reads back (the reference), whatever the coverage; the handed document is the outbox file and
    what the store gives after the commit."""
    compared: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []

    def both(tx: Tx, trackings: list[str], written: Any = None, known: Any = None) -> list[dict[str, Any]]:
        assert written, "the answer's transaction hands the outcomes it wrote"
        assert known, "... and its requests as it left them"
        assert set(known) == set(trackings)
        fast = rendered_results(tx, trackings, written, known)
        compared.append((fast, rendered_results(tx, trackings)))
        return fast

    monkeypatch.setattr(inbound, "rendered_results", both)
    ctx = rig.context(rig.server(scenario=Scenario(defaults=Outcome(eligibility=outcome))))  # type: ignore[arg-type]
    rid = drop_request(ctx, "270-subscriber", f"RT-HAND-{outcome.replace('_', '')}")
    tracking = _tracking(ctx, rid)
    handed: list[dict[str, Any]] = []
    assert send_realtime(
        ctx, rid, budget_seconds=BUDGET, on_stored=lambda doc: handed.append(doc()), tracking=tracking
    )
    [(fast, reference)] = compared
    assert fast == reference
    assert [d["tracking_number"] for d in fast] == [tracking]
    assert handed == fast
    assert (ctx.config.folders.outbox / f"{tracking}.json").read_bytes() == dumps_indent2_sorted(
        reference[0]
    ).encode()
    with ctx.store.read() as tx:
        assert result_document(tx, tx.requests.get(rid)) == handed[0]


def test_requests_moved_from_queued_in_the_answers_transaction_are_not_read_back(
    rig: CoreRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer's transaction takes the heads of the requests it moved from ``queued`` as it left
    them (no response fingerprint, no stored result): what the chunk then knows of its candidates
    equals what reading them back gives (the reference, read in the same transaction)."""
    compared: list[tuple[dict[str, Any], dict[str, Any]]] = []
    original = inbound._Chunk._read

    def both(chunk: Any, responses: Any) -> None:
        assert chunk.outcome.fresh, "the answer's transaction hands its fresh requests"
        original(chunk, responses)
        reference = inbound._Chunk(chunk.ctx, chunk.tx, inbound.Outcome())
        original(reference, responses)
        fields = ("by_trace", "by_bht", "requests", "state", "seen", "current")
        compared.append(
            (  # copies: the chunk goes on to change what it read
                copy.deepcopy({f: getattr(chunk, f) for f in fields}),
                copy.deepcopy({f: getattr(reference, f) for f in fields}),
            )
        )

    monkeypatch.setattr(inbound._Chunk, "_read", both)
    ctx = rig.context(rig.server())
    rid = drop_request(ctx, "270-subscriber", "RT-HAND-FRESH")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET, tracking=_tracking(ctx, rid))
    [(fast, reference)] = compared
    assert fast == reference
    assert list(fast["requests"]) == [rid]


def test_no_request_answered_or_pended_ever_returns_to_queued() -> None:
    """What ``Outcome.fresh`` relies on: from ``answered`` or ``pended`` no chain of request events
    leads back to ``queued`` (so a request moved from ``queued`` has no response applied yet)."""
    edges: dict[str, set[str]] = {
        state: {
            target(Entity.REQUEST, state, event)
            for event in RequestEvent
            if allows(Entity.REQUEST, state, event)
        }
        for state in RequestState
    }
    seen: set[str] = set()
    todo: list[str] = [RequestState.ANSWERED, RequestState.PENDED]
    while todo:
        state = todo.pop()
        if state not in seen:
            seen.add(state)
            todo.extend(edges[state])
    assert RequestState.QUEUED not in seen
    assert RequestState.QUEUED in edges[RequestState.BATCHING]  # the check sees real edges
