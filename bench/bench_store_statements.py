"""CPU per statement of the store's hot statements: SQLAlchemy's execution against the fast path
(``gateway.store.fastsql``), in one process on a SQLite file (or PostgreSQL with ``--postgres``).

Each statement kind runs N times per path inside one transaction (rolled back), in five rounds
alternating the paths, timed with ``time.process_time`` (CPU, not wall: the machine is shared);
prints the best round's microseconds per statement for both paths and their ratio.

    python bench/bench_store_statements.py [--repeat 3000] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Connection

from gateway.store import Store, fastsql, sqlite_url
from gateway.store import schema as s
from gateway.store.repos.base import KEY, WAS, by_key, guarded_update, inserting, keyed_update_many, prebuilt
from gateway.store.store import _ALLOCATE
from tests.store_fixtures import postgres_base_url, postgres_schema

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ROUNDS = 5
_INSERT_CHANGES = prebuilt(("insert_many", "state_changes"), s.state_changes.insert)


def _request(n: int) -> dict[str, Any]:
    return {
        "tracking_number": f"GW-BENCH-{n:010d}",
        "kind": "270",
        "payer_id": "PAYER1",
        "partner": "acme",
        "source_file_id": None,
        "state": "new",
        "due_at": NOW,
        "member_id_hash": "a" * 64,
        "client_reference_hash": None,
        "patient_hash": None,
        "payload": {"subscriber": {"member_id": "X", "last_name": "Doe"}, "service_types": ["30"]},
        "created_at": NOW,
        "updated_at": NOW,
    }


def cases(conn: Connection, row_id: int) -> dict[str, Callable[[Callable[..., Any], int], Any]]:
    """Statement kinds of a real-time call: each a function of (execute, n)."""
    change = {"entity_type": "request", "entity_id": row_id, "old_state": "new", "new_state": "new"}
    change |= {"at": NOW, "detail": {"node": "bench"}}
    allocation = {"seq_sender": "ZZ:US", "seq_receiver": "ZZ:P", "seq_kind": "ISA13", "last": 0}
    allocation |= {"maximum": 999_999_999, "restart": 2, "step": 1, "now": NOW}
    conn.execute(
        s.control_sequences.insert(),
        {
            "sender": "ZZ:US",
            "receiver": "ZZ:P",
            "kind": "ISA13",
            "next_value": 1,
            "wraps": 0,
            "updated_at": NOW,
        },
    )
    return {
        "insert request RETURNING *": lambda run, n: run(conn, inserting(s.requests), _request(n)).one(),
        "select request by id": lambda run, _n: run(conn, by_key(s.requests, "id"), {KEY: row_id}).first(),
        "guarded update RETURNING *": lambda run, _n: run(
            conn,
            guarded_update(s.requests, "id"),
            {KEY: row_id, WAS: "new", "state": "new", "updated_at": NOW},
        ).first(),
        "update by id (no rows)": lambda run, _n: run(
            conn,
            keyed_update_many(s.requests, ("state", "updated_at")),
            {KEY: row_id, "state": "new", "updated_at": NOW},
        ),
        "insert event-log row": lambda run, _n: run(conn, _INSERT_CHANGES, change),
        "control number allocation": lambda run, _n: run(conn, _ALLOCATE, allocation).first(),
    }


def _plain(conn: Connection, stmt: Any, params: Any = None) -> Any:
    return conn.execute(stmt, params)


def measure(store: Store, repeat: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    counter = iter(range(10**9))
    with store.engine.connect() as conn:
        trans = conn.begin()
        row_id = conn.execute(inserting(s.requests), _request(next(counter))).one().id
        for name, case in cases(conn, row_id).items():
            figures: dict[str, float] = {}
            for _ in range(ROUNDS):  # alternating, the best of each: the machine is shared
                for label, run in (("sqlalchemy_us", _plain), ("fast_us", fastsql.execute)):
                    for _ in range(50):  # warm: plans, caches, prepared statements
                        case(run, next(counter))
                    started = time.process_time()
                    for _ in range(repeat // ROUNDS):
                        case(run, next(counter))
                    took = (time.process_time() - started) * 1e6 / (repeat // ROUNDS)
                    figures[label] = min(figures.get(label, took), took)
            figures["ratio"] = figures["sqlalchemy_us"] / figures["fast_us"]
            out[name] = {k: round(v, 2) for k, v in figures.items()}
        trans.rollback()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3000)
    parser.add_argument("--postgres", action="store_true", help="a fresh schema at $X12GW_TEST_POSTGRES_URL")
    args = parser.parse_args()
    database = postgres_schema(postgres_base_url()) if args.postgres else nullcontext(None)
    with tempfile.TemporaryDirectory() as tmp, database as url:
        store = Store.open(url or sqlite_url(Path(tmp) / "bench.db"))
        try:
            result = measure(store, args.repeat)
        finally:
            store.close()
    print(json.dumps({"database": "postgresql" if args.postgres else "sqlite", **result}, indent=2))


if __name__ == "__main__":
    main()
