"""Authorization deadlines: when the payer's decision is due, when a certification expires, and
alerts that say so once per change.

* Due: a 278 is due ``decision_time_standard`` after the gateway took the request (the payer's
  ``decision_time_expedited`` when UM06 asks for urgent or emergency review, ``[precert]
  expedited_levels``), from the payer's rule set in the pre-certification rules. It is overdue while
  no final decision has arrived (no response yet, or pended) after that time.
* Expiry: the certification end date (DTP*007 / HCR); the authorization lapses at the end of that
  day (UTC). ``expiring`` lists approved ones that end within a window.
* ``alert_changes`` logs each overdue or soon-expiring authorization as a warning once, and logs
  when it stops being one, remembering what it said in ``state_changes`` (entity types
  ``authorization.overdue``, keyed by request id, and ``authorization.expiring``, keyed by
  authorization id), so a restarted gateway does not repeat itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from gateway.lifecycle import RequestState
from gateway.runtime.context import Context
from gateway.stages.precert_gate import load_rules
from gateway.store import AuthorizationRow, RequestRow, Tx
from policy.precert import EXPEDITED_LEVELS, PrecertRules, decision_due, is_expedited

OPEN_STATES = (
    RequestState.NEW,
    RequestState.QUEUED,
    RequestState.SENT,
    RequestState.ACKNOWLEDGED,
    RequestState.PENDED,
    RequestState.OVERDUE,
)
UNDECIDED = frozenset({"pended", "no_decision"})
CERTIFIED = ("approved", "partially_approved", "modified")
OVERDUE_ENTITY = "authorization.overdue"
EXPIRING_ENTITY = "authorization.expiring"
_SCAN_LIMIT = 5000


@dataclass(frozen=True, slots=True)
class DeadlineItem:
    """One overdue or expiring authorization; fields are PHI-free so it can be logged and listed."""

    kind: Literal["overdue", "expiring"]
    tracking_number: str
    payer_id: str | None
    status: str  # authorization status, or the request state while there is no response
    at: datetime  # due time (overdue) or expiry time (expiring)
    request_id: int | None = None
    authorization_id: int | None = None
    certification_number: str | None = None
    expedited: bool = False

    def detail(self) -> dict[str, Any]:
        return {
            "tracking_number": self.tracking_number,
            "payer_id": self.payer_id,
            "status": self.status,
            "at": self.at.isoformat(),
            "certification_number": self.certification_number,
            "expedited": self.expedited,
        }


def _level(record: Mapping[str, Any] | None, request: RequestRow) -> str | None:
    level = record.get("level_of_service") if record else None
    return level or request.payload.get("level_of_service")


def authorization_due(
    record: Mapping[str, Any] | None,
    request: RequestRow,
    rules: PrecertRules,
    *,
    expedited_levels: Iterable[str] = EXPEDITED_LEVELS,
) -> datetime:
    """When the payer's decision on ``request`` is due (``record``: the stored authorization, if any)."""
    rule_set = rules.for_payer(request.payer_id)
    expedited = is_expedited(_level(record, request), expedited_levels)
    return decision_due(request.created_at, rule_set, expedited=expedited)


def authorization_expiry(row: AuthorizationRow) -> datetime | None:
    """The end of the certification's last day (UTC), or None without an end date."""
    if row.effective_to is None:
        return None
    return datetime.combine(row.effective_to + timedelta(days=1), time(0), tzinfo=UTC)


def overdue_authorizations(
    tx: Tx,
    now: datetime,
    rules: PrecertRules,
    *,
    expedited_levels: Iterable[str] = EXPEDITED_LEVELS,
) -> list[DeadlineItem]:
    """278 requests still without a final decision whose due time has passed, earliest due first."""
    levels = tuple(expedited_levels)
    items: list[DeadlineItem] = []
    for state in OPEN_STATES:
        for req in tx.requests.query(state=state, kind="278", limit=_SCAN_LIMIT, oldest_first=True):
            auth = tx.results.get_authorization(req.tracking_number)
            if auth is not None and auth.status not in UNDECIDED:
                continue
            record = auth.record if auth else None
            due = authorization_due(record, req, rules, expedited_levels=levels)
            if due <= now:
                items.append(
                    DeadlineItem(
                        kind="overdue",
                        tracking_number=req.tracking_number,
                        payer_id=req.payer_id,
                        status=auth.status if auth else req.state,
                        at=due,
                        request_id=req.id,
                        authorization_id=auth.id if auth else None,
                        certification_number=auth.certification_number if auth else None,
                        expedited=is_expedited(_level(record, req), levels),
                    )
                )
    return sorted(items, key=lambda i: (i.at, i.tracking_number))


def expiring(tx: Tx, now: datetime, within: timedelta) -> list[DeadlineItem]:
    """Approved authorizations whose certification has not ended yet but ends within ``within``."""
    today: date = now.astimezone(UTC).date()
    last = (now + within).astimezone(UTC).date()
    out = []
    for auth in tx.claims.authorizations_expiring(
        start=today, end=last, statuses=CERTIFIED, limit=_SCAN_LIMIT
    ):
        expiry = authorization_expiry(auth)
        if expiry is None or expiry <= now:
            continue
        payer = auth.record.get("payer_id") if isinstance(auth.record, Mapping) else None
        out.append(
            DeadlineItem(
                kind="expiring",
                tracking_number=auth.tracking_number,
                payer_id=payer,
                status=auth.status,
                at=expiry,
                request_id=auth.request_id,
                authorization_id=auth.id,
                certification_number=auth.certification_number,
            )
        )
    return out


def _sync(ctx: Context, entity_type: str, current: dict[int, DeadlineItem], state: str) -> tuple[int, int]:
    """Record and log what changed since the last alert: new items, and items that stopped being one."""
    raised = cleared = 0
    with ctx.store.begin() as tx:
        last = tx.audit.latest_states(entity_type)
        for entity_id, item in current.items():
            previous = last.get(entity_id)
            if previous is not None and previous.new_state == state:
                continue
            tx.audit.record_change(
                entity_type, entity_id, previous.new_state if previous else None, state, item.detail()
            )
            raised += 1
            ctx.log.warning(f"authorization {state}", **item.detail())
        for entity_id, previous in last.items():
            if previous.new_state == state and entity_id not in current:
                tx.audit.record_change(entity_type, entity_id, state, "cleared", previous.detail)
                cleared += 1
                ctx.log.info(f"authorization no longer {state}", **(previous.detail or {}))
    return raised, cleared


def alert_changes(ctx: Context) -> int:
    """Log overdue and soon-expiring authorizations once per change; returns how many alerts changed."""
    now = ctx.clock()
    rules = load_rules(ctx.config)
    settings = ctx.config.precert
    with ctx.store.read() as tx:
        overdue = overdue_authorizations(tx, now, rules, expedited_levels=settings.expedited_levels)
        soon = expiring(tx, now, timedelta(days=settings.expiring_within_days))
    overdue_by_request = {i.request_id: i for i in overdue if i.request_id is not None}
    expiring_by_auth = {i.authorization_id: i for i in soon if i.authorization_id is not None}
    changes = 0
    for entity, current, state in (
        (OVERDUE_ENTITY, overdue_by_request, "overdue"),
        (EXPIRING_ENTITY, expiring_by_auth, "expiring"),
    ):
        raised, cleared = _sync(ctx, entity, current, state)
        changes += raised + cleared
    return changes
