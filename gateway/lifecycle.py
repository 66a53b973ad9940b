"""The lifecycles of the gateway's durable things: one state enum and one event enum per entity, and
the table ``(entity, from_state, event) -> to_state`` that every state change in the store obeys.

Exactly-once delivery rests on these moves (see README, "Crash safety"), so they live in one place:
the store's transition methods take an *event*, look the target up here and refuse any move the
table does not list (``gateway.errors.IllegalTransitionError``, naming the entity, the states and
the event, never PHI).
The enum values are the strings stored in the database and shown by ``x12gw log show``.

Creation is not an event: a new row starts in one of ``INITIAL[entity]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from gateway.errors import IllegalTransitionError


class Entity(StrEnum):
    """The things with a lifecycle (the ``entity_type`` of their rows in the event log)."""

    FILE = "file"
    REQUEST = "request"
    TRANSACTION_SET = "transaction_set"
    PARTNER = "partner"


class FileState(StrEnum):
    """An inbox file (claiming...), an outgoing file (queued...) or a downloaded one (downloaded...)."""

    RECEIVED = "received"  # recorded without a stage (tools and tests)
    CLAIMING = "claiming"
    CLAIMED = "claimed"
    VANISHED = "vanished"
    ACCEPTED = "accepted"
    PARTIALLY_ACCEPTED = "partially_accepted"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    QUEUED = "queued"
    UPLOADING = "uploading"
    RENAMING = "renaming"
    SENT = "sent"
    ACK_OVERDUE = "ack_overdue"
    ACKNOWLEDGED = "acknowledged"
    DOWNLOADED = "downloaded"
    PROCESSING = "processing"
    PROCESSED = "processed"
    DELIVERED = "delivered"


class FileEvent(StrEnum):
    CLAIM = "claim"  # the inbox file was moved into the work folder
    VANISH = "vanish"  # ... or it disappeared first
    ACCEPT = "accept"
    ACCEPT_PARTIALLY = "accept_partially"
    FIND_DUPLICATE = "find_duplicate"
    QUARANTINE = "quarantine"
    REPROCESS_INBOX = "reprocess_inbox"  # operator: a quarantined inbox file goes through intake again
    REPROCESS_INBOUND = "reprocess_inbound"  # operator: a quarantined downloaded file, through inbound
    START_UPLOAD = "start_upload"
    VERIFY_UPLOAD = "verify_upload"  # the data is on the server: from now on only the rename is finished
    FINISH_UPLOAD = "finish_upload"
    ACK_OVERDUE = "ack_overdue"
    ACKNOWLEDGE = "acknowledge"  # a TA1 or 999 came back
    START_PROCESSING = "start_processing"  # claimed under a lease by one node
    LEASE_EXPIRED = "lease_expired"  # that node died: back to the queue
    PROCESS = "process"
    DELIVER = "deliver"


class RequestState(StrEnum):
    NEW = "new"
    BATCHING = "batching"
    QUEUED = "queued"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    ANSWERED = "answered"
    PENDED = "pended"
    OVERDUE = "overdue"
    REJECTED = "rejected"
    INVALID = "invalid"
    NOT_REQUIRED = "not_required"


class RequestEvent(StrEnum):
    CLAIM_FOR_BATCH = "claim_for_batch"
    RELEASE = "release"  # lease expired, or left out of a batch that had invalid sets
    SET_ASIDE = "set_aside"  # the implementation guide check refused it
    QUEUE = "queue"
    SEND = "send"
    ACKNOWLEDGE = "acknowledge"
    ANSWER = "answer"
    PEND = "pend"
    TIME_OUT = "time_out"
    REJECT = "reject"
    RESEND = "resend"  # operator
    WAIVE = "waive"  # the pre-certification gate answered it: no 278 needed


class SetState(StrEnum):
    RECEIVED = "received"
    REJECTED = "rejected"
    UNMATCHED = "unmatched"  # a received response that answers none of our requests
    QUEUED = "queued"
    SENT = "sent"


class SetEvent(StrEnum):
    SEND = "send"
    FIND_NO_REQUEST = "find_no_request"  # a response's traces and BHT03 match no request we sent


class PartnerState(StrEnum):
    """A partner's exchange health: kept in memory by the run loop; its moves are logged (entity id 0,
    the partner's name in the detail)."""

    ACTIVE = "active"
    FAILING = "failing"
    PAUSED = "paused"


class PartnerEvent(StrEnum):
    FAIL = "fail"  # a transfer failed; retried next cycle
    PAUSE = "pause"  # too many consecutive failures
    RECOVER = "recover"  # a cycle succeeded after failures
    RESUME = "resume"  # the pause is over


