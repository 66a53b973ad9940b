"""The inbound stage's chunked path for 271s (a few statements per chunk) against the one-by-one path
(``_apply_record``): the same store, event log and outbox for the same files."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from gateway.lifecycle import FileState, RequestEvent, SetState
from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.runner import load_mapping_rules, open_context
from gateway.stages import inbound
from gateway.store import schema as s
from gateway.store.repos.envelopes import NewSet
from gateway.transport.keys import ensure_key, public_line
from tests.e2e_harness import config_text
from tests.store_fixtures import postgres_schema, require_postgres

RESPONSES = Path(__file__).resolve().parent.parent / "sample_edi" / "responses"
OURS = "ZZ:X12GATEWAY"
SENT = [f"EL-B{n:03d}" for n in range(1, 101)] + ["EL-0001", "BHT-ONLY"]


def frozen_clock() -> datetime:
    """One instant for every reading: the two paths read the clock a different number of times."""
    return datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def interchange(name: str, control: int, **replace: str) -> bytes:
    """A sample 271 interchange with its own ISA13/IEA02 and some text replaced."""
    text = (RESPONSES / name).read_text().replace("000000501", f"{control:09d}")
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.encode()


def response_file() -> bytes:
    """100 answers; an active then an inactive answer for one request and the active one again (a
    duplicate within the file); one matched only by BHT03; one matching nothing."""
    return b"".join(
        [
            interchange("271-batch-100.x12", 601),
            interchange("271-subscriber-active.x12", 602),
            interchange("271-subscriber-inactive.x12", 603),
            interchange("271-subscriber-active.x12", 602),  # the very same answer again
            interchange(
                "271-dependent-active.x12", 605, **{"TRN*2*EL-0002": "TRN*2*ZZ-9", "EL-0002": "BHT-ONLY"}
            ),
            interchange("271-dependent-active.x12", 606, **{"EL-0002": "NOBODY-1"}),
        ]
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def make_ctx(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Context]]:
    """Gateway contexts (one partner, a frozen clock, our 270s sent), each on its own empty SQLite
    database or PostgreSQL schema."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", "test-member-hash-key-0123456789abcdef")
    ensure_key(tmp_path / "keys" / "host")
    opened: list[Context] = []
    with ExitStack() as schemas:

        def make(name: str) -> Context:
            url = ""
            if request.param == "postgresql":
                url = schemas.enter_context(postgres_schema(require_postgres()))
            text = config_text(
                port=22,
                host_key_line=public_line(tmp_path / "keys" / "host"),
                key_file=tmp_path / "keys" / "host",
                remote_root="",
                database_url=url,
            )
            ctx = open_context(parse_config(tomllib.loads(text), tmp_path / name), clock=frozen_clock)
            opened.append(ctx)
            _send_requests(ctx)
            return ctx

        yield make
        for ctx in opened:
            ctx.store.close()


def _send_requests(ctx: Context) -> None:
    """Our 270s, each in its own sent set carrying its tracking number as TRN02 and BHT03."""
    with ctx.store.begin() as tx:
        for tracking in SENT:
            tx.requests.insert(
                tracking_number=tracking,
                kind="270",
                payer_id="ACME01",
                partner="sim",
                member_id_hash="a" * 64,
                payload={"client_reference": f"ref-{tracking}"},
            )
        for ev in (RequestEvent.CLAIM_FOR_BATCH, RequestEvent.QUEUE, RequestEvent.SEND):
            tx.requests.transition_many(SENT, ev)
        out = tx.files.record(
            direction="out",
            partner="sim",
            name="out.x12",
            sha256="0" * 64,
            size=1,
            payload_path=None,
            state=FileState.QUEUED,
        )
        ic = tx.envelopes.record_interchange(file_id=out.id, control_number=1, sender=OURS, receiver="ZZ:X")
        g = tx.envelopes.record_group(interchange_id=ic.id, control_number=1, functional_id="HS", version="x")
        ids = {r.tracking_number: r.id for r in tx.requests.query(limit=1000)}
        sets = [
            NewSet(ic.id, g.id, f"{n:04d}", "270", (t,), t, SetState.QUEUED, ids[t])
            for n, t in enumerate(SENT)
        ]
        tx.envelopes.record_sets(sets)


def _downloaded(ctx: Context, data: bytes, name: str) -> int:
    """A file from the simulator partner recorded as downloaded, as the exchange stage leaves it."""
    sha, path = ctx.payloads.put(data)
    with ctx.store.begin() as tx:
        row = tx.files.record(
            direction="in",
            partner="sim",
            name=name,
            sha256=sha,
            size=len(data),
            payload_path=str(path),
            state=FileState.DOWNLOADED,
        )
    return row.id


