"""The event log (``state_changes``) and the PHI-reveal audit (``phi_audit``): append and read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select

from gateway import lifecycle
from gateway.lifecycle import Entity
from gateway.store import schema as s
from gateway.store.repos.base import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Clock,
    Repo,
    db,
    equal,
    insert_rows,
    prebuilt,
    rows_where,
    window,
)
from gateway.store.rows import AuditRow, StateChange, from_mapping

# pending event-log rows written early, in order, once a transaction holds this many
PENDING_LIMIT = 2_000
_CHANGE_COLUMNS = ("entity_type", "entity_id", "old_state", "new_state", "at", "detail")


class AuditRepo(Repo):
    """``tx.audit``: what happened to every entity, and who was shown PHI.

    In a read-write transaction (``buffered``) event-log rows are kept in order and written by one
    multi-row INSERT (``base.insert_rows``) when the transaction is about to commit, or before the log
    is read in it: a real-time request makes some twenty state changes in six transactions,
    and one statement per change cost more CPU than the rest of its bookkeeping. A transaction that
    rolls back writes none of them, exactly as before."""

    def __init__(self, conn: Connection, clock: Clock, *, buffered: bool = False) -> None:
        super().__init__(conn, clock)
        self._pending: list[dict[str, Any]] | None = [] if buffered else None

    def _append(self, rows: list[dict[str, Any]]) -> None:
        if self._pending is not None:
            self._pending.extend(rows)
            if len(self._pending) >= PENDING_LIMIT:
                self.flush()  # a file of 46,000 sets: the log's rows are not all held until commit
        else:
            self._write(rows)

    def _write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """The rows, in order, in one multi-row INSERT per ``base.ROWS_PER_INSERT`` of them."""
        insert_rows(self.conn, s.state_changes, _CHANGE_COLUMNS, rows)

    @db
    def flush(self) -> None:
        """Write the event-log rows this transaction recorded so far (``Store.begin`` calls it
        before committing; the log's reads call it first)."""
        if self._pending:
            rows, self._pending = self._pending, []
            self._write(rows)

    @db
    def record_change(
        self,
        entity_type: str,
        entity_id: int,
        old_state: str | None,
        new_state: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append to the event log; also the way to record a side effect before and after it runs.

        ``detail`` is JSON for operators (host, remote path, byte count): never PHI. Lifecycle moves
        are logged by the repositories' ``transition``; call this directly only for other records.
        """
        values = {
            "entity_type": str(entity_type),
            "entity_id": entity_id,
            "old_state": None if old_state is None else str(old_state),
            "new_state": str(new_state),
            "at": self.now(),
            "detail": dict(detail) if detail is not None else None,
        }
        self._append([values])

    @db
    def record_changes(
        self,
        entity_type: str,
        changes: Sequence[tuple[int, str | None, str]],
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """``record_change`` for many entities of one type, ``(entity_id, old, new)`` each, in one
        INSERT (``base.insert_rows``); the same detail on every row."""
        if not changes:
            return
        at = self.now()
        shared = dict(detail) if detail is not None else None
        rows = [
            {
                "entity_type": str(entity_type),
                "entity_id": entity_id,
                "old_state": None if old is None else str(old),
                "new_state": str(new),
                "at": at,
                "detail": shared,
            }
            for entity_id, old, new in changes
        ]
        self._append(rows)

    @db
    def record_change_rows(
        self, rows: Sequence[tuple[str, int, str | None, str, Mapping[str, Any] | None]]
    ) -> None:
        """``record_change`` for a list of changes of any entities, each ``(entity_type, entity_id,
        old, new, detail)``, in one INSERT (``base.insert_rows``) that keeps their order in the log."""
        if not rows:
            return
        at = self.now()
        values = [
            {
                "entity_type": str(entity_type),
                "entity_id": entity_id,
                "old_state": None if old is None else str(old),
                "new_state": str(new),
                "at": at,
                "detail": dict(detail) if detail is not None else None,
            }
            for entity_type, entity_id, old, new, detail in rows
        ]
        self._append(values)  # behind the transaction's other rows, in order

    @db
    def record_move(
        self,
        entity: Entity,
        entity_id: int,
        state: str,
        event: str,
        detail: Mapping[str, Any] | None = None,
    ) -> str:
        """Log a lifecycle move of something the store does not keep a row for (a partner's health):
        checked against the table like every other move. Returns the new state."""
        new_state = lifecycle.target(entity, state, event)
        self.record_change(entity, entity_id, state, new_state, detail)
        return new_state

    @db
    def history(self, entity_type: str, entity_id: int) -> list[StateChange]:
        """Every logged change of one entity, oldest first."""
        if self._pending and any(
            r["entity_type"] == str(entity_type) and r["entity_id"] == entity_id for r in self._pending
        ):
            self.flush()  # its own rows recorded in this transaction (other entities' wait for the commit)
        stmt = rows_where(s.state_changes, "entity_type", "entity_id")
        rows = self.run(stmt, {"k_entity_type": str(entity_type), "k_entity_id": entity_id})
        return [from_mapping(StateChange, r) for r in rows]

    @db
    def details_of(
        self, entity_type: str, entity_ids: Sequence[int], new_states: Sequence[str]
    ) -> dict[int, list[dict[str, Any]]]:
        """The details logged with each entity's changes into one of ``new_states`` (those with a
        detail), oldest first, for many entities in one statement: what ``history`` shows of them."""
        kind, wanted, states = str(entity_type), set(entity_ids), {str(x) for x in new_states}
        # changes this transaction recorded count too (a second answer in one chunk): taken from the
        # pending rows, which come after every written one, instead of writing them early (the
        # transaction's rows then go in one statement at its commit)
        mine = [
            r
            for r in self._pending or ()
            if r["entity_type"] == kind and r["entity_id"] in wanted and r["new_state"] in states
        ]
        t = s.state_changes
        stmt = prebuilt(
            ("details_of",),
            lambda: (
                select(t.c.entity_id, t.c.detail)
                .where(
                    t.c.entity_type == bindparam("entity_type"),
                    t.c.entity_id.in_(bindparam("keys", expanding=True)),
                    t.c.new_state.in_(bindparam("states", expanding=True)),
                )
                .order_by(t.c.id)
            ),
        )
        out: dict[int, list[dict[str, Any]]] = {i: [] for i in entity_ids}
        if entity_ids:
            params = {
                "entity_type": str(entity_type),
                "keys": list(dict.fromkeys(entity_ids)),
                "states": [str(x) for x in new_states],
            }
            for entity_id, detail in self.run(stmt, params):
                if detail:
                    out[int(entity_id)].append(detail)
        for r in mine:
            if r["detail"]:
                out[int(r["entity_id"])].append(r["detail"])
        return out

    @db
    def list_changes(
        self,
        *,
        entity_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[StateChange]:
        """The event log in a time range, newest first."""
        self.flush()
        t = s.state_changes
        where = [*window(t.c.at, since, until), *equal((t.c.entity_type, entity_type))]
        return self.listing(t, StateChange, where=where, limit=limit)

    @db
    def changes_after(
        self, after_id: int, *, entity_type: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> list[StateChange]:
        """Event-log rows with an id above ``after_id``, oldest first (what ``log tail -f`` polls)."""
        self.flush()
        t = s.state_changes
        where = [t.c.id > after_id, *equal((t.c.entity_type, entity_type))]
        return self.listing(t, StateChange, where=where, order=[t.c.id], limit=limit)

    @db
    def latest_states(self, entity_type: str, *, limit: int = MAX_LIMIT) -> dict[int, StateChange]:
        """The newest state change of each entity of one type (e.g. the last alert per authorization)."""
        self.flush()
        t = s.state_changes
        newest = (
            select(func.max(t.c.id))
            .where(t.c.entity_type == entity_type)
            .group_by(t.c.entity_id)
            .scalar_subquery()
        )
        rows = self.listing(t, StateChange, where=[t.c.id.in_(newest)], limit=limit)
        return {int(r.entity_id): r for r in rows}

    @db
    def record_reveal(
        self, *, os_user: str, action: str, subject: str, detail: Mapping[str, Any] | None = None
    ) -> AuditRow:
        """Record that ``os_user`` was shown PHI (``action`` on ``subject``, e.g. 'show' 'request:GW-...')."""
        values = {
            "os_user": os_user,
            "at": self.now(),
            "action": action,
            "subject": subject,
            "detail": dict(detail) if detail is not None else None,
        }
        row = self.run(insert(s.phi_audit).values(**values).returning(*s.phi_audit.c)).one()
        return from_mapping(AuditRow, row)

    @db
    def list_reveals(
        self,
        *,
        os_user: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuditRow]:
        """Reveals of PHI, newest first."""
        t = s.phi_audit
        where = [*window(t.c.at, since, until), *equal((t.c.os_user, os_user))]
        return self.listing(t, AuditRow, where=where, limit=limit)
