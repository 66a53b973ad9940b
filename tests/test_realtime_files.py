"""Files a real-time call creates, and the payloads it keeps in the store instead (``payload_blobs``):
pinned as a count of the files in the gateway's folders after N calls, plus what the blobs must still
do as files did (read by hash by every reader, owner-only and sealed, pruned by retention, rotated)."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from gateway.lifecycle import FileState
from gateway.operators.session import Session
from gateway.runtime.config import FOLDER_NAMES
from gateway.runtime.retention import purge_blobs
from gateway.runtime.rotation import rotate
from gateway.runtime.runner import open_context
from gateway.stages.outbox import batch_summary
from gateway.store import Store
from gateway.store import schema as s
from gateway.store.payloads import INLINE_MAX_BYTES, Payload, PayloadStore
from tests.api_support import Api, sample, serving
from tests.protection_support import write_config
from tests.test_api import add_client

if TYPE_CHECKING:
    from gateway.runtime.context import Context
    from tests.core_support import CoreRig

pytest_plugins = ["tests.core_fixtures"]

CALLS = 3
# what one call leaves in the folders: its result file (``outbox/<tracking>.json``). Before the
# payloads were kept in the store: 6 (four payload files, the result, a one-row ``summary-N.csv``).
FILES_PER_CALL = 1


def _files(ctx: Context) -> set[Path]:
    """Every file in the gateway's folders (the database and its companions are made at start)."""
    found: set[Path] = set()
    for name in FOLDER_NAMES:
        folder = getattr(ctx.config.folders, name)
        found |= {p for p in folder.rglob("*") if p.is_file()}
    return found


def _call(api: Api, key: str, n: int) -> str:
    """One real-time API eligibility call, answered 200; its tracking number."""
    body = sample("270-subscriber") | {"trace_number": f"RF-{n:04d}"}
    status, _, doc = api.call("POST", "/eligibility", body, key=key)
    assert status == 200, doc
    return str(doc["tracking_number"])


def _one_call(ctx: Context) -> None:
    key = add_client(ctx, "billing")
    with serving(ctx.config) as port:
        _call(Api("127.0.0.1", port), key, 0)


def test_a_realtime_call_creates_only_its_result_file(rig: CoreRig) -> None:
    """Each real-time API call answered 200 adds exactly its ``<tracking>.json`` to the folders: no
    payload file (its four payloads are blobs in the store) and no CSV summary."""
    ctx = rig.context(rig.server())
    key = add_client(ctx, "billing")
    with serving(ctx.config) as port:
        api = Api("127.0.0.1", port)
        _call(api, key, 0)  # the first call also makes the outbox and the server's own first files
        before = _files(ctx)
        trackings = [_call(api, key, n) for n in range(1, CALLS + 1)]
        created = _files(ctx) - before
    assert len(created) == FILES_PER_CALL * CALLS, sorted(p.name for p in created)
    assert {p.name for p in created} == {f"{t}.json" for t in trackings}
    assert not [p for p in _files(ctx) if p.name.startswith("summary-")]


def test_every_payload_of_a_realtime_call_is_read_back_by_its_hash(
    rig: CoreRig, database_url: str | None
) -> None:
    """The body, our 270, the 271 and its CORE envelope are found by SHA-256 by a fresh reader (no
    memory of the writes), bytes matching the hash; operators' ``Session.payload`` finds them too
    (SQLite and PostgreSQL)."""
    ctx = rig.context(rig.server(), database_url=database_url)
    _one_call(ctx)
    with ctx.store.read() as tx:
        rows = tx.files.query(limit=100)
        envelopes = [tx.audit.history("file", f.id) for f in rows if f.direction == "in"]
    shas = {f.sha256 for f in rows}
    for detail in (h.detail or {} for hist in envelopes for h in hist):
        if "envelope_sha256" in detail:
            shas.add(str(detail["envelope_sha256"]))
    assert len(shas) == 4  # body, 270, 271, envelope
    reader = PayloadStore(ctx.config.folders.payloads, ctx.store)
    session = Session(config=ctx.config, store=ctx.store)
    for sha in shas:
        data = reader.get(sha)
        assert hashlib.sha256(data).hexdigest() == sha
        assert b"".join(reader.chunks(sha)) == data
        assert session.payload(sha) == data
    assert not [p for p in ctx.config.folders.payloads.rglob("*") if p.is_file()]


