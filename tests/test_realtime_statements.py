"""How much store work one real-time API call costs: statements and write transactions per call,
pinned as upper bounds (counts, not timings), so a change that adds a read-back or splits a
transaction on the hot path shows up here. ``bench/bench_api.py`` measures what the counts cost."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from gateway.lifecycle import RequestState
from gateway.realtime.dispatch import send_realtime
from gateway.stages import batching
from gateway.store import driver_commits
from tests.api_support import Api, sample, serving
from tests.core_support import drop_request, request_state
from tests.test_api import add_client

if TYPE_CHECKING:
    from gateway.runtime.context import Context
    from tests.core_support import CoreRig

pytest_plugins = ["tests.core_fixtures"]

# measured when the bounds were set: 25 statements on SQLite and PostgreSQL (26 before the call's request was
# inserted already claimed and queued instead of inserted new and claimed by an UPDATE; 27 before the
# answer's result document took its request as the answer's transaction left it, reason and payload
# returned by the UPDATE that moved it from queued, instead of reading it back; 28 before the answer's
# requests were looked up by its trace and its BHT03 in one SELECT instead of two; 29 before the API
# body and our 270 were
# kept in one INSERT of two rows with the call's commit; 32 before the answer's transaction took
# the request it moved from queued as it left it: its head, its response fingerprints and its result
# not read back; 33 before the answer's result document was rendered from the 271 outcome its
# transaction wrote instead of reading it back; 33 on SQLite
# and on PostgreSQL before that, 30 before the call's
# four payloads were kept in the store: one INSERT each for the API body and our 270, one for the 271
# and its CORE envelope, instead of four files created and synced), 3 write and no read
# transactions per call: the call recorded and queued with its first attempt started (one commit,
# 9 statements: the call's file inserted already claimed and accepted, the outbound file already
# uploading, the request inserted claimed and queued, the event log in one multi-row INSERT; its
# tracking and control numbers come from the process's blocks, one commit per 64 calls, taken by the
# warm-up call here, so the calls counted never take one), the answer recorded and processed (one
# commit, 18: the outbound file's guarded UPDATE instead of a locked read, the answer's file inserted
# already processed, its sets and request moved from the states the call queued them in without
# reading them back), the answer delivered after its result file (one commit, 2); one more
# statement and read transaction allowed in the three calls, for a remembered client that expires
# between the warm-up call and them on a slow machine. Before:
# 40 / 41 (event-log rows by executemany, one step per row: 57 rows stepped per call on SQLite, now
# 30); 47 / 49 in 6 write transactions (the call; the claim and its numbers; the batch; the answer;
# its processing; the delivery); before that 50 / 52 with 3 read transactions; 63 on SQLite (BEGINs
# were run through SQLAlchemy and counted; now they go to the driver's connection and are not), 53
# on PostgreSQL; before that 96 statements, 6 write and 5 read transactions. ``bench/bench_api.py
# --lock-stats`` measures what they cost (the writer lock's held time per call).
MAX_STATEMENTS = {"sqlite": 26, "postgresql": 26}
# parameter sets the statements run with (an executemany steps once per set, each step taken while
# the writer lock is held): one per statement, the event log being one multi-row INSERT, except the
# answer's two payloads (the 271 and its CORE envelope: one INSERT stepped twice); measured 27 (28
# before the claim's UPDATE was folded into the request's INSERT, 29 before the request's read-back was
# left out, 30 before the trace and BHT03 lookups were one SELECT, 33 before the fresh request's reads
# were left out, 34 before the read-back of its 271 outcome was)
MAX_ROWS = {"sqlite": 28, "postgresql": 28}
MAX_WRITE_TRANSACTIONS = 3
MAX_TRANSACTIONS = 4
CALLS = 3


@dataclass
class Counts:
    statements: int = 0
    rows: int = 0  # parameter sets: an executemany's count, 1 for a plain statement
    fast_statements: int = 0  # of them, run by ``gateway.store.fastsql`` (no execution context)
    commits: int = 0
    write_commits: int = 0


@contextmanager
def counting(ctx: Context) -> Iterator[Counts]:
    """Statements and commits on the store of ``ctx`` (any engine over the same database) while open."""
    counts = Counts()
    database = ctx.store.engine.url.render_as_string(hide_password=False)

    def ours(conn: Connection) -> bool:
        return conn.engine.url.render_as_string(hide_password=False) == database

    def on_execute(conn: Connection, *args: Any) -> None:
        if ours(conn):
            counts.statements += 1
            counts.rows += len(args[2]) if args[4] else 1
            counts.fast_statements += args[3] is None

    def on_commit(conn: Connection) -> None:
        if ours(conn):
            counts.commits += 1
            counts.write_commits += not conn.get_execution_options().get("x12gw_read_only", False)

    event.listen(Engine, "before_cursor_execute", on_execute)
    event.listen(Engine, "commit", on_commit)
    on_driver = driver_commits()
    try:
        yield counts
    finally:
        event.remove(Engine, "before_cursor_execute", on_execute)
        event.remove(Engine, "commit", on_commit)
        # the SQLite writers' shared connection commits on the driver: no ``commit`` event for those
        driven = driver_commits() - on_driver
        counts.commits += driven
        counts.write_commits += driven


def test_a_realtime_eligibility_call_stays_within_its_statement_budget(
    rig: CoreRig, database_url: str | None
) -> None:
    """One API eligibility call answered by a CORE partner runs at most MAX_STATEMENTS statements
    (stepping at most MAX_ROWS parameter sets) in at most MAX_WRITE_TRANSACTIONS write transactions
    (SQLite and PostgreSQL), each call answered 200."""
    ctx = rig.context(rig.server(), database_url=database_url)
    key = add_client(ctx, "billing")
    with serving(ctx.config) as port:
        api = Api("127.0.0.1", port)

        def call(n: int) -> int:
            body = sample("270-subscriber") | {"trace_number": f"ST-{n:04d}"}
            return api.call("POST", "/eligibility", body, key=key)[0]

        assert call(0) == 200  # the first call also checks the schema, loads the maps...
        with counting(ctx) as counts:
            statuses = [call(n) for n in range(1, CALLS + 1)]
    assert statuses == [200] * CALLS
    assert counts.statements <= MAX_STATEMENTS[ctx.store.engine.dialect.name] * CALLS, counts
    assert counts.rows <= MAX_ROWS[ctx.store.engine.dialect.name] * CALLS, counts
    assert counts.fast_statements > counts.statements // 2, counts  # the fast path's are counted too
    assert counts.write_commits <= MAX_WRITE_TRANSACTIONS * CALLS, counts
    assert counts.commits <= MAX_TRANSACTIONS * CALLS, counts


def test_a_request_said_to_be_new_but_already_queued_still_has_its_file_sent(rig: CoreRig) -> None:
    """``send_realtime(new_for=...)`` skips reading the request back; when the run loop queued it
    meanwhile, its claim takes nothing and the file it was queued in is sent: answered, one POST."""
    server = rig.server()
    ctx = rig.context(server)
    rid = drop_request(ctx, "270-subscriber", "RT-NEWFOR")
    assert batching.batch_partner(ctx, ctx.config.partner("acme"), rid) == 1  # queued, not sent
    assert send_realtime(ctx, rid, budget_seconds=15.0, new_for="acme") is True
    assert request_state(ctx, rid) == RequestState.ANSWERED
    assert len(server.received) == 1
