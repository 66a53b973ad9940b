"""The operators' listings: the transaction log, searches, events, authorizations, overdue
acknowledgments and statistics, each as plain JSON-able rows built from read-only store queries.

Rows carry no PHI except where a listing is about a patient (search results, authorizations), and
those fields are masked by the session's policy before they enter a row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from gateway.lifecycle import FileState, RequestState, SetState, event_between
from gateway.operators.formatting import iso
from gateway.operators.session import Session
from gateway.operators.views import INBOX, decoded_decision, events_json
from gateway.store import AuthorizationRow, FileRow, RequestRow, StateChange, Tx, hash_member_id, hash_patient
from gateway.store.store import Direction
from transactions.envelope_reader import read_interchanges
from transactions.errors import X12GatewayError

PAGE = 200
LOG_STATES = tuple(sorted({*FileState, *SetState, *RequestState}))
"""What ``log list --status`` accepts: any state of a file, a transaction set or a request."""
REQUEST_STATES = tuple(sorted(RequestState))
WAITING = frozenset({RequestState.SENT, RequestState.ACKNOWLEDGED})


# --------------------------------------------------------------------------------------- the log


@dataclass(frozen=True)
class LogFilter:
    """What ``log list`` / ``log export`` keep. ``status`` matches the file's, the set's or the
    request's state; ``type`` a set id (270, 271, 278, 999) or a file kind (TA1, inbox, file)."""

    partner: str | None = None
    type: str | None = None
    direction: str | None = None
    status: str | None = None
    ack: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def keeps(self, row: dict[str, Any]) -> bool:
        if self.type is not None and str(row["type"]).upper() != self.type.upper():
            return False
        if self.status is not None and self.status not in (
            row["state"],
            row["file_state"],
            row.get("request_state"),
        ):
            return False
        return self.ack is None or (row["ack_status"] or "none").upper() == self.ack.upper()


LOG_COLUMNS = (
    "file_id",
    "created_at",
    "direction",
    "partner",
    "file",
    "file_state",
    "type",
    "interchange_control",
    "group_control",
    "set_control",
    "set_row_id",
    "trace_numbers",
    "bht03",
    "ack_status",
    "state",
    "tracking_number",
    "request_state",
)


def _base(f: FileRow) -> dict[str, Any]:
    return {
        "file_id": f.id,
        "created_at": f.created_at,
        "direction": f.direction,
        "partner": f.partner,
        "file": f.name,
        "file_state": f.state,
    }


def _ack_file_kind(data: bytes | None) -> str:
    """What one of our own acknowledgment files holds (the store records no envelopes for them)."""
    if data is None:
        return "file"
    try:
        interchanges = read_interchanges(data)
    except X12GatewayError:
        return "file"
    if any(g.functional_id == "FA" for ic in interchanges for g in ic.groups):
        return "999"
    if any(s.tag == "TA1" for ic in interchanges for s in ic.extra):
        return "TA1"
    return "x12"


def _file_row(session: Session, f: FileRow, interchanges: list[dict[str, Any]]) -> dict[str, Any]:
    if f.partner == INBOX and f.direction == "in":
        kind = "inbox"
    elif interchanges:
        kind = "TA1"
    elif f.direction == "out":
        kind = _ack_file_kind(session.payload(f.sha256, f.payload_path))
    else:
        kind = "file"
    first = interchanges[0] if interchanges else {}
    return {
        **_base(f),
        "type": kind,
        "interchange_control": first.get("interchange_control"),
        "group_control": None,
        "set_control": None,
        "set_row_id": None,
        "trace_numbers": [],
        "bht03": None,
        "ack_status": first.get("interchange_ack"),
        "state": f.state,
        "tracking_number": None,
        "request_state": None,
    }


def _set_row(f: FileRow, r: dict[str, Any], found: dict[str, RequestRow]) -> dict[str, Any]:
    tracking, request_state = r["tracking_number"], r["request_state"]
    if tracking is None:
        for candidate in [*r["trace_numbers"], *([r["bht03"]] if r["bht03"] else [])]:
            if candidate in found:
                tracking, request_state = candidate, found[candidate].state
                break
    return {
        **_base(f),
        "type": r["set_id"],
        "interchange_control": r["interchange_control"],
        "group_control": r["group_control"],
        "set_control": r["set_control"],
        "set_row_id": r["set_row_id"],
        "trace_numbers": r["trace_numbers"],
        "bht03": r["bht03"],
        "ack_status": r["set_ack"] or r["group_ack"] or r["interchange_ack"],
        "state": r["set_state"],
        "tracking_number": tracking,
        "request_state": request_state,
    }