_REQUEST_ANSWERABLE = (
    RequestState.QUEUED,
    RequestState.SENT,
    RequestState.ACKNOWLEDGED,
    RequestState.OVERDUE,
    RequestState.PENDED,
    RequestState.ANSWERED,
    RequestState.REJECTED,
)

# (from-states, event, to-state): read as "on <event>, any of <from-states> becomes <to-state>".
_F, _FE, _R, _RE = FileState, FileEvent, RequestState, RequestEvent
_MOVES: dict[Entity, tuple[tuple[tuple[StrEnum, ...], StrEnum, StrEnum], ...]] = {
    Entity.FILE: (
        ((_F.CLAIMING,), _FE.CLAIM, _F.CLAIMED),
        ((_F.CLAIMING,), _FE.VANISH, _F.VANISHED),
        ((_F.CLAIMED,), _FE.ACCEPT, _F.ACCEPTED),
        ((_F.CLAIMED,), _FE.ACCEPT_PARTIALLY, _F.PARTIALLY_ACCEPTED),
        ((_F.CLAIMED,), _FE.FIND_DUPLICATE, _F.DUPLICATE),
        ((_F.RECEIVED, _F.CLAIMED, _F.DOWNLOADED, _F.PROCESSING), _FE.QUARANTINE, _F.QUARANTINED),
        ((_F.QUARANTINED,), _FE.REPROCESS_INBOX, _F.CLAIMED),
        ((_F.QUARANTINED,), _FE.REPROCESS_INBOUND, _F.DOWNLOADED),
        ((_F.QUEUED,), _FE.START_UPLOAD, _F.UPLOADING),
        ((_F.UPLOADING,), _FE.VERIFY_UPLOAD, _F.RENAMING),
        ((_F.UPLOADING, _F.RENAMING), _FE.FINISH_UPLOAD, _F.SENT),
        ((_F.SENT,), _FE.ACK_OVERDUE, _F.ACK_OVERDUE),
        ((_F.SENT, _F.ACK_OVERDUE), _FE.ACKNOWLEDGE, _F.ACKNOWLEDGED),
        ((_F.DOWNLOADED,), _FE.START_PROCESSING, _F.PROCESSING),
        ((_F.PROCESSING,), _FE.LEASE_EXPIRED, _F.DOWNLOADED),
        ((_F.PROCESSING,), _FE.PROCESS, _F.PROCESSED),
        ((_F.PROCESSED,), _FE.DELIVER, _F.DELIVERED),
    ),
    Entity.REQUEST: (
        ((_R.NEW,), _RE.CLAIM_FOR_BATCH, _R.BATCHING),
        ((_R.BATCHING,), _RE.RELEASE, _R.NEW),
        ((_R.BATCHING,), _RE.SET_ASIDE, _R.INVALID),
        ((_R.BATCHING,), _RE.QUEUE, _R.QUEUED),
        ((_R.QUEUED, _R.SENT), _RE.SEND, _R.SENT),
        ((_R.SENT,), _RE.ACKNOWLEDGE, _R.ACKNOWLEDGED),
        (_REQUEST_ANSWERABLE, _RE.ANSWER, _R.ANSWERED),
        (_REQUEST_ANSWERABLE, _RE.PEND, _R.PENDED),
        ((_R.SENT, _R.ACKNOWLEDGED), _RE.TIME_OUT, _R.OVERDUE),
        # a 999/TA1 rejection that arrives after the answer was given up on still counts
        ((_R.QUEUED, _R.SENT, _R.ACKNOWLEDGED, _R.OVERDUE), _RE.REJECT, _R.REJECTED),
        ((_R.REJECTED, _R.INVALID, _R.OVERDUE), _RE.RESEND, _R.NEW),
        ((_R.NEW,), _RE.WAIVE, _R.NOT_REQUIRED),
    ),
    Entity.TRANSACTION_SET: (
        ((SetState.QUEUED, SetState.SENT), SetEvent.SEND, SetState.SENT),
        ((SetState.RECEIVED, SetState.REJECTED), SetEvent.FIND_NO_REQUEST, SetState.UNMATCHED),
    ),
    Entity.PARTNER: (
        ((PartnerState.ACTIVE,), PartnerEvent.FAIL, PartnerState.FAILING),
        ((PartnerState.ACTIVE, PartnerState.FAILING), PartnerEvent.PAUSE, PartnerState.PAUSED),
        ((PartnerState.FAILING,), PartnerEvent.RECOVER, PartnerState.ACTIVE),
        ((PartnerState.PAUSED,), PartnerEvent.RESUME, PartnerState.ACTIVE),
    ),
}

TABLE: Mapping[tuple[Entity, str, str], str] = {
    (entity, str(source), str(event)): str(target)
    for entity, moves in _MOVES.items()
    for sources, event, target in moves
    for source in sources
}
"""The whole lifecycle table: ``(entity, from_state, event) -> to_state``."""

