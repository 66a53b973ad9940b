"""``x12gw status``: the gateway's health in one look, for a person or a monitoring check.

What an on-call operator asks first: can we reach every clearinghouse (connected, paused and why,
when we last exchanged a file), how deep the queues are, how long the oldest request has waited for
its answer, what is overdue and what sits in quarantine. The verdict maps to the exit code a
monitoring check uses (Nagios style): 0 ok, 1 warning (overdue acknowledgments or requests,
quarantined files), 2 critical (a partner paused or not recovered from a pause; the database
unreachable). Everything here is read from the store, so it works while ``x12gw run`` is running,
between ``run --once`` cycles, and on another host.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.lifecycle import FileState, PartnerState, RequestState, SetState
from gateway.runtime.config import GatewayConfig, PartnerConfig
from gateway.runtime.filemask import mask_file_name
from gateway.runtime.health import stored_move
from gateway.store import Tx

OK, WARNING, CRITICAL = 0, 1, 2
VERDICTS = {OK: "ok", WARNING: "warning", CRITICAL: "critical"}
# still waiting for an answer (overdue requests are counted on their own)
UNANSWERED = (
    RequestState.NEW,
    RequestState.BATCHING,
    RequestState.QUEUED,
    RequestState.SENT,
    RequestState.ACKNOWLEDGED,
)
ACK_SCAN = 1000  # overdue acknowledgments counted up to this many (more is "at least")


@dataclass(frozen=True)
class Problem:
    level: int
    message: str

    def doc(self) -> dict[str, str]:
        return {"level": VERDICTS[self.level], "message": self.message}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def partner_status(tx: Tx, partner: PartnerConfig, now: datetime) -> dict[str, Any]:
    """One partner: paused (from the logged pause, until when and why), connected, last exchange."""
    move = stored_move(tx, partner.name)
    paused = move is not None and move.new_state == PartnerState.PAUSED
    detail = (move.detail or {}) if move is not None else {}
    until = (
        move.at + timedelta(minutes=float(detail.get("minutes", 0))) if paused and move is not None else None
    )
    latest = tx.files.query(partner=partner.name, limit=1)
    last = (
        {
            "at": _iso(latest[0].updated_at),
            "direction": latest[0].direction,
            "file": mask_file_name(latest[0].name),
        }
        if latest
        else None
    )
    return {
        "name": partner.name,
        "connected": not paused,
        "paused": paused,
        "paused_since": _iso(move.at) if paused and move is not None else None,
        "paused_until": _iso(until),
        "retrying": bool(paused and until is not None and until <= now),
        "paused_why": detail.get("reason") if paused else None,
        "last_exchange": last,
    }


def queue_depths(tx: Tx) -> dict[str, Any]:
    """Files per direction and state, requests per state."""
    files: dict[str, dict[str, int]] = {}
    for row in tx.files.count_states():
        files.setdefault(str(row["direction"]), {})[str(row["state"])] = int(row["count"])
    requests: dict[str, int] = {}
    for row in tx.requests.count():
        requests[str(row["state"])] = requests.get(str(row["state"]), 0) + int(row["count"])
    return {
        "files": {d: dict(sorted(states.items())) for d, states in sorted(files.items())},
        "requests": dict(sorted(requests.items())),
    }


def oldest_unanswered(tx: Tx, now: datetime) -> dict[str, Any] | None:
    """The request that has waited longest for its answer (by creation time), or None."""
    heads = [r for st in UNANSWERED for r in tx.requests.query(state=st, limit=1, oldest_first=True)]
    if not heads:
        return None
    row = min(heads, key=lambda r: (r.created_at, r.id))
    return {
        "tracking_number": row.tracking_number,
        "kind": row.kind,
        "partner": row.partner,
        "state": str(row.state),
        "created_at": _iso(row.created_at),
        "waiting_minutes": round((now - row.created_at).total_seconds() / 60, 1),
        "due_at": _iso(row.due_at),
        "past_due": row.due_at is not None and row.due_at < now,
    }


def gather(tx: Tx, config: GatewayConfig, now: datetime) -> tuple[int, dict[str, Any]]:
    """The status document and its verdict (OK, WARNING or CRITICAL)."""
    partners = [partner_status(tx, p, now) for p in config.partners]
    queues = queue_depths(tx)
    oldest = oldest_unanswered(tx, now)
    files = queues["files"]
    cutoff = now - timedelta(minutes=config.timeouts.ack_overdue_minutes)
    late_acks = len(tx.files.unacknowledged(sent_before=cutoff, limit=ACK_SCAN))
    overdue_acks = files.get("out", {}).get(FileState.ACK_OVERDUE, 0) + late_acks
    past_due = sum(
        1
        for st in (RequestState.SENT, RequestState.ACKNOWLEDGED)
        for _ in tx.requests.query(state=st, due_before=now, limit=ACK_SCAN)
    )
    overdue_requests = queues["requests"].get(RequestState.OVERDUE, 0) + past_due
    quarantined = sum(states.get(FileState.QUARANTINED, 0) for states in files.values())
    unmatched = sum(r["count"] for r in tx.envelopes.count_sets() if r["state"] == SetState.UNMATCHED)
    problems = [
        Problem(CRITICAL, f"partner {p['name']} paused: {p['paused_why'] or 'no reason logged'}")
        for p in partners
        if p["paused"]
    ]
    for count, what in (
        (overdue_acks, "sent file(s) without a 999/TA1 in time"),
        (overdue_requests, "request(s) without an answer in time"),
        (quarantined, "file(s) in quarantine"),
        (unmatched, "response(s) matching no request (log list --status unmatched)"),
    ):
        if count:
            problems.append(Problem(WARNING, f"{count} {what}"))
    verdict = max((p.level for p in problems), default=OK)
    doc = {
        "status": VERDICTS[verdict],
        "checked_at": _iso(now),
        "database": "reachable",
        "partners": partners,
        "queues": queues,
        "oldest_unanswered": oldest,
        "overdue_acks": overdue_acks,
        "overdue_requests": overdue_requests,
        "quarantined_files": quarantined,
        "unmatched_responses": unmatched,
        "problems": [p.doc() for p in problems],
    }
    return verdict, doc


def with_run_loops(
    verdict: int, doc: dict[str, Any], loops: list[dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    """Add what the run loops of this state folder report (``gateway.runtime.outage``): a run loop
    waiting for its database is critical even when this command could read it (SQLite on a full disk
    still reads)."""
    problems = [
        Problem(
            CRITICAL,
            f"run loop {loop.get('node')}: database unavailable since {loop.get('since')} "
            f"({loop.get('error') or 'no reason'}); retrying",
        )
        for loop in loops
        if loop.get("database") == "unavailable"
    ]
    verdict = max([verdict, *(p.level for p in problems)])
    keys = ("node", "host", "pid", "database", "since", "error")
    shown = [{k: loop.get(k) for k in keys} for loop in loops]
    doc = {
        **doc,
        "status": VERDICTS[verdict],
        "run_loops": shown,
        "problems": [*doc["problems"], *(p.doc() for p in problems)],
    }
    return verdict, doc


def unreachable(now: datetime, error: str) -> dict[str, Any]:
    """The document when the database cannot be opened (critical)."""
    return {
        "status": VERDICTS[CRITICAL],
        "checked_at": _iso(now),
        "database": "unreachable",
        "problems": [Problem(CRITICAL, f"database unreachable: {error}").doc()],
    }