def iter_log(
    session: Session, tx: Tx, flt: LogFilter, *, newest_first: bool = True
) -> Iterator[dict[str, Any]]:
    """Every file (one row) or transaction set (one row each) the filter keeps, paged by file id."""
    cursor: int | None = None
    while True:
        files = tx.files.page(
            partner=flt.partner,
            direction=cast(Direction | None, flt.direction),
            since=flt.since,
            until=flt.until,
            before_id=cursor if newest_first else None,
            after_id=cursor if not newest_first else None,
            limit=PAGE,
            newest_first=newest_first,
        )
        if not files:
            return
        envelopes: dict[int, list[dict[str, Any]]] = {}
        for r in tx.envelopes.rows_of_files([f.id for f in files]):
            envelopes.setdefault(r["file_id"], []).append(r)
        wanted = [
            c
            for rows in envelopes.values()
            for r in rows
            if r["set_row_id"] is not None and r["tracking_number"] is None
            for c in [*r["trace_numbers"], *([r["bht03"]] if r["bht03"] else [])]
        ]
        found = tx.requests.by_tracking(wanted)
        for f in files:
            rows = envelopes.get(f.id, [])
            sets = [r for r in rows if r["set_row_id"] is not None]
            out = [_set_row(f, r, found) for r in sets] if sets else [_file_row(session, f, rows)]
            for row in out:
                if flt.keeps(row):
                    yield {**row, "file": session.phi.file_name(row["file"])}
        cursor = files[-1].id
        if len(files) < PAGE:
            return