def test_blobs_are_sealed_and_the_database_stays_owner_only(rig: CoreRig) -> None:
    """With the payload key (as ``x12gw run``/``serve`` have it) a blob is stored sealed: no member id
    or name in the raw column, tagged ``S``; the database file is still 0600."""
    ctx = rig.context(rig.server())
    _one_call(ctx)
    subscriber = sample("270-subscriber")["subscriber"]
    with ctx.store.engine.connect() as conn:
        raw = [bytes(r[0]) for r in conn.exec_driver_sql("SELECT data FROM payload_blobs")]
    assert len(raw) == 4
    for value in raw:
        assert value[:1] == b"S"
        assert subscriber["member_id"].encode() not in value
        assert subscriber["last_name"].encode() not in value
    database = Path(str(ctx.store.engine.url.database))
    assert database.stat().st_mode & 0o777 == 0o600


def test_large_payloads_stay_files_and_small_ones_wait_for_their_transaction(tmp_path: Path) -> None:
    """``stage`` writes a payload over INLINE_MAX_BYTES as a durable file at once; a small one is
    written nowhere until ``record`` keeps it in the caller's transaction, and a rolled-back
    transaction leaves no blob."""
    config, _ = write_config(tmp_path)
    ctx = open_context(config)
    try:
        big = ctx.payloads.stage(b"B" * (INLINE_MAX_BYTES + 1))
        assert big.path is not None
        assert big.path.read_bytes() == big.data
        small = ctx.payloads.stage(b"ISA*small")
        assert small.path is None
        assert small.payload_path is None
        _rolled_back(ctx, small, big)
        assert PayloadStore(config.folders.payloads, ctx.store).find(small.sha256) is None
        with ctx.store.begin() as tx:
            ctx.payloads.record(tx, small, big)
            ctx.payloads.record(tx, small)  # the same bytes again: one row
        with ctx.store.read() as tx:
            rows = tx.conn.execute(select(s.payload_blobs.c.sha256)).scalars().all()
        assert rows == [small.sha256]
        assert PayloadStore(config.folders.payloads, ctx.store).get(small.sha256) == b"ISA*small"
    finally:
        ctx.store.close()


def _rolled_back(ctx: Context, *payloads: Payload) -> None:
    """``record`` in a transaction that then fails."""
    try:
        with ctx.store.begin() as tx:
            ctx.payloads.record(tx, *payloads)
            raise RuntimeError("rolled back")
    except RuntimeError:
        return


def test_purge_removes_old_blobs_no_file_row_names(tmp_path: Path) -> None:
    """``purge_blobs`` deletes blobs older than the cutoff that no ``files`` row names (a dry run only
    counts them); a named one and a recent one stay."""
    config, _ = write_config(tmp_path)
    ctx = open_context(config)
    try:
        old = datetime(2015, 3, 1, tzinfo=UTC)
        named, stray, recent = (ctx.payloads.stage(d) for d in (b"named", b"stray", b"recent"))
        ctx.store.clock = lambda: old
        with ctx.store.begin() as tx:
            ctx.payloads.record(tx, named, stray)
            tx.files.record(
                direction="in",
                partner="acme",
                name="a.x12",
                sha256=named.sha256,
                size=5,
                payload_path=None,
                state=FileState.DOWNLOADED,
            )
        ctx.store.clock = lambda: datetime.now(UTC)
        with ctx.store.begin() as tx:
            ctx.payloads.record(tx, recent)
        cutoff = datetime.now(UTC) - timedelta(days=365)
        assert purge_blobs(ctx.store, cutoff, dry_run=True) == 1
        assert purge_blobs(ctx.store, cutoff, dry_run=False, batch=1) == 1
        reader = PayloadStore(config.folders.payloads, ctx.store)
        assert reader.find(stray.sha256) is None
        assert reader.get(named.sha256) == b"named"
        assert reader.get(recent.sha256) == b"recent"
    finally:
        ctx.store.close()


