"""A real-time API call's request is inserted already claimed and queued (``batching.claimed_on_insert``,
``RequestsRepo.insert(then=, ahead=, lease=)``) instead of inserted ``new`` and claimed by an UPDATE
(``record_built``'s own claim): the row, the event log and the queued file must be the same both ways."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text

from gateway.errors import IllegalTransitionError
from gateway.lifecycle import Entity, RequestEvent, RequestState
from gateway.realtime.exchange import attempt_detail
from gateway.stages import batching
from gateway.store import hash_member_id, sealing
from gateway.web.apirecord import call_file_name
from tests.api_support import sample
from tests.core_support import REQUESTS
from transactions.outbound import request_kind
from transactions.requests_json import request_from_obj

if TYPE_CHECKING:
    from gateway.runtime.context import Context
    from gateway.store import RequestRow, Tx
    from tests.core_support import CoreRig

pytest_plugins = ["tests.core_fixtures"]
FIXED = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def _queue(ctx: Context, name: str, n: int, *, on_insert: bool) -> dict[str, Any]:
    """One request of sample ``name`` recorded and queued one way or the other; what came of it."""
    partner = ctx.config.partner("acme")
    req = request_from_obj(json.loads((REQUESTS / f"{name}.json").read_text()))
    tracking = f"CI-{n:04d}-{'ins' if on_insert else 'upd'}"
    final = replace(req, trace_number=tracking)
    built = batching.build_one(ctx, partner, final, (100 + n, 200 + n, 300 + n))
    assert built is not None
    detail = attempt_detail(partner) | {"payload_id": "fixed"}
    started: list[batching.Queued] = []

    def keep(_tx: Tx, queued: batching.Queued) -> None:
        started.append(queued)

    claimed = batching.claimed_on_insert(ctx) if on_insert else None
    with ctx.store.begin() as tx:
        row: RequestRow = tx.requests.insert(
            tracking_number=tracking,
            kind=request_kind(final).set_id,
            payer_id=final.payer.id,
            partner=partner.name,
            payload={"n": n},
            member_id_hash=hash_member_id("M1", ctx.member_key),
            detail={"source": "api"},
            then=claimed.then if claimed else (),
            ahead=claimed.ahead if claimed else (),
            lease=claimed.lease if claimed else None,
        )
        assert batching.record_built(
            ctx, tx, partner, row, built, on_queued=keep, start_upload=detail, inserted_queued=on_insert
        )
    with ctx.store.read() as tx:
        stored = tx.requests.get(row.id)
        history = [
            (c.old_state, c.new_state, {k: v for k, v in (c.detail or {}).items() if k != "file_id"})
            for c in tx.audit.history(Entity.REQUEST, row.id)
        ]
        changes = tx.audit.history(Entity.FILE, started[0].file.id)
        file_history = [(c.old_state, c.new_state, c.detail) for c in changes]
        queued_in = [c.detail for c in tx.audit.history(Entity.REQUEST, row.id) if c.new_state == "queued"]
    assert row.state == (RequestState.QUEUED if on_insert else RequestState.NEW)  # as inserted
    return {
        "row": (
            stored.state,
            stored.partner,
            stored.lease_owner,
            stored.lease_until,
            stored.kind,
            stored.due_at,
        ),
        "history": history,
        "file_history": file_history,
        "queued_in": [d == {"file_id": started[0].file.id} for d in queued_in],
        "sets": [(s.kind, s.tracking_number == tracking) for s in started[0].sets],
        "file": (started[0].kind, started[0].file.state),
    }


@pytest.mark.parametrize("name", ["270-subscriber", "270-dependent", "278-outpatient-mri"])
def test_inserting_claimed_and_queued_leaves_what_the_claims_update_left(rig: CoreRig, name: str) -> None:
    """The request inserted claimed and queued has the row, event log (new, batching, queued with
    their details) and queued file that inserting it new and claiming it by UPDATE gives."""
    if not (REQUESTS / f"{name}.json").exists():
        pytest.skip(f"no sample {name}")
    ctx = rig.context(rig.server())
    ctx = replace(ctx, clock=lambda: FIXED)  # both leases run to the same instant
    old = _queue(ctx, name, 1, on_insert=False)
    new = _queue(ctx, name, 2, on_insert=True)
    assert new == old
    assert [h[:2] for h in new["history"]] == [(None, "new"), ("new", "batching"), ("batching", "queued")]


def test_a_request_said_to_be_inserted_queued_must_be(rig: CoreRig) -> None:
    """``record_built(inserted_queued=True)`` of a request that is still ``new`` refuses to queue it
    (it would leave a ``new`` request in a file) before recording anything."""
    ctx = rig.context(rig.server())
    partner = ctx.config.partner("acme")
    final = replace(request_from_obj(sample("270-subscriber") | {"type": "270"}), trace_number="CI-NEW")
    built = batching.build_one(ctx, partner, final, (7, 8, 9))
    assert built is not None
    with ctx.store.begin() as tx:
        row = tx.requests.insert(
            tracking_number="CI-NEW",
            kind="270",
            payer_id=final.payer.id,
            partner=partner.name,
            payload={},
            member_id_hash=hash_member_id("M1", ctx.member_key),
        )
        with pytest.raises(ValueError, match="inserted queued"):
            batching.record_built(
                ctx, tx, partner, row, built, on_queued=lambda *_: None, inserted_queued=True
            )
        tx.requests.transition("CI-NEW", RequestEvent.CLAIM_FOR_BATCH)  # still new: the claim is legal
    with ctx.store.read() as tx:
        assert [f.direction for f in tx.files.query()] == []  # no file recorded for it


def test_an_illegal_step_on_insert_writes_nothing(rig: CoreRig) -> None:
    """``insert(then=...)`` with a step the lifecycle does not allow from ``new`` raises before any
    row is written."""
    ctx = rig.context(rig.server())
    with ctx.store.begin() as tx, pytest.raises(IllegalTransitionError):
        tx.requests.insert(
            tracking_number="CI-BAD",
            kind="270",
            payer_id="ACME01",
            partner="acme",
            payload={},
            member_id_hash=hash_member_id("M1", ctx.member_key),
            then=((RequestEvent.QUEUE, None),),
        )
    with ctx.store.read() as tx:
        assert tx.requests.get_by_tracking("CI-BAD") is None


def test_names_sealed_ahead_are_stored_as_sealed_in_the_transaction(rig: CoreRig) -> None:
    """A file name sealed before its transaction (``seal_names_ahead``) is stored as the token a
    key ring of the same key gives it fresh, and reads back as the name."""
    ctx = rig.context(rig.server())
    ring = sealing.ring_of(ctx.store.engine.dialect)
    assert ring is not None
    name = call_file_name("SA-0001")
    batching.seal_names_ahead(ctx, name)
    with ctx.store.begin() as tx:
        row = tx.files.record(
            direction="in", partner="api", name=name, sha256="0" * 64, size=1, payload_path=None
        )
    with ctx.store.read() as tx:
        stored = tx.conn.execute(text("SELECT name FROM files WHERE id = :i"), {"i": row.id}).scalar_one()
        assert tx.files.get(row.id).name == name
    fresh = sealing.KeyRing(ring.current.raw)
    assert stored == fresh.seal_name(name) != name
