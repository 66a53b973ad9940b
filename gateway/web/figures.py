"""Live figures from the store for ``/metrics``, ``/readyz`` and the console's dashboard.

Each function is one or two aggregate queries in a read transaction: computed when asked (a scrape,
a page view), never cached in the process, so the numbers are those of the database the run loop
writes, whichever node wrote them. Only counts, ages and codes leave here: never PHI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from gateway import lifecycle as lc
from gateway.operators.queries import percentile
from gateway.store import Tx
from gateway.store import schema as s

WAITING_REQUESTS = (
    lc.RequestState.NEW,
    lc.RequestState.QUEUED,
    lc.RequestState.SENT,
    lc.RequestState.ACKNOWLEDGED,
    lc.RequestState.PENDED,
)
WAITING_FILES = (lc.FileState.CLAIMED, lc.FileState.QUEUED, lc.FileState.UPLOADING, lc.FileState.DOWNLOADED)
ACCEPTED = ("A", "E")
RECENT = 2000  # acknowledgments looked at for the 999 latency
PAUSE_EVENTS = 1000  # partner events looked at to find each partner's latest state


def requests_by_state(tx: Tx) -> list[tuple[str, str, int]]:
    """(kind, state, count) of every request."""
    t = s.requests
    stmt = select(t.c.kind, t.c.state, func.count()).group_by(t.c.kind, t.c.state)
    return [(r[0], r[1], int(r[2])) for r in tx.conn.execute(stmt)]


def files_by_state(tx: Tx) -> list[tuple[str, str, int]]:
    """(direction, state, count) of every file."""
    t = s.files
    stmt = select(t.c.direction, t.c.state, func.count()).group_by(t.c.direction, t.c.state)
    return [(r[0], r[1], int(r[2])) for r in tx.conn.execute(stmt)]


def responses_by_decision(tx: Tx) -> list[tuple[str, str, int]]:
    """(271 or 278, status, count): the latest answer of every request that has one."""
    out: list[tuple[str, str, int]] = []
    for kind, t in (("271", s.eligibility_results), ("278", s.authorizations)):
        stmt = select(t.c.status, func.count()).group_by(t.c.status)
        out += [(kind, r[0], int(r[1])) for r in tx.conn.execute(stmt)]
    return out


def _outbound_sets() -> Any:
    ts, g, ic, f = s.transaction_sets, s.functional_groups, s.interchanges, s.files
    return (
        select(
            ts.c.ack_status.label("set_ack"), g.c.ack_status.label("group_ack"), ic.c.ack_status.label("ta1")
        )
        .select_from(ts)
        .join(ic, ic.c.id == ts.c.interchange_id)
        .join(f, f.c.id == ic.c.file_id)
        .outerjoin(g, g.c.id == ts.c.group_id)
        .where(f.c.direction == "out", ts.c.group_id.is_not(None))
    )


def acks_by_code(tx: Tx) -> list[tuple[str, str, int]]:
    """(level, code, count) of the partners' verdicts on our transaction sets: TA1 (interchange),
    999 AK9 (group) and 999 IK5 (set); ``none`` where no verdict has come yet."""
    sub = _outbound_sets().subquery()
    out: list[tuple[str, str, int]] = []
    for level, col in (("interchange", sub.c.ta1), ("group", sub.c.group_ack), ("set", sub.c.set_ack)):
        code = func.coalesce(col, "none")
        stmt = select(code, func.count()).select_from(sub).group_by(code)
        out += [(level, r[0], int(r[1])) for r in tx.conn.execute(stmt)]
    return out


def verdict(ta1: str | None, group_ack: str | None, set_ack: str | None) -> str | None:
    """One set's effective verdict: a rejecting TA1 rejects every set of its interchange, else the
    999's set code (or its group code), else the TA1 code (a TA1 with nothing else still counts)."""
    if ta1 == "R":
        return "R"
    return set_ack or group_ack or ta1


@dataclass(frozen=True)
class Acceptance:
    acknowledged: int
    accepted: int

    @property
    def rejected(self) -> int:
        return self.acknowledged - self.accepted

    @property
    def rate(self) -> float | None:
        return round(self.accepted / self.acknowledged, 4) if self.acknowledged else None


def acceptance(tx: Tx) -> Acceptance:
    """Accepted share of our acknowledged transaction sets, TA1 rejections included."""
    sub = _outbound_sets().subquery()
    stmt = select(sub.c.ta1, sub.c.group_ack, sub.c.set_ack, func.count()).group_by(
        sub.c.ta1, sub.c.group_ack, sub.c.set_ack
    )
    acknowledged = accepted = 0
    for ta1, group_ack, set_ack, count in tx.conn.execute(stmt):
        code = verdict(ta1, group_ack, set_ack)
        if code is None:
            continue
        acknowledged += int(count)
        accepted += int(count) if code in ACCEPTED else 0
    return Acceptance(acknowledged, accepted)