STATES: Mapping[Entity, type[StrEnum]] = {
    Entity.FILE: FileState,
    Entity.REQUEST: RequestState,
    Entity.TRANSACTION_SET: SetState,
    Entity.PARTNER: PartnerState,
}
EVENTS: Mapping[Entity, type[StrEnum]] = {
    Entity.FILE: FileEvent,
    Entity.REQUEST: RequestEvent,
    Entity.TRANSACTION_SET: SetEvent,
    Entity.PARTNER: PartnerEvent,
}
INITIAL: Mapping[Entity, frozenset[str]] = {
    Entity.FILE: frozenset({FileState.RECEIVED, FileState.CLAIMING, FileState.QUEUED, FileState.DOWNLOADED}),
    Entity.REQUEST: frozenset({RequestState.NEW}),
    Entity.TRANSACTION_SET: frozenset({SetState.RECEIVED, SetState.REJECTED, SetState.QUEUED}),
    Entity.PARTNER: frozenset({PartnerState.ACTIVE}),
}

FINISHED: Mapping[Entity, frozenset[str]] = {
    Entity.FILE: frozenset(
        {
            FileState.ACCEPTED,
            FileState.PARTIALLY_ACCEPTED,
            FileState.DUPLICATE,
            FileState.QUARANTINED,
            FileState.VANISHED,
            FileState.ACKNOWLEDGED,
            FileState.PROCESSED,
            FileState.DELIVERED,
        }
    ),
    Entity.REQUEST: frozenset(
        {RequestState.ANSWERED, RequestState.REJECTED, RequestState.INVALID, RequestState.NOT_REQUIRED}
    ),
}
"""States in which no stage will touch a row again by itself (an operator may still reprocess or
resend): what ``x12gw purge`` may remove once old enough. An allow-list, so a state added later is
kept until someone decides it is finished."""


def target(entity: Entity, state: str, event: str) -> str:
    """The state ``event`` moves ``entity`` to from ``state``; IllegalTransitionError if none."""
    try:
        return TABLE[(entity, str(state), str(event))]
    except KeyError:
        raise IllegalTransitionError(entity, str(state), str(event), targets_of(entity, event)) from None


def allows(entity: Entity, state: str, event: str) -> bool:
    """Whether ``event`` is a legal move from ``state``."""
    return (entity, str(state), str(event)) in TABLE


def sources(entity: Entity, event: str) -> frozenset[str]:
    """The states ``event`` can move ``entity`` from (what a claim query selects)."""
    return frozenset(s for (e, s, ev) in TABLE if e == entity and ev == str(event))


def targets_of(entity: Entity, event: str) -> frozenset[str]:
    """The states ``event`` can lead ``entity`` to (one, for every event of this table)."""
    return frozenset(t for (e, _s, ev), t in TABLE.items() if e == entity and ev == str(event))


def event_between(entity: str, old: str | None, new: str) -> str | None:
    """The event that moves ``entity`` from ``old`` to ``new`` (for histories), None if none does."""
    for (e, s, ev), t in TABLE.items():
        if e == entity and s == old and t == new:
            return ev
    return None


def check_initial(entity: Entity, state: str) -> str:
    """``state`` if a new ``entity`` may start in it; IllegalTransitionError ('create') otherwise."""
    if str(state) not in INITIAL[entity]:
        raise IllegalTransitionError(entity, "(none)", "create", frozenset({str(state)}))
    return str(state)


def markdown_table() -> str:
    """The table as Markdown, one row per (entity, event): what README's "Lifecycles" section shows
    (a test keeps the two equal)."""
    lines = ["| entity | event | from | to |", "|---|---|---|---|"]
    for entity, moves in _MOVES.items():
        for sources_, event, target_ in moves:
            froms = ", ".join(f"`{s}`" for s in sources_)
            lines.append(f"| {entity} | `{event}` | {froms} | `{target_}` |")
    return "\n".join(lines)


def path(entity: Entity, start: str, goal: str) -> tuple[str, ...]:
    """The shortest sequence of events from ``start`` to ``goal`` (empty when equal); for set-ups
    (tests, demo data) that need a row in a later state without skipping the table."""
    frontier: list[tuple[str, tuple[str, ...]]] = [(str(start), ())]
    seen = {str(start)}
    while frontier:
        state, events = frontier.pop(0)
        if state == str(goal):
            return events
        for (e, s, ev), t in TABLE.items():
            if e == entity and s == state and t not in seen:
                seen.add(t)
                frontier.append((t, (*events, ev)))
    raise IllegalTransitionError(entity, str(start), "(any path)", frozenset({str(goal)}))
