"""``x12gw nodes [--json]``: the gateway nodes sharing this database, what each holds, when last seen."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from gateway.runtime.config import load_config
from gateway.runtime.nodes import is_sqlite, list_nodes
from gateway.runtime.storeopen import open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "nodes", help="gateway nodes sharing the database: live or not, leases held, last seen"
    )
    p.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--live-within", type=float, default=120.0, help="seconds since last seen to count as live"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    url = config.database_url()
    store = open_store(config, role="operator")
    try:
        now = datetime.now(UTC)
        nodes = list_nodes(store, now)
    finally:
        store.close()
    live = timedelta(seconds=args.live_within)
    rows: list[dict[str, object]] = [
        {
            "node_id": n.node_id,
            "host": n.host,
            "pid": n.pid,
            "live": n.stopped_at is None and now - n.last_seen <= live,
            "started_at": n.started_at.isoformat(),
            "last_seen": n.last_seen.isoformat(),
            "stopped_at": n.stopped_at.isoformat() if n.stopped_at else None,
            "leases": list(n.leases),
            "claimed_requests": n.claimed_requests,
            "claimed_files": n.claimed_files,
        }
        for n in nodes
    ]
    if args.json:
        json.dump(
            {"database": "sqlite" if is_sqlite(url) else "postgresql", "nodes": rows}, sys.stdout, indent=2
        )
        sys.stdout.write("\n")
    else:
        print(f"database: {'SQLite (one node)' if is_sqlite(url) else 'PostgreSQL (shared)'}")
        for n in nodes:
            live_now = n.stopped_at is None and now - n.last_seen <= live
            state = "live" if live_now else ("stopped" if n.stopped_at else "silent")
            held = ", ".join([*n.leases, f"{n.claimed_requests} req", f"{n.claimed_files} files"])
            print(f"{n.node_id:30} {state:8} last seen {n.last_seen.isoformat()[:19]}  {held}")
    return 0 if rows else 1
