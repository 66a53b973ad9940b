"""The console's read side: what its pages show, as plain dicts built on the operators' queries and
views (the same rows and chains ``x12gw log``/``auth`` print), plus the few lookups they lack."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Any
from urllib.parse import urlencode

from gateway.lifecycle import SetState
from gateway.operators.queries import (
    LOG_STATES,
    AuthFilter,
    LogFilter,
    authorization_rows,
    iter_log,
    percentile,
    request_row,
)
from gateway.operators.session import Session
from gateway.operators.views import Resolver, Subject, Views
from gateway.operators.x12view import parse_payload, segment_views
from gateway.store import RequestRow, Tx, hash_member_id
from gateway.web import figures

TYPES = ("270", "271", "278", "999", "TA1", "inbox", "file")
ACK_CODES = ("A", "E", "P", "R", "none")
PAGE = 100
EXPIRING_DAYS = 30
BROWSE_FIELDS = ("partner", "type", "direction", "state", "ack", "since", "until", "ref", "number", "page")


def day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class BrowseQuery:
    """The transaction browser's filters, from the query string (bad values are dropped, and said so)."""

    partner: str | None = None
    type: str | None = None
    direction: str | None = None
    state: str | None = None
    ack: str | None = None
    since: date | None = None
    until: date | None = None
    ref: str | None = None
    number: str | None = None
    page: int = 0

    @classmethod
    def parse(cls, params: dict[str, str]) -> tuple[BrowseQuery, list[str]]:
        problems: list[str] = []
        value = {k: (params.get(k) or "").strip() or None for k in BROWSE_FIELDS}
        if value["type"] is not None and value["type"] not in TYPES:
            problems.append(f"type must be one of {', '.join(TYPES)}")
            value["type"] = None
        if value["state"] is not None and value["state"] not in LOG_STATES:
            problems.append(f"state must be one of {', '.join(LOG_STATES)}")
            value["state"] = None
        if value["ack"] is not None and value["ack"] not in ACK_CODES:
            problems.append(f"ack must be one of {', '.join(ACK_CODES)}")
            value["ack"] = None
        if value["direction"] not in (None, "in", "out"):
            problems.append("direction must be in or out")
            value["direction"] = None
        days = {}
        for key in ("since", "until"):
            days[key] = day(value[key])
            if value[key] is not None and days[key] is None:
                problems.append(f"{key} must be a date (YYYY-MM-DD)")
        page = value["page"] or "0"
        return (
            cls(
                partner=value["partner"],
                type=value["type"],
                direction=value["direction"],
                state=value["state"],
                ack=value["ack"],
                since=days["since"],
                until=days["until"],
                ref=value["ref"],
                number=value["number"],
                page=int(page) if page.isdigit() and int(page) < 10_000 else 0,
            ),
            problems,
        )

    def log_filter(self) -> LogFilter:
        start = datetime.combine(self.since, time(), UTC) if self.since else None
        end = datetime.combine(self.until, time(), UTC) + timedelta(days=1) if self.until else None
        return LogFilter(
            partner=self.partner,
            type=self.type,
            direction=self.direction,
            status=self.state,
            ack=self.ack,
            since=start,
            until=end,
        )

    def query_string(self, **changes: Any) -> str:
        values = {k: getattr(self, k) for k in BROWSE_FIELDS} | changes
        return urlencode({k: str(v) for k, v in values.items() if v not in (None, "", 0)})


def log_page(session: Session, tx: Tx, q: BrowseQuery) -> tuple[list[dict[str, Any]], bool]:
    """One page of the transaction log under the filters, newest first."""
    rows = iter_log(session, tx, q.log_filter())
    page = list(islice(rows, q.page * PAGE, (q.page + 1) * PAGE + 1))
    return page[:PAGE], len(page) > PAGE


def requests_by_reference(tx: Tx, reference: str, key: bytes, limit: int = PAGE) -> list[RequestRow]:
    """Requests whose billing-system reference (the inbox file's ``client_reference``) is ``reference``,
    found by its keyed hash (the request JSON itself is sealed)."""
    return tx.requests.by_reference_hash(hash_member_id(reference, key), limit=limit)


def reference_rows(session: Session, tx: Tx, reference: str) -> list[dict[str, Any]]:
    key = session.member_key()
    return [request_row(session, tx, r) for r in requests_by_reference(tx, reference, key)]


def number_subjects(tx: Tx, number: str) -> list[Subject]:
    """What a tracking, trace or certification number (or a prefixed reference) names."""
    return Resolver(tx).resolve(number)


def dashboard(session: Session, tx: Tx) -> dict[str, Any]:
    """The dashboard's figures: partners, queues, acknowledgments, latency, turnaround, authorizations."""
    now = session.clock()
    requests = figures.requests_by_state(tx)
    files = figures.files_by_state(tx)
    latencies = figures.ack_latencies(tx)
    pended, more_pended = authorization_rows(session, tx, AuthFilter(status="pended"), 20)
    expiring, more_expiring = authorization_rows(
        session, tx, AuthFilter(expiring_within=timedelta(days=EXPIRING_DAYS)), 20
    )
    return {
        "now": now,
        "partners": figures.partner_states(tx, [p.name for p in session.config.partners], now),
        "request_states": _pivot(requests),
        "file_states": _pivot(files),
        "waiting": figures.oldest_waiting(tx, now),
        "acceptance": figures.acceptance(tx),
        "acks": figures.acks_by_code(tx),
        "latency": {
            "count": len(latencies),
            "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, 0.95),
        },
        "turnaround": figures.turnaround(tx),
        "unmatched": sum(r["count"] for r in tx.envelopes.count_sets() if r["state"] == SetState.UNMATCHED),
        "decisions": figures.responses_by_decision(tx),
        "pended": pended,
        "more_pended": more_pended,
        "expiring": expiring,
        "more_expiring": more_expiring,
        "expiring_days": EXPIRING_DAYS,
    }


def _pivot(rows: list[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for group, state, count in rows:
        out.setdefault(group, {})[state] = count
    return out


def subject_view(session: Session, tx: Tx, subject: Subject) -> tuple[dict[str, Any], list[str]]:
    """A request, file or set view as ``log show`` builds it, and the requests whose PHI it shows."""
    views = Views(session, tx)
    view = views.view(subject)
    return view, sorted(views.trackings)


def raw_file(session: Session, tx: Tx, file_id: int) -> dict[str, Any]:
    """A stored file for display: X12 as its segments (PHI masked unless revealed), JSON masked by key,
    anything else only when revealed."""
    f = tx.files.get(file_id)
    data = session.payload(f.sha256, f.payload_path)
    out: dict[str, Any] = {
        "file": f,
        "name": session.phi.file_name(f.name),  # a file name is PHI until revealed, like the log's
        "available": data is not None,
        "lines": [],
        "kind": "missing",
    }
    if data is None:
        return out
    if session.reveal:
        out.update(kind="text", lines=data.decode("utf-8", errors="replace").splitlines() or [""])
        return out
    parsed = parse_payload(data)
    if parsed is not None:
        lines = []
        for key, _fid in parsed.order:
            lines += [seg["text"] + "~" for seg in segment_views(parsed.sets[key], session.phi)]
        out.update(kind="x12", lines=lines)
        return out
    try:
        doc = json.loads(data)
    except ValueError:
        out.update(kind="opaque")
        return out
    out.update(kind="json", lines=json.dumps(session.phi.document(doc), indent=2).splitlines())
    return out