def ack_latencies(tx: Tx) -> list[float]:
    """Seconds from each recent outbound file's upload to the first 999 verdict on one of its groups."""
    sc, g, ic, f = s.state_changes, s.functional_groups, s.interchanges, s.files
    acks = (
        select(ic.c.file_id, func.min(sc.c.at).label("acked_at"))
        .select_from(sc)
        .join(g, g.c.id == sc.c.entity_id)
        .join(ic, ic.c.id == g.c.interchange_id)
        .join(f, f.c.id == ic.c.file_id)
        .where(sc.c.entity_type == "group.ack", f.c.direction == "out")
        .group_by(ic.c.file_id)
        .order_by(ic.c.file_id.desc())
        .limit(RECENT)
    ).subquery()
    sent = (
        select(sc.c.entity_id.label("file_id"), func.min(sc.c.at).label("sent_at"))
        .where(sc.c.entity_type == lc.Entity.FILE, sc.c.new_state == lc.FileState.SENT)
        .group_by(sc.c.entity_id)
    ).subquery()
    stmt = select(acks.c.acked_at, sent.c.sent_at).join(sent, sent.c.file_id == acks.c.file_id)
    out = []
    for acked_at, sent_at in tx.conn.execute(stmt):
        seconds = (_aware(acked_at) - _aware(sent_at)).total_seconds()
        if seconds >= 0:
            out.append(seconds)
    return out


def _aware(value: datetime) -> datetime:
    """Aggregates (``min``) bypass the column type on SQLite and come back naive UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def oldest_waiting(tx: Tx, now: datetime) -> list[tuple[str, str, float, int]]:
    """(entity, state, age in seconds of the oldest, count) for requests and files still in flight."""
    out: list[tuple[str, str, float, int]] = []
    for entity, t, states in (
        (lc.Entity.REQUEST, s.requests, WAITING_REQUESTS),
        (lc.Entity.FILE, s.files, WAITING_FILES),
    ):
        stmt = (
            select(t.c.state, func.min(t.c.updated_at), func.count())
            .where(t.c.state.in_(states))
            .group_by(t.c.state)
        )
        for state, oldest, count in tx.conn.execute(stmt):
            out.append((entity, state, max(0.0, (now - _aware(oldest)).total_seconds()), int(count)))
    return out


@dataclass(frozen=True)
class PartnerState:
    name: str
    paused: bool
    since: datetime | None
    reason: str | None
    pauses: int
    last_exchange: datetime | None


def partner_states(tx: Tx, names: Iterable[str], now: datetime) -> list[PartnerState]:
    """Each configured partner: paused now (its latest event is a pause still running), why, how often
    it was paused, and when a file last went to or came from it."""
    sc, f = s.state_changes, s.files
    events = tx.conn.execute(
        select(sc.c.new_state, sc.c.at, sc.c.detail)
        .where(sc.c.entity_type == lc.Entity.PARTNER)
        .order_by(sc.c.id.desc())
        .limit(PAUSE_EVENTS)
    ).all()
    out = []
    for name in names:
        mine = [e for e in events if (e.detail or {}).get("partner") == name]
        pauses = int(
            tx.conn.execute(
                select(func.count()).where(
                    sc.c.entity_type == lc.Entity.PARTNER,
                    sc.c.new_state == lc.PartnerState.PAUSED,
                    sc.c.detail["partner"].as_string() == name,
                )
            ).scalar_one()
        )
        last = tx.conn.execute(select(func.max(f.c.updated_at)).where(f.c.partner == name)).scalar_one()
        latest = mine[0] if mine else None
        paused = False
        if latest is not None and latest.new_state == lc.PartnerState.PAUSED:
            minutes = float((latest.detail or {}).get("minutes") or 0)
            paused = _aware(latest.at) + timedelta(minutes=minutes) > now
        out.append(
            PartnerState(
                name=name,
                paused=paused,
                since=_aware(latest.at) if latest is not None else None,
                reason=str((latest.detail or {}).get("reason") or "") or None if paused and latest else None,
                pauses=pauses,
                last_exchange=_aware(last) if last is not None else None,
            )
        )
    return out


def turnaround(tx: Tx, since: datetime | None = None) -> list[dict[str, Any]]:
    """Per request kind: median and p95 seconds from first ``sent`` to the first final answer
    (``answered``); a pend is not an answer."""
    sc, r = s.state_changes, s.requests
    stmt = (
        select(r.c.id, r.c.kind, sc.c.new_state, func.min(sc.c.at))
        .select_from(sc)
        .join(r, r.c.id == sc.c.entity_id)
        .where(
            sc.c.entity_type == lc.Entity.REQUEST,
            sc.c.new_state.in_((lc.RequestState.SENT, lc.RequestState.ANSWERED)),
        )
        .group_by(r.c.id, r.c.kind, sc.c.new_state)
    )
    if since is not None:
        stmt = stmt.where(r.c.created_at >= since)
    sent: dict[int, datetime] = {}
    answered: dict[int, tuple[str, datetime]] = {}
    for rid, kind, state, at in tx.conn.execute(stmt):
        if state == lc.RequestState.SENT:
            sent[rid] = _aware(at)
        else:
            answered[rid] = (kind, _aware(at))
    per: dict[str, list[float]] = {}
    for rid, (kind, at) in answered.items():
        if rid in sent and at >= sent[rid]:
            per.setdefault(kind, []).append((at - sent[rid]).total_seconds())
    return [
        {"kind": k, "count": len(v), "median_seconds": percentile(v, 0.5), "p95_seconds": percentile(v, 0.95)}
        for k, v in sorted(per.items())
    ]
