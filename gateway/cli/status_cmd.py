"""``x12gw status [--json] [--config FILE]``: partners, queues, what waits and what is overdue, with
a monitoring exit code (0 ok, 1 warning, 2 critical; see ``gateway.operators.status``)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from gateway.errors import ConfigError, StoreError
from gateway.operators import status
from gateway.operators.formatting import set_utc, shown_time, write_json
from gateway.operators.timespec import format_duration
from gateway.runtime.config import GatewayConfig, load_config
from gateway.runtime.context import utc_now
from gateway.runtime.outage import read_states
from gateway.runtime.storeopen import open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="health at a glance; exit 0 ok, 1 warning, 2 critical")
    p.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--utc", action="store_true", help="times in UTC (default: the local time zone)")
    p.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # a configuration error exits 2 (usage) like everywhere
    set_utc(bool(getattr(args, "utc", False)))
    now = utc_now()
    verdict, doc = _gather(config, now)
    # what the run loops here report (also when this command cannot reach the database itself)
    verdict, doc = status.with_run_loops(verdict, doc, read_states(config.folders.state, now))
    return _show(args.json, verdict, doc)


def _gather(config: GatewayConfig, now: datetime) -> tuple[int, dict[str, Any]]:
    try:
        store = open_store(config, role="operator")
    except (StoreError, ConfigError) as exc:  # a missing key or a stale schema is as bad as no database
        return status.CRITICAL, status.unreachable(now, str(exc))
    try:
        with store.read() as tx:
            return status.gather(tx, config, now)
    except StoreError as exc:
        return status.CRITICAL, status.unreachable(now, str(exc))
    finally:
        store.close()


def _show(as_json: bool, verdict: int, doc: dict[str, Any]) -> int:
    if as_json:
        write_json(doc, sys.stdout)
    else:
        for line in render(doc):
            print(line)
    return verdict


def render(doc: dict[str, Any]) -> list[str]:
    """The human view: verdict first, then what it is made of."""
    lines = [
        f"status: {doc['status'].upper()}  "
        f"(database {doc['database']}, checked {shown_time(doc['checked_at'])})"
    ]
    lines += [f"  {p['level']}: {p['message']}" for p in doc["problems"]]
    if doc["database"] != "reachable":
        return lines
    lines.append("partners")
    for p in doc["partners"]:
        last = p["last_exchange"]
        seen = (
            f"last file {shown_time(last['at'])} ({last['direction']} {last['file']})"
            if last
            else "no file yet"
        )
        state = "connected"
        if p["paused"]:
            state = f"PAUSED since {shown_time(p['paused_since'])}" + (
                " (retrying)" if p["retrying"] else f" until {shown_time(p['paused_until'])}"
            )
            state += f": {p['paused_why']}"
        lines.append(f"  {p['name']}: {state}; {seen}")
    queues = doc["queues"]
    lines.append("queues")
    lines.append("  requests  " + _counts(queues["requests"]))
    for direction, states in queues["files"].items():
        lines.append(f"  files {direction:<3} " + _counts(states))
    oldest = doc["oldest_unanswered"]
    if oldest is None:
        lines.append("oldest unanswered request: none")
    else:
        waited = format_duration(oldest["waiting_minutes"] * 60)
        due = " (past due)" if oldest["past_due"] else ""
        lines.append(
            f"oldest unanswered request: {oldest['tracking_number']} {oldest['kind']} "
            f"{oldest['state']}, waiting {waited}{due}"
        )
    lines.append(
        f"overdue: {doc['overdue_acks']} acknowledgment(s), {doc['overdue_requests']} request(s); "
        f"quarantined files: {doc['quarantined_files']}; "
        f"unmatched responses: {doc['unmatched_responses']}"
    )
    return lines


def _counts(states: dict[str, int]) -> str:
    return ", ".join(f"{state} {n}" for state, n in states.items()) or "-"
