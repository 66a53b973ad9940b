"""``tx.requests``: eligibility (270) and authorization (278) requests and their lifecycle
(``RequestState``). The payload is PHI: only read back when the request is built or revealed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, Update, bindparam, func, insert, select, update

from gateway import lifecycle
from gateway.errors import StoreError
from gateway.lifecycle import Entity, RequestEvent, RequestState, check_initial
from gateway.store import schema as s
from gateway.store.errors import NotFoundError
from gateway.store.repos import leases
from gateway.store.repos.base import (
    DEFAULT_LIMIT,
    HEX64,
    KEY,
    WAS,
    Repo,
    by_key,
    db,
    equal,
    id_by,
    insert_ids,
    inserting,
    keyed_update_many,
    locked_many,
    prebuilt,
    window,
)
from gateway.store.rows import RequestHead, RequestRow, from_mapping

RequestKind = Literal["270", "278"]
_TRACKING = re.compile(r"^[!-~]{1,50}$")  # printable ASCII without spaces, at most TRN02's 50


def _locked_heads(column: str) -> Select[Any]:
    """``SELECT id, tracking_number, kind, state FROM requests WHERE column IN (:keys) ORDER BY id
    FOR UPDATE``: a move needs these, and leaving the payload out saves unsealing it."""
    t = s.requests

    def build() -> Select[Any]:
        wanted = t.c[column].in_(bindparam("keys", expanding=True))
        return (
            select(t.c.id, t.c.tracking_number, t.c.kind, t.c.state)
            .where(wanted)
            .order_by(t.c.id)
            .with_for_update()
        )

    return prebuilt(("locked_heads", column), build)


def _claim_recorded() -> Update:
    """``UPDATE requests SET state, lease, updated_at WHERE id AND state AND partner`` (no RETURNING)."""
    t = s.requests

    def build() -> Update:
        where = (t.c.id == bindparam(KEY), t.c.state == bindparam(WAS), t.c.partner == bindparam("k_partner"))
        return update(t).where(*where)

    return prebuilt(("claim_recorded",), build)


def _insert_sealed() -> Any:
    """``INSERT INTO requests ... RETURNING`` every column but the payload (``insert(stored_payload=)``)."""
    t = s.requests
    return prebuilt(
        ("insert_sealed", "requests"),
        lambda: insert(t).returning(*(c for c in t.c if c.name != "payload")),
    )


class RequestsRepo(Repo):
    """Insert, find, move and claim requests; the operators' request reads and counts."""

    @db
    def insert(
        self,
        *,
        tracking_number: str,
        kind: RequestKind,
        payer_id: str,
        partner: str,
        member_id_hash: str,
        payload: Mapping[str, Any],
        due_at: datetime | None = None,
        source_file_id: int | None = None,
        state: RequestState = RequestState.NEW,
        detail: Mapping[str, Any] | None = None,
        client_reference_hash: str | None = None,
        patient_hash: str | None = None,
        stored_payload: str | None = None,
        then: Sequence[tuple[RequestEvent, Mapping[str, Any] | None]] = (),
        ahead: Sequence[RequestEvent] = (),
        lease: tuple[str, datetime] | None = None,
    ) -> RequestRow:
        """Insert a request; DuplicateKeyError if the tracking number exists.

        ``then``, ``ahead`` and ``lease`` as ``FilesRepo.record`` takes ``then``/``ahead``/``owner``: a
        real-time API call's request is inserted already claimed (``lease``: owner and until) and
        queued, its ``then`` steps logged now, the changes of ``ahead`` by the caller later in this
        transaction, so it steps no UPDATE of the row it has just written (nobody else can see it
        before the commit).

        ``member_id_hash`` must be the 64-hex digest from ``hash_member_id`` (a raw id is refused, so it
        cannot end up in the index by mistake). ``payload`` is the request JSON; it is PHI and only read
        back when the request is built or revealed. ``stored_payload``: ``payload`` sealed already
        (``Store.sealed_doc``, before the transaction): stored as it is, and not read back (the row
        returned carries ``payload``), so no encryption or decryption runs under the writer lock.
        """
        values = self._new_row(
            tracking_number=tracking_number,
            kind=kind,
            payer_id=payer_id,
            partner=partner,
            member_id_hash=member_id_hash,
            payload=payload,
            due_at=due_at,
            source_file_id=source_file_id,
            state=state,
            client_reference_hash=client_reference_hash,
            patient_hash=patient_hash,
        )
        states = [str(values["state"])]
        for event in [e for e, _ in then] + list(ahead):  # IllegalTransitionError before any write
            states.append(lifecycle.target(Entity.REQUEST, states[-1], event))
        if len(states) > 1:
            values["state"] = states[-1]
        if lease is not None:
            values["lease_owner"], values["lease_until"] = lease
        if stored_payload is None:
            row = self.run(inserting(s.requests), values).one()
            self._log_insert(row.id, states, detail, then)
            return from_mapping(RequestRow, row)
        row = self.run(_insert_sealed(), {**values, "payload": stored_payload}).one()
        self._log_insert(row.id, states, detail, then)
        return from_mapping(RequestRow, row, payload=values["payload"])

    def _log_insert(
        self,
        request_id: int,
        states: list[str],
        detail: Mapping[str, Any] | None,
        then: Sequence[tuple[RequestEvent, Mapping[str, Any] | None]],
    ) -> None:
        """The new request's creation and its ``then`` steps, in the event log."""
        self.audit.record_change(Entity.REQUEST, request_id, None, states[0], detail)
        for (_, step_detail), old, new in zip(then, states, states[1:], strict=False):
            self.audit.record_change(Entity.REQUEST, request_id, old, new, step_detail)

    @db
    def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """``insert`` for a batch of requests (each mapping holds ``insert``'s keyword arguments but
        ``detail``) in two statements: the rows (executemany, ids returned in order) and their
        event-log rows. All are checked before any is written."""
        values = [self._new_row(**r) for r in rows]
        if not values:
            return
        ids = insert_ids(self.conn, s.requests, values)
        changes = [(i, None, str(v["state"])) for i, v in zip(ids, values, strict=True)]
        self.audit.record_changes(Entity.REQUEST, changes)

    def _new_row(
        self,
        *,
        tracking_number: str,
        kind: RequestKind,
        payer_id: str,
        partner: str,
        member_id_hash: str,
        payload: Mapping[str, Any],
        due_at: datetime | None = None,
        source_file_id: int | None = None,
        state: RequestState = RequestState.NEW,
        client_reference_hash: str | None = None,
        patient_hash: str | None = None,
    ) -> dict[str, Any]:
        """A new request's column values, checked (tracking number, member hash, initial state)."""
        if not _TRACKING.match(tracking_number):
            raise StoreError("tracking number must be 1-50 printable characters without spaces")
        if not HEX64.match(member_id_hash):
            raise StoreError(
                "member_id_hash must be a 64-hex HMAC digest (see hash_member_id), not a member id"
            )
        state = RequestState(check_initial(Entity.REQUEST, state))
        now = self.now()
        return {
            "tracking_number": tracking_number,
            "kind": kind,
            "payer_id": payer_id,
            "partner": partner,
            "source_file_id": source_file_id,
            "state": state,
            "due_at": due_at,
            "member_id_hash": member_id_hash,
            "client_reference_hash": client_reference_hash,
            "patient_hash": patient_hash,
            "payload": dict(payload),
            "created_at": now,
            "updated_at": now,
        }

    @db
    def by_reference_hash(self, reference_hash: str, limit: int = 100) -> list[RequestRow]:
        """Requests whose client reference hashes to ``reference_hash`` (see ``hash_member_id``), newest
        first: the billing system's own reference is searchable although the payload is sealed."""
        t = s.requests
        where = [t.c.client_reference_hash == reference_hash]
        return self.listing(t, RequestRow, where=where, order=[t.c.id.desc()], limit=limit)

    @db
    def count_from_file(self, file_id: int) -> int:
        """How many requests the inbox file ``file_id`` has produced so far (a resumed file's offset)."""
        stmt = select(func.count()).select_from(s.requests).where(s.requests.c.source_file_id == file_id)
        return int(self.run(stmt).scalar_one())

    @db
    def get(self, request_id: int) -> RequestRow:
        """The request row by id; NotFoundError if there is none."""
        row = self.run(by_key(s.requests, "id"), {KEY: request_id}).first()
        if row is None:
            raise NotFoundError(f"request {request_id} not found")
        return from_mapping(RequestRow, row)

    @db
    def get_many(self, request_ids: Sequence[int]) -> list[RequestRow]:
        """The requests with these ids (those that exist), oldest first, in one statement."""
        if not request_ids:
            return []
        stmt = locked_many(s.requests, "id")
        return [from_mapping(RequestRow, r) for r in self.run(stmt, {"keys": list(request_ids)})]

    @db
    def heads(self, request_ids: Sequence[int]) -> list[RequestHead]:
        """Id, tracking number, kind and state of these requests (those that exist), locked until the
        transaction ends (PostgreSQL), oldest first, in one statement; the payload is not read."""
        if not request_ids:
            return []
        rows = self.run(_locked_heads("id"), {"keys": list(request_ids)})
        return [from_mapping(RequestHead, r) for r in rows]

    @db
    def get_by_tracking(self, tracking_number: str) -> RequestRow | None:
        """The request with this tracking number, or None."""
        row = self.run(by_key(s.requests, "tracking_number"), {KEY: tracking_number}).first()
        return None if row is None else from_mapping(RequestRow, row)

    def id_of(self, tracking_number: str) -> int | None:
        """The row id of the request with this tracking number, or None."""
        stmt = id_by(s.requests, "tracking_number")
        value = self.run(stmt, {KEY: tracking_number}).scalar_one_or_none()
        return None if value is None else int(value)

    @db
    def transition(
        self,
        tracking_number: str,
        event: RequestEvent,
        *,
        expect: str | None = None,
        reason: str | None = None,
        due_at: datetime | None = None,
        detail: Mapping[str, Any] | None = None,
        was: str | None = None,
    ) -> RequestRow:
        """Apply ``event`` to a request (per the lifecycle table; only from ``expect`` if given);
        optionally set a reason and a new due time. ``was`` is the state the caller read the request
        in, if it did: the move is then tried as one guarded UPDATE from that state first (the same
        outcome as reading and locking the row when the guess is right; read and locked otherwise)."""
        extra: dict[str, Any] = {}
        if reason is not None:
            extra["reason"] = reason
        if due_at is not None:
            extra["due_at"] = due_at
        if expect is not None or was is not None:  # one statement: the UPDATE checks the state
            table, column = s.requests, "tracking_number"
            moved = self.move_expected(
                Entity.REQUEST,
                table,
                column,
                tracking_number,
                event,
                what="request",
                expect=expect if expect is not None else str(was),
                extra=extra,
                detail=detail,
                guess=expect is None,
            )
            if moved is not None:
                return from_mapping(RequestRow, moved)
        row = self.locked(s.requests, "tracking_number", tracking_number, "request")
        new = self.move(Entity.REQUEST, s.requests, row, event, expect=expect, extra=extra, detail=detail)
        return from_mapping(RequestRow, new)

    @db
    def transition_many(
        self,
        tracking_numbers: Sequence[str],
        event: RequestEvent,
        *,
        expect: str | None = None,
        due_at: Mapping[str, datetime] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """``transition`` for a batch of requests in three statements whatever its size (read and
        lock, update, log): all move or, on a stale or illegal move, none. ``due_at`` by tracking
        number, for every one of them when given."""
        if not tracking_numbers:
            return
        stmt = _locked_heads("tracking_number")
        rows = {r.tracking_number: r for r in self.run(stmt, {"keys": list(tracking_numbers)})}
        missing = [t for t in tracking_numbers if t not in rows]
        if missing:
            raise NotFoundError(f"{len(missing)} request(s) not found")
        unique = dict.fromkeys(tracking_numbers)
        moves = [(rows[t], {} if due_at is None else {"due_at": due_at[t]}) for t in unique]
        self.move_many(Entity.REQUEST, s.requests, moves, event, expect=expect, detail=detail)

    @db
    def move_known(
        self, moves: Sequence[tuple[int, str, RequestEvent]], *, at: datetime | None = None
    ) -> list[str]:
        """Requests this transaction read under lock (``heads``), each at most once, moved from the
        state the caller holds for them, ``(id, state, event)`` each: every move checked against the
        lifecycle before one UPDATE (executemany) writes them all. Returns the new states in order;
        the caller logs the changes, each with its own detail (``audit.record_change_rows``).
        ``at``: their ``updated_at`` (the store's clock, ``now()``, taken by the caller that needs to
        know it), else now."""
        targets = [lifecycle.target(Entity.REQUEST, state, event) for _, state, event in moves]
        if moves:
            now = self.now() if at is None else at
            values = [
                {KEY: request_id, "state": new, "updated_at": now}
                for (request_id, _, _), new in zip(moves, targets, strict=True)
            ]
            self.run(keyed_update_many(s.requests, ("state", "updated_at")), values)
        return targets

    @db
    def query(
        self,
        *,
        state: str | None = None,
        kind: RequestKind | None = None,
        partner: str | None = None,
        member_id_hash: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        due_before: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        oldest_first: bool = False,
    ) -> list[RequestRow]:
        """Requests by state, kind, partner, member hash, creation time or due time; newest first
        (``oldest_first`` for work queues, so the oldest request is sent first)."""
        t = s.requests
        where = window(t.c.created_at, since, until)
        where += equal(
            (t.c.state, state), (t.c.kind, kind), (t.c.partner, partner), (t.c.member_id_hash, member_id_hash)
        )
        if due_before is not None:
            where.append(t.c.due_at < due_before)
        order = [t.c.id] if oldest_first else [t.c.created_at.desc(), t.c.id.desc()]
        return self.listing(t, RequestRow, where=where, order=order, limit=limit)

    @db
    def claim(
        self,
        *,
        partner: str,
        owner: str,
        until: datetime,
        limit: int,
        request_id: int | None = None,
        kind: str | None = None,
    ) -> list[RequestRow]:
        """New requests of a partner (only ``request_id``, when given: real time sends one request
        now; only one ``kind``, when given: a CORE batch carries one payload type), moved to
        ``batching`` under this node's lease."""
        t = s.requests
        event = RequestEvent.CLAIM_FOR_BATCH
        if request_id is not None:
            match = {"partner": partner} | ({"kind": kind} if kind is not None else {})
            rows = leases.claim_by_id(self, t, Entity.REQUEST, event, request_id, match, owner, until, limit)
            return [from_mapping(RequestRow, r) for r in rows]
        conds = [t.c.partner == partner]
        conds += [t.c.kind == kind] if kind is not None else []
        rows = leases.claim(self, t, Entity.REQUEST, event, conds, owner, until, limit)
        return [from_mapping(RequestRow, r) for r in rows]

    def _move_values(
        self, request_id: int, event: RequestEvent, expect: str, due_at: datetime | None
    ) -> tuple[str, dict[str, Any]]:
        """The state ``event`` leads to from ``expect`` and the guarded UPDATE's parameters (one place
        for ``move_from`` and ``move_from_reading``)."""
        new_state = lifecycle.target(Entity.REQUEST, expect, event)
        values: dict[str, Any] = {KEY: request_id, WAS: expect, "state": new_state}
        if due_at is not None:
            values["due_at"] = due_at
        values["updated_at"] = self.now()
        return new_state, values

    @db
    def move_from(
        self,
        request_id: int,
        event: RequestEvent,
        *,
        expect: str,
        due_at: datetime | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> bool:
        """``transition(..., was=expect)`` by row id, for a caller that knows the state it left the
        request in (the real-time sender: ``queued``), as one guarded UPDATE that returns no row
        (the payload is not unsealed); False, with nothing written or logged, when the request is
        in another state (the caller then reads it, as without the guess)."""
        new_state, values = self._move_values(request_id, event, expect, due_at)
        t = s.requests
        stmt = prebuilt(
            ("move_from", "requests"),
            lambda: update(t).where(t.c.id == bindparam(KEY), t.c.state == bindparam(WAS)),
        )
        if self.run(stmt, values).rowcount != 1:
            return False
        if new_state != expect:
            self.audit.record_change(Entity.REQUEST, request_id, expect, new_state, detail)
        return True

    @db
    def move_from_reading(
        self, request_id: int, event: RequestEvent, *, expect: str, due_at: datetime | None = None
    ) -> tuple[str | None, dict[str, Any]] | None:
        """``move_from`` whose guarded UPDATE also returns the request's ``reason`` and payload
        (``RETURNING``: no read of its own), for a caller that renders the request's result document
        in this transaction (a real-time answer's: ``outbox.rendered_results(known=...)``); None,
        with nothing written or logged, when the request is in another state."""
        new_state, values = self._move_values(request_id, event, expect, due_at)
        t = s.requests
        stmt = prebuilt(
            ("move_from_reading", "requests"),
            lambda: (
                update(t)
                .where(t.c.id == bindparam(KEY), t.c.state == bindparam(WAS))
                .returning(t.c.reason, t.c.payload)
            ),
        )
        row = self.run(stmt, values).first()
        if row is None:
            return None
        if new_state != expect:
            self.audit.record_change(Entity.REQUEST, request_id, expect, new_state, None)
        return row.reason, row.payload

    @db
    def claim_recorded(
        self, request_id: int, *, partner: str, owner: str, until: datetime, then: RequestEvent
    ) -> bool:
        """``claim(request_id=...)`` of a request recorded ``new`` in this transaction, moved on by
        ``then`` in the same UPDATE (no row returned: its payload is not unsealed again). The claim's
        change is logged now; the caller logs ``then``'s (``audit.record_changes``) once it has its
        detail (the queued file's id). False when the request is not ``new`` for ``partner``."""
        claimed = lifecycle.target(Entity.REQUEST, RequestState.NEW, RequestEvent.CLAIM_FOR_BATCH)
        values = {
            KEY: request_id,
            WAS: RequestState.NEW,
            "k_partner": partner,
            "state": lifecycle.target(Entity.REQUEST, claimed, then),
            "lease_owner": owner,
            "lease_until": until,
            "updated_at": self.now(),
        }
        if self.run(_claim_recorded(), values).rowcount != 1:
            return False
        self.audit.record_change(Entity.REQUEST, request_id, RequestState.NEW, claimed, {"node": owner})
        return True

    @db
    def release_expired(self, *, dead_owners: Iterable[str] = ()) -> int:
        """Requests whose batching lease expired, or whose node is known dead, go back to ``new``."""
        return leases.release_expired(self, s.requests, Entity.REQUEST, RequestEvent.RELEASE, dead_owners)

    # -- operators' reads --------------------------------------------------------------------------

    @db
    def by_tracking(self, tracking_numbers: Iterable[str]) -> dict[str, RequestRow]:
        """The requests with these tracking numbers, by tracking number (unknown ones left out)."""
        wanted = sorted(set(tracking_numbers))
        if not wanted:
            return {}
        t = s.requests
        stmt = prebuilt(  # the outbox reads a chunk's requests per cycle: built once
            ("by_tracking",),
            lambda: (
                select(t)
                .where(t.c.tracking_number.in_(bindparam("keys", expanding=True)))
                .order_by(t.c.id.desc())
            ),
        )
        return {r.tracking_number: from_mapping(RequestRow, r) for r in self.run(stmt, {"keys": wanted})}

    @db
    def by_ids(self, request_ids: Iterable[int]) -> dict[int, RequestRow]:
        """The requests with these row ids (unknown ones left out)."""
        ids = sorted(set(request_ids))
        if not ids:
            return {}
        return {
            r.id: r
            for r in self.listing(s.requests, RequestRow, where=[s.requests.c.id.in_(ids)], limit=None)
        }

    @db
    def of_file(self, file_id: int) -> list[RequestRow]:
        """The requests an inbox file produced, in file order."""
        t = s.requests
        return self.listing(t, RequestRow, where=[t.c.source_file_id == file_id], order=[t.c.id], limit=None)

    @db
    def search(
        self,
        *,
        member_id_hash: str | None = None,
        patient_hash: str | None = None,
        payer_id: str | None = None,
        tracking_numbers: Iterable[str] | None = None,
        kind: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[RequestRow]:
        """Requests matching every given criterion (payer id case-insensitively); newest first."""
        t = s.requests
        where = window(t.c.created_at, since, until)
        where += equal(
            (t.c.member_id_hash, member_id_hash),
            (t.c.patient_hash, patient_hash),
            (t.c.kind, kind),
            (t.c.state, state),
        )
        if payer_id is not None:
            where.append(func.upper(t.c.payer_id) == payer_id.strip().upper())
        if tracking_numbers is not None:
            where.append(t.c.tracking_number.in_(sorted(set(tracking_numbers))))
        order = [t.c.created_at.desc(), t.c.id.desc()]
        return self.listing(t, RequestRow, where=where, order=order, limit=limit)

    @db
    def count(self, *, since: datetime | None = None, until: datetime | None = None) -> list[dict[str, Any]]:
        """Requests counted by kind, payer and state (created in the window)."""
        t = s.requests
        keys = (t.c.kind, t.c.payer_id, t.c.state)
        stmt = (
            select(*keys, func.count().label("count"))
            .where(*window(t.c.created_at, since, until))
            .group_by(*keys)
        )
        return [dict(row._mapping) for row in self.run(stmt)]

    @db
    def milestones(
        self, states: Iterable[str], *, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """When each request (created in the window) first reached each of ``states``: one dict per
        request and state with ``request_id``, ``payer_id``, ``kind``, ``state`` and ``at``."""
        c, r = s.state_changes, s.requests
        stmt = (
            select(
                r.c.id.label("request_id"),
                r.c.payer_id,
                r.c.kind,
                c.c.new_state.label("state"),
                func.min(c.c.at).label("at"),
            )
            .select_from(c)
            .join(r, (c.c.entity_type == Entity.REQUEST) & (c.c.entity_id == r.c.id))
            .where(c.c.new_state.in_(sorted(set(states))), *window(r.c.created_at, since, until))
            .group_by(r.c.id, r.c.payer_id, r.c.kind, c.c.new_state)
        )
        return [dict(row._mapping) for row in self.run(stmt)]