def test_purge_keeps_a_companion_as_long_as_the_payload_it_travels_with(tmp_path: Path) -> None:
    """A companion blob (``stage(companion_of=...)``) outlives the cutoff while a ``files`` row names
    the payload it travels with, and goes once nothing names that payload."""
    config, _ = write_config(tmp_path)
    ctx = open_context(config)
    try:
        ctx.store.clock = lambda: datetime(2015, 3, 1, tzinfo=UTC)
        kept, orphan = ctx.payloads.stage(b"kept-x12"), ctx.payloads.stage(b"orphan-x12")
        with_kept = ctx.payloads.stage(b"envelope-1", companion_of=kept.sha256)
        with_orphan = ctx.payloads.stage(b"envelope-2", companion_of=orphan.sha256)
        with ctx.store.begin() as tx:
            ctx.payloads.record(tx, kept, orphan, with_kept, with_orphan)
            tx.files.record(
                direction="in",
                partner="acme",
                name="answer.x12",
                sha256=kept.sha256,
                size=8,
                payload_path=None,
                state=FileState.DOWNLOADED,
            )
        assert purge_blobs(ctx.store, datetime.now(UTC), dry_run=False) == 2  # the orphan and its envelope
        reader = PayloadStore(config.folders.payloads, ctx.store)
        assert reader.get(with_kept.sha256) == b"envelope-1"
        assert reader.find(with_orphan.sha256) is None
        assert reader.find(orphan.sha256) is None
    finally:
        ctx.store.close()


def test_a_companion_is_a_blob_whatever_its_size(tmp_path: Path) -> None:
    """Only a blob row can say which payload keeps it, so a companion over INLINE_MAX_BYTES is not
    written as a file."""
    config, _ = write_config(tmp_path)
    ctx = open_context(config)
    try:
        big = ctx.payloads.stage(b"E" * (INLINE_MAX_BYTES + 1), companion_of="0" * 64)
        assert big.path is None
        assert big.companion_of == "0" * 64
    finally:
        ctx.store.close()


def test_purge_after_a_realtime_call_keeps_every_payload_its_rows_need(rig: CoreRig) -> None:
    """Past the payload cutoff, with the call's rows kept, ``purge_blobs`` removes none of the call's
    four payloads: the CORE envelope no row names stays with the 271 it carried."""
    ctx = rig.context(rig.server())
    _one_call(ctx)
    assert len(_raw_blobs(ctx.store)) == 4
    assert purge_blobs(ctx.store, datetime.now(UTC) + timedelta(days=1), dry_run=False) == 0
    assert len(_raw_blobs(ctx.store)) == 4


def test_only_batches_get_a_csv_summary(rig: CoreRig) -> None:
    """A CORE real-time partner's answers get no CSV summary; any other partner's files do, and none
    when ``[outbox] csv_summary`` is off."""
    ctx = rig.context(rig.server())
    assert batch_summary(ctx.config, "acme") is False  # the rig's partner: CORE real time
    assert batch_summary(ctx.config, "another") is True  # not (or no longer) configured: a batch
    off = dataclasses.replace(ctx.config, outbox=dataclasses.replace(ctx.config.outbox, csv_summary=False))
    assert batch_summary(off, "another") is False


def _raw_blobs(store: Store) -> dict[str, bytes]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT sha256, data FROM payload_blobs").all()
    return {str(sha): bytes(data) for sha, data in rows}


def test_keys_rotate_reseals_blobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``x12gw keys rotate`` re-encrypts blobs under the new key (and seals one a store without a key
    wrote plain): afterwards each reads back with the new key alone, none in the clear."""
    for name in ("X12GW_PAYLOAD_KEY", "X12GW_PAYLOAD_KEY_NEW"):
        monkeypatch.delenv(name, raising=False)
    config, _ = write_config(tmp_path)
    ctx = open_context(config)
    try:
        sealed = ctx.payloads.stage(b"ISA*CANARYTEST*sealed")
        with ctx.store.begin() as tx:
            ctx.payloads.record(tx, sealed)
    finally:
        ctx.store.close()
    with Store.open(config.database_url()) as plain_store:  # library use: no key ring
        plain = PayloadStore(config.folders.payloads, plain_store).stage(b"ISA*CANARYTEST*plain")
        with plain_store.begin() as tx:
            PayloadStore(config.folders.payloads, plain_store).record(tx, plain)
        before = _raw_blobs(plain_store)
    assert before[plain.sha256][:1] == b"P"
    rotate(config, which={"payload"}, say=lambda _m: None)
    ctx = open_context(config)
    try:
        after = _raw_blobs(ctx.store)
        reader = PayloadStore(config.folders.payloads, ctx.store)
        for payload in (sealed, plain):
            assert after[payload.sha256][:1] == b"S"
            assert after[payload.sha256] != before[payload.sha256]
            assert b"CANARYTEST" not in after[payload.sha256]
            assert reader.get(payload.sha256) == payload.data
    finally:
        ctx.store.close()