def take(rows: Iterator[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The first ``limit`` rows and whether there were more."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if len(out) == limit:
            return out, True
        out.append(row)
    return out, False


# ----------------------------------------------------------------------------------- requests


def request_status(tx: Tx, req: RequestRow) -> tuple[str | None, str | None]:
    """(status, certification number) of a request's latest answer, if it has one."""
    if req.kind == "278":
        auth = tx.results.get_authorization(req.tracking_number)
        return (auth.status, auth.certification_number) if auth else (None, None)
    elig = tx.results.get_eligibility(req.tracking_number)
    return (elig.status, None) if elig else (None, None)


def patient_summary(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """Who a request is about, masked: the patient (dependent if any, else subscriber) and member id."""
    phi = session.phi
    sub = payload.get("subscriber") or {}
    patient = payload.get("dependent") or sub
    name = ", ".join(
        n for n in (phi.name(patient.get("last_name")), phi.name(patient.get("first_name"))) if n
    )
    return {
        "patient": name or None,
        "member_id": phi.member_id(sub.get("member_id")),
        "birth_date": phi.birth_date(patient.get("birth_date")),
    }


def request_row(session: Session, tx: Tx, req: RequestRow) -> dict[str, Any]:
    status, cert = request_status(tx, req)
    return {
        "tracking_number": req.tracking_number,
        "kind": req.kind,
        "client_reference": req.payload.get("client_reference"),
        "payer_id": req.payer_id,
        "partner": req.partner,
        "state": req.state,
        "status": status,
        "certification_number": cert,
        "reason": req.reason,
        "created_at": req.created_at,
        "updated_at": req.updated_at,
        **patient_summary(session, req.payload),
    }


@dataclass(frozen=True)
class SearchCriteria:
    member_id: str | None = None
    client_reference: str | None = None
    last_name: str | None = None  # with birth_date: the patient, matched by keyed hash (hash_patient)
    birth_date: date | None = None
    trace_number: str | None = None
    certification_number: str | None = None
    payer: str | None = None
    kind: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def named(self) -> list[str]:
        """The criteria given, by name only (member id, name and birth date are PHI: not repeated)."""
        return [k for k, v in vars(self).items() if v is not None]


def search(session: Session, tx: Tx, c: SearchCriteria, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Requests matching all criteria, newest first (``limit`` of them, and whether there are more)."""
    trackings: set[str] | None = None
    if c.trace_number is not None:
        trackings = set()
        for s in tx.envelopes.find_sets(trace_number=c.trace_number, limit=500):
            if s.request_id is not None:
                trackings.add(tx.requests.get(s.request_id).tracking_number)
            found = tx.requests.by_tracking([*s.trace_numbers, *([s.bht03] if s.bht03 else [])])
            trackings.update(found)
    if c.client_reference is not None:
        key = session.member_key()
        refs = {
            r.tracking_number for r in tx.requests.by_reference_hash(hash_member_id(c.client_reference, key))
        }
        trackings = refs if trackings is None else trackings & refs
    if c.certification_number is not None:
        certs = {
            a.tracking_number
            for a in tx.results.find_authorizations(certification_number=c.certification_number)
        }
        trackings = certs if trackings is None else trackings & certs
    member_hash = hash_member_id(c.member_id, session.member_key()) if c.member_id else None
    patient = (
        hash_patient(c.last_name, c.birth_date.isoformat(), session.member_key())
        if c.last_name and c.birth_date
        else None
    )
    rows = tx.requests.search(
        member_id_hash=member_hash,
        patient_hash=patient,
        payer_id=c.payer,
        tracking_numbers=trackings,
        kind=c.kind,
        state=c.state,
        since=c.since,
        until=c.until,
        limit=limit + 1,
    )
    return [request_row(session, tx, r) for r in rows[:limit]], len(rows) > limit


# -------------------------------------------------------------------------------------- events


def event_rows(tx: Tx, changes: Sequence[StateChange]) -> list[dict[str, Any]]:
    """Event-log rows, with the tracking number or file name of what changed."""
    requests = tx.requests.by_ids(c.entity_id for c in changes if c.entity_type == "request")
    files = tx.files.by_ids(c.entity_id for c in changes if c.entity_type == "file")
    out = []
    for c in changes:
        subject = f"{c.entity_type} {c.entity_id}"
        if c.entity_type == "request" and c.entity_id in requests:
            subject = requests[c.entity_id].tracking_number
        elif c.entity_type == "file" and c.entity_id in files:
            subject = f"file {c.entity_id} {files[c.entity_id].name}"
        elif c.entity_type == "partner" and c.detail and "partner" in c.detail:
            subject = f"partner {c.detail['partner']}"
        out.append(
            {
                "id": c.id,
                "at": c.at,
                "entity_type": c.entity_type,
                "entity_id": c.entity_id,
                "subject": subject,
                "from": c.old_state,
                "to": c.new_state,
                "event": event_between(c.entity_type, c.old_state, c.new_state),
                "detail": c.detail,
            }
        )
    return out


def last_events(tx: Tx, count: int, entity_type: str | None = None) -> list[dict[str, Any]]:
    """The newest ``count`` events, oldest first (so they read like a log)."""
    changes = tx.audit.list_changes(entity_type=entity_type, limit=count)
    return event_rows(tx, list(reversed(changes)))


# ------------------------------------------------------------------------------ authorizations


@dataclass(frozen=True)
class AuthFilter:
    status: str | None = None
    payer: str | None = None
    expiring_within: timedelta | None = None
    pending_longer_than: timedelta | None = None


def authorization_rows(
    session: Session, tx: Tx, flt: AuthFilter, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    now = session.clock()
    today = now.date()
    rows = tx.results.page_authorizations(
        status=flt.status,
        payer_id=flt.payer,
        expiring_from=today if flt.expiring_within is not None else None,
        expiring_until=(now + flt.expiring_within).date() if flt.expiring_within is not None else None,
        pended_before=now - flt.pending_longer_than if flt.pending_longer_than is not None else None,
        limit=limit + 1,
    )
    requests = tx.requests.by_ids(a.request_id for a in rows if a.request_id is not None)
    out = _unanswered_278s(session, tx, flt, limit)
    for a in rows[: max(0, limit - len(out))]:
        req = requests.get(a.request_id) if a.request_id is not None else None
        history = tx.results.authorization_history(a.id)
        since = history[-1].at if history else a.updated_at
        out.append(
            {
                "tracking_number": a.tracking_number,
                "status": a.status,
                "certification_number": a.certification_number,
                "payer_id": req.payer_id if req else None,
                "client_reference": req.payload.get("client_reference") if req else None,
                "effective_from": a.effective_from,
                "effective_to": a.effective_to,
                "status_since": since,
                "days_to_expiry": (a.effective_to - today).days if a.effective_to else None,
                "updated_at": a.updated_at,
                **(patient_summary(session, req.payload) if req else {}),
            }
        )
    return out, len(rows) + len(out) > limit


UNANSWERED_278 = (RequestState.SENT, RequestState.ACKNOWLEDGED, RequestState.OVERDUE)


def _unanswered_278s(session: Session, tx: Tx, flt: AuthFilter, limit: int) -> list[dict[str, Any]]:
    """For ``--pending-longer-than``: 278s sent (and perhaps acknowledged) that have no answer at all
    after that long. They have no authorization row yet, but they are pending as much as a pended one."""
    if flt.pending_longer_than is None or flt.status not in (None, "pended") or flt.expiring_within:
        return []
    cutoff = session.clock() - flt.pending_longer_than
    out = []
    for state in UNANSWERED_278:
        for req in tx.requests.query(state=state, kind="278", until=cutoff, limit=limit, oldest_first=True):
            if req.updated_at > cutoff or (flt.payer and req.payer_id != flt.payer):
                continue
            if tx.results.get_authorization(req.tracking_number) is not None:
                continue
            out.append(
                {
                    "tracking_number": req.tracking_number,
                    "status": f"no answer ({req.state})",
                    "certification_number": None,
                    "payer_id": req.payer_id,
                    "client_reference": req.payload.get("client_reference"),
                    "effective_from": None,
                    "effective_to": None,
                    "status_since": req.updated_at,
                    "days_to_expiry": None,
                    "updated_at": req.updated_at,
                    **patient_summary(session, req.payload),
                }
            )
    return sorted(out, key=lambda r: r["status_since"])[:limit]


def _authorization_by_reference(session: Session, tx: Tx, ref: str) -> AuthorizationRow | None:
    """The newest authorization of a 278 whose client reference is ``ref`` (keyed hash), if any."""
    key = session.reference_key()
    if key is None:
        return None
    for req in tx.requests.by_reference_hash(hash_member_id(ref, key)):
        auth = tx.results.get_authorization(req.tracking_number) if req.kind == "278" else None
        if auth is not None:
            return auth
    return None


def authorization_detail(session: Session, tx: Tx, ref: str) -> dict[str, Any] | None:
    """One authorization by tracking number, certification number or client reference, with events
    and service lines."""
    auth = tx.results.get_authorization(ref)
    if auth is None:
        matches = tx.results.find_authorizations(certification_number=ref, limit=1)
        auth = matches[0] if matches else _authorization_by_reference(session, tx, ref)
    if auth is None:
        return None
    req = tx.requests.get(auth.request_id) if auth.request_id is not None else None
    record = session.phi.document(auth.record)
    keys = (
        "action_code",
        "reason_code",
        "reason",
        "admin_reference",
        "payer_trace_number",
        "previous_certification",
        "request_category",
        "certification_type",
        "service_type",
        "facility_code",
        "level_of_service",
        "event_from",
        "event_to",
        "admission_date",
        "discharge_date",
        "days_approved",
        "issued",
        "diagnoses",
        "messages",
        "response_type",
        "validation",
    )
    return {
        "authorization": {
            "tracking_number": auth.tracking_number,
            "status": auth.status,
            "certification_number": auth.certification_number,
            "effective_from": iso(auth.effective_from),
            "effective_to": iso(auth.effective_to),
            "created_at": iso(auth.created_at),
            "updated_at": iso(auth.updated_at),
            **{k: record.get(k) for k in keys},
            **decoded_decision(record),
        },
        "request": (
            {
                "client_reference": req.payload.get("client_reference"),
                "payer_id": req.payer_id,
                "partner": req.partner,
                "state": req.state,
                "created_at": iso(req.created_at),
                **patient_summary(session, req.payload),
            }
            if req
            else None
        ),
        "events": events_json(tx, auth.id),
        "services": record.get("services", []),
        "record": record,
    }


# ------------------------------------------------------------------------------- overdue acks


def overdue_acks(
    session: Session, tx: Tx, older_than: timedelta, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Sent files with no 999/TA1 verdict ``older_than`` after they were sent, oldest first."""
    now = session.clock()
    files = tx.files.unacknowledged(sent_before=now - older_than, limit=limit + 1)
    envelopes: dict[int, list[dict[str, Any]]] = {}
    for r in tx.envelopes.rows_of_files([f.id for f in files[:limit]]):
        envelopes.setdefault(r["file_id"], []).append(r)
    out = []
    for f in files[:limit]:
        rows = envelopes.get(f.id, [])
        out.append(
            {
                "file_id": f.id,
                "file": session.phi.file_name(f.name),
                "partner": f.partner,
                "sent_at": f.updated_at,
                "waiting_minutes": round((now - f.updated_at).total_seconds() / 60, 1),
                "interchange_controls": sorted({r["interchange_control"] for r in rows}),
                "transaction_sets": sum(1 for r in rows if r["set_row_id"] is not None),
                "tracking_numbers": [r["tracking_number"] for r in rows if r["tracking_number"]],
            }
        )
    return out, len(files) > limit


# ----------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``0.5`` median, ``0.95`` p95): always one of the measured values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _set_verdict(row: dict[str, Any]) -> str | None:
    """A sent set's acknowledgment: R when its interchange was rejected by TA1 (no 999 then comes
    for it), else its 999 code (None while unacknowledged)."""
    return "R" if row.get("interchange_ack") == "R" else row["ack_status"]


def _turnaround(milestones: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per payer and kind: seconds from a request's first 'sent' to its answer (a pended 278 is not
    answered yet)."""
    sent: dict[int, datetime] = {}
    answered: dict[int, datetime] = {}
    keys: dict[int, tuple[str, str]] = {}
    for m in milestones:
        rid = m["request_id"]
        keys[rid] = (m["payer_id"], m["kind"])
        target = sent if m["state"] == RequestState.SENT else answered
        if rid not in target or m["at"] < target[rid]:
            target[rid] = m["at"]
    per: dict[tuple[str, str], list[float]] = {}
    for rid, at in answered.items():
        if rid in sent and at >= sent[rid]:
            per.setdefault(keys[rid], []).append((at - sent[rid]).total_seconds())
    return [
        {
            "payer_id": payer,
            "kind": kind,
            "count": len(values),
            "median_seconds": percentile(values, 0.5),
            "p95_seconds": percentile(values, 0.95),
        }
        for (payer, kind), values in sorted(per.items())
    ]


def compute_stats(tx: Tx, *, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    """Counts by type and status, the partners' acceptance rate, and turnaround per payer."""
    sets = tx.envelopes.count_sets(since=since, until=until)
    requests = tx.requests.count(since=since, until=until)
    auths = tx.results.count_authorizations(since=since, until=until)
    by_type: dict[str, dict[str, int]] = {}
    for row in sets:
        key = f"{row['set_id']} {row['direction']}"
        by_type.setdefault(key, {})
        by_type[key][row["state"]] = by_type[key].get(row["state"], 0) + row["count"]
    verdicts = [(_set_verdict(r), r["count"]) for r in sets if r["direction"] == "out"]
    accepted = sum(n for code, n in verdicts if code in ("A", "E"))
    total = sum(n for code, n in verdicts if code)
    request_counts: dict[str, dict[str, int]] = {}
    for row in requests:
        bucket = request_counts.setdefault(row["kind"], {})
        bucket[row["state"]] = bucket.get(row["state"], 0) + row["count"]
    # turnaround ends with the answer: a pended 278 is still waiting for its decision
    milestones = tx.requests.milestones([RequestState.SENT, RequestState.ANSWERED], since=since, until=until)
    return {
        "since": iso(since),
        "until": iso(until),
        "transaction_sets": {k: dict(sorted(v.items())) for k, v in sorted(by_type.items())},
        "requests": {k: dict(sorted(v.items())) for k, v in sorted(request_counts.items())},
        "authorizations": dict(sorted((r["status"], r["count"]) for r in auths)),
        "unmatched_responses": sum(r["count"] for r in sets if r["state"] == SetState.UNMATCHED),
        "acknowledgments": {
            "acknowledged": total,
            "accepted": accepted,
            "rejected": total - accepted,
            "acceptance_rate": round(accepted / total, 4) if total else None,
        },
        "turnaround": _turnaround(milestones),
        "ack_latency": _ack_latency(tx),
    }


def _ack_latency(tx: Tx) -> dict[str, Any]:
    """Upload to the first 999 verdict, over the most recent sent files (the dashboard's figure)."""
    from gateway.web.figures import ack_latencies  # noqa: PLC0415 - figures builds on this module

    seconds = ack_latencies(tx)
    return {
        "files": len(seconds),
        "median_seconds": percentile(seconds, 0.5),
        "p95_seconds": percentile(seconds, 0.95),
    }