def _process(ctx: Context, data: bytes, name: str) -> None:
    _downloaded(ctx, data, name)
    inbound.process_downloaded(ctx, load_mapping_rules(ctx.config))


def _snapshot(ctx: Context) -> dict[str, Any]:
    """Everything the stage writes: event log (order included), requests, results, sets, outbox."""
    with ctx.store.read() as tx:
        c = tx.conn
        changes = [tuple(r) for r in c.execute(select(s.state_changes).order_by(s.state_changes.c.id))]
        requests = [tuple(r) for r in c.execute(select(s.requests).order_by(s.requests.c.id))]
        results = [
            tuple(r) for r in c.execute(select(s.eligibility_results).order_by(s.eligibility_results.c.id))
        ]
        sets = [tuple(r) for r in c.execute(select(s.transaction_sets).order_by(s.transaction_sets.c.id))]
    outbox = {p.name: p.read_bytes() for p in sorted(ctx.config.folders.outbox.iterdir())}
    return {"changes": changes, "requests": requests, "results": results, "sets": sets, "outbox": outbox}


def test_chunked_271s_leave_exactly_what_one_by_one_leaves(
    make_ctx: Callable[[str], Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matches by trace and by BHT03, a second answer for a request within a chunk and across a chunk
    boundary, duplicates within a file and in a later file, an unmatched answer: row for row, event
    for event (in order) and byte for byte in the outbox, the two paths agree."""
    data = response_file()
    monkeypatch.setattr(inbound, "APPLY_CHUNK", 7)  # chunk boundaries inside the file
    chunked = make_ctx("chunked")
    _process(chunked, data, "r1.x12")
    _process(chunked, data, "r2.x12")
    monkeypatch.setattr(inbound, "BATCHED_RECORDS", ())
    single = make_ctx("single")
    _process(single, data, "r1.x12")
    _process(single, data, "r2.x12")
    got, want = _snapshot(chunked), _snapshot(single)
    assert got["changes"] == want["changes"]
    assert got == want
    doc = json.loads(got["outbox"]["EL-0001.json"])
    assert (doc["state"], doc["status"]) == ("answered", "inactive")  # the later answer won
    dups = [c for c in got["changes"] if c[1] == "response" and c[4] == "duplicate"]
    assert sum(c[6]["interchange"] == "000000602" for c in dups) == 3  # once in the file, twice after
    assert any(c[1] == "response" and c[4] == "unmatched" for c in got["changes"])


def _statements(ctx: Context, data: bytes, name: str) -> int:
    """How many SQL statements processing one downloaded file takes (claim to delivery)."""
    file_id = _downloaded(ctx, data, name)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = ctx.store.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        with ctx.store.begin() as tx:
            claimed = inbound.claim_downloaded(ctx, tx, file_id)
        assert claimed is not None
        inbound.process_file(ctx, claimed, load_mapping_rules(ctx.config))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(statements)


def test_a_hundred_271s_take_the_statements_of_one(make_ctx: Callable[[str], Context]) -> None:
    """Matching, storing and delivering 100 answers of one interchange takes about as many SQL
    statements as one answer (a few per chunk, none per answer)."""
    ctx = make_ctx("count")
    one = _statements(ctx, interchange("271-subscriber-active.x12", 701), "one.x12")
    hundred = _statements(ctx, (RESPONSES / "271-batch-100.x12").read_bytes(), "hundred.x12")
    assert hundred - one < 10, (one, hundred)


def test_records_kept_unpacked_for_a_small_file_equal_the_packed_ones(
    make_ctx: Callable[[str], Context],
) -> None:
    """A small file's records wait as they are, a large one's pickled and compressed in an unlinked
    spool file beside the payloads (positions in memory): the responses applied are the same."""
    ctx = make_ctx("keep")
    opts = inbound._options(ctx, ctx.config.partner("sim"))
    rules = load_mapping_rules(ctx.config)
    data = response_file()
    kept = inbound._Scan.of([data], opts, rules)
    spool = inbound._Spool(ctx.payloads.root)
    try:
        packed = inbound._Scan.of([data], opts, rules, spool=spool)
        assert all(not isinstance(p.data, tuple) for p in kept.packed)
        assert all(isinstance(p.data, tuple) for p in packed.packed)
        assert list(kept.mapped()) == list(packed.mapped())
        assert not list(ctx.payloads.root.glob(".spool-*"))  # never a name another process could open
    finally:
        spool.close()
    assert len(kept.packed) == 105
    assert len(data) < inbound.KEEP_RECORDS_BYTES  # the stage keeps this file's records
