"""``tx.files``: files received from or sent to partners, and their lifecycle (``FileState``)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, or_, select, update

from gateway import lifecycle
from gateway.errors import StoreError
from gateway.lifecycle import Entity, FileEvent, FileState, check_initial
from gateway.store import schema as s
from gateway.store.errors import NotFoundError, StaleStateError
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
    guarded_update_id,
    inserting_id,
    window,
)
from gateway.store.rows import FileRow, from_mapping

Direction = Literal["in", "out"]


class FilesRepo(Repo):
    """Record, find, move and claim files."""

    @db
    def record(
        self,
        *,
        direction: Direction,
        partner: str,
        name: str,
        sha256: str,
        size: int,
        payload_path: str | None,
        state: FileState = FileState.RECEIVED,
        reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
        owner: str | None = None,
        then: Sequence[tuple[FileEvent, Mapping[str, Any] | None]] = (),
        ahead: Sequence[FileEvent] = (),
    ) -> FileRow:
        """Insert a file row in one of the lifecycle's initial states (its creation is the first
        state change in the log); ``owner`` is the node whose claim it is (inbox files).

        ``then``: events ``(event, detail)`` the new file undergoes at once in this transaction (an
        API call's file is claimed and accepted, a real-time file's upload starts): the row is
        inserted in the last state they reach and every step is logged as ``transition`` would log
        it, so the transaction steps no UPDATE of a row it has just written. ``ahead``: further
        events the row is inserted past, whose changes the caller logs itself later in this
        transaction, once their details are known (``log_moves``: a real-time answer is stored
        ``processed`` with what processing it found); nothing is to read the row before then."""
        if not HEX64.match(sha256):
            raise StoreError("sha256 must be 64 lower-case hex digits")
        state = FileState(check_initial(Entity.FILE, state))
        states = [str(state)]
        for event in [e for e, _ in then] + list(ahead):  # IllegalTransitionError before any write
            states.append(lifecycle.target(Entity.FILE, states[-1], event))
        now = self.now()
        values = {
            "direction": direction,
            "partner": partner,
            "name": name,
            "sha256": sha256,
            "size": size,
            "state": states[-1],
            "payload_path": payload_path,
            "reason": reason,
            "created_at": now,
            "updated_at": now,
            "lease_owner": owner,
        }
        # only the id back: the row is what was written (reading all of it back meant parsing its
        # times and unsealing its name again, three files per real-time call, under the writer lock)
        file_id = int(self.run(inserting_id(s.files), values).scalar_one())
        changes: list[tuple[str, int, str | None, str, Mapping[str, Any] | None]] = [
            (Entity.FILE, file_id, None, state, detail)
        ]
        for (_, step_detail), old, new in zip(then, states[:-1], states[1:], strict=False):
            if old != new:
                changes.append((Entity.FILE, file_id, old, new, step_detail))
        self.audit.record_change_rows(changes)
        at = now.astimezone(UTC)  # as the store hands times back
        return FileRow(
            id=file_id,
            direction=direction,
            partner=partner,
            name=name,
            sha256=sha256,
            size=size,
            state=states[-1],
            payload_path=payload_path,
            reason=reason,
            created_at=at,
            updated_at=at,
            lease_owner=owner,
            lease_until=None,
        )

    @db
    def get(self, file_id: int) -> FileRow:
        """The file row; NotFoundError if there is none."""
        row = self.run(by_key(s.files, "id"), {KEY: file_id}).first()
        if row is None:
            raise NotFoundError(f"file {file_id} not found")
        return from_mapping(FileRow, row)

    @db
    def lock(self, file_id: int) -> FileRow:
        """The file row, locked until the transaction ends (PostgreSQL; SQLite has one writer)."""
        return from_mapping(FileRow, self.locked(s.files, "id", file_id, f"file {file_id}"))

    @db
    def transition(
        self,
        file_id: int,
        event: FileEvent,
        *,
        expect: str | None = None,
        reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
        owner: str | None = None,
        keep_claim: bool = False,
    ) -> FileRow:
        """Apply ``event`` to a file (per the lifecycle table; with ``expect``, only from that state,
        else StaleStateError). ``reason`` (PHI-free text) replaces the stored one when given.

        With ``owner``, only while that node holds the file's claim (``lease_owner``), else
        StaleStateError: a node whose claim another node took over can no longer move the file. The
        claim ends with the move unless ``keep_claim``."""
        extra: dict[str, Any] = {"reason": reason} if reason is not None else {}
        if expect is not None and owner is None:  # one statement: the UPDATE checks the state
            what = f"file {file_id}"
            moved = self.move_expected(
                Entity.FILE,
                s.files,
                "id",
                file_id,
                event,
                what=what,
                expect=expect,
                extra=extra,
                detail=detail,
            )
            if moved is not None:
                return from_mapping(FileRow, moved)
        row = self.locked(s.files, "id", file_id, f"file {file_id}")
        if owner is not None:
            if row.lease_owner != owner:
                raise StaleStateError(f"file {file_id} is claimed by another node")
            if not keep_claim:
                extra["lease_owner"] = None
        new = self.move(Entity.FILE, s.files, row, event, expect=expect, extra=extra, detail=detail)
        return from_mapping(FileRow, new)

    @db
    def transition_steps(
        self, file_id: int, steps: Sequence[tuple[FileEvent, Mapping[str, Any] | None]], *, expect: str
    ) -> FileRow:
        """``transition`` for consecutive events of one file (``(event, detail)`` each, the first
        from ``expect``) in one UPDATE: the same final row, errors and event-log rows as moving it
        step by step (a real-time answer finishes the upload and acknowledges it at once)."""
        moved = self.move_path(Entity.FILE, s.files, file_id, steps, what=f"file {file_id}", expect=expect)
        if moved is not None:
            return from_mapping(FileRow, moved)
        row = None
        for n, (event, detail) in enumerate(steps):
            row = self.transition(file_id, event, expect=expect if n == 0 else None, detail=detail)
        if row is None:
            raise StoreError("no step to take")
        return row

    def log_moves(
        self, file_id: int, state: str, steps: Sequence[tuple[FileEvent, Mapping[str, Any] | None]]
    ) -> str:
        """Log the changes of ``steps`` (``(event, detail)`` each, from ``state``) that a file was
        already moved through in this transaction (``record(ahead=...)``); the state they reach."""
        rows: list[tuple[str, int, str | None, str, Mapping[str, Any] | None]] = []
        for event, detail in steps:
            new = lifecycle.target(Entity.FILE, state, event)
            if new != state:
                rows.append((Entity.FILE, file_id, state, new, detail))
            state = new
        self.audit.record_change_rows(rows)
        return state

    @db
    def move_unlogged(self, file_id: int, events: Sequence[FileEvent], *, expect: str) -> list[str] | None:
        """The one guarded UPDATE of ``transition_steps`` (the file moved from ``expect`` through
        ``events``) without its event-log rows: the states it went through (``expect`` first), for
        the caller to log with details it has only later (``audit.record_change_rows``, in this
        transaction); None, with nothing written, when the file is not in ``expect``."""
        states = [expect]
        for event in events:
            states.append(lifecycle.target(Entity.FILE, states[-1], event))
        values = {KEY: file_id, WAS: expect, "state": states[-1], "updated_at": self.now()}
        moved = self.run(guarded_update_id(s.files, "id"), values).first()
        return states if moved is not None else None

    @db
    def advance(
        self, file_id: int, event: FileEvent, *, expect: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        """``transition(file_id, event, expect=expect, detail=detail)`` for a caller that does not
        read the row back (a delivery): one guarded UPDATE returning only the id, the change logged;
        the same errors (``transition`` names them when the file is not in ``expect``)."""
        states = self.move_unlogged(file_id, (event,), expect=expect)
        if states is None:
            self.transition(file_id, event, expect=expect, detail=detail)  # raises what went wrong
            return
        if states[0] != states[1]:
            self.audit.record_change(Entity.FILE, file_id, states[0], states[1], detail)

    @db
    def adopt(self, file_id: int, *, state: str, owner: str, dead: Collection[str] = ()) -> bool:
        """Make ``owner`` the holder of a claimed file still in ``state`` when nobody, ``owner``
        itself or a node in ``dead`` holds it; False when a live node holds it (or it moved on)."""
        t = s.files
        holder = or_(t.c.lease_owner.is_(None), t.c.lease_owner == owner, t.c.lease_owner.in_(list(dead)))
        done = self.run(
            update(t).where(t.c.id == file_id, t.c.state == state, holder).values(lease_owner=owner)
        )
        return done.rowcount == 1

    @db
    def find_by_sha256(
        self,
        sha256: str,
        *,
        within: timedelta,
        direction: Direction | None = None,
        exclude_id: int | None = None,
    ) -> FileRow | None:
        """The newest file with this content recorded in the last ``within`` (duplicate detection).

        ``claiming`` and ``vanished`` rows are left out: they are claims that have not (yet) or never got
        the inbox file (another node won the race, or it disappeared), so they never held the content and
        must not make the winner's copy look like a duplicate.
        """
        t = s.files
        where = [
            t.c.state.not_in([FileState.CLAIMING, FileState.VANISHED]),
            t.c.sha256 == sha256,
            t.c.created_at >= self.now() - within,
            *equal((t.c.direction, direction)),
        ]
        if exclude_id is not None:
            where.append(t.c.id != exclude_id)
        rows = self.listing(t, FileRow, where=where, order=[t.c.created_at.desc(), t.c.id.desc()], limit=1)
        return rows[0] if rows else None

    @db
    def find(
        self, *, direction: Direction, partner: str, name: str, size: int | None = None
    ) -> FileRow | None:
        """The newest file of a partner with this name (and size): remembers what was already fetched."""
        t = s.files
        where = equal((t.c.direction, direction), (t.c.partner, partner), (t.c.name, name), (t.c.size, size))
        rows = self.listing(t, FileRow, where=where, limit=1)
        return rows[0] if rows else None

    @db
    def query(
        self,
        *,
        state: str | None = None,
        direction: Direction | None = None,
        partner: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[FileRow]:
        """Files by state/direction/partner and creation time, newest first."""
        t = s.files
        where = [
            *window(t.c.created_at, since, until),
            *equal((t.c.state, state), (t.c.direction, direction), (t.c.partner, partner)),
        ]
        return self.listing(
            t, FileRow, where=where, order=[t.c.created_at.desc(), t.c.id.desc()], limit=limit
        )

    @db
    def page(
        self,
        *,
        partner: str | None = None,
        direction: Direction | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        limit: int = DEFAULT_LIMIT,
        newest_first: bool = True,
    ) -> list[FileRow]:
        """Files by partner/direction/creation time, paged by id (``after_id``/``before_id``, exclusive)."""
        t = s.files
        where = [
            *window(t.c.created_at, since, until),
            *equal((t.c.partner, partner), (t.c.direction, direction)),
        ]
        if after_id is not None:
            where.append(t.c.id > after_id)
        if before_id is not None:
            where.append(t.c.id < before_id)
        order = t.c.id.desc() if newest_first else t.c.id
        return self.listing(t, FileRow, where=where, order=[order], limit=limit)

    @db
    def by_ids(self, file_ids: Iterable[int]) -> dict[int, FileRow]:
        """The file rows with these ids (missing ids are left out)."""
        ids = sorted(set(file_ids))
        if not ids:
            return {}
        return {r.id: r for r in self.listing(s.files, FileRow, where=[s.files.c.id.in_(ids)], limit=None)}

    @db
    def unacknowledged(self, *, sent_before: datetime, limit: int = DEFAULT_LIMIT) -> list[FileRow]:
        """Sent files carrying interchanges for which no TA1 or 999 verdict came back, sent (last state
        change) before ``sent_before``; oldest first. Our own 999/TA1 files record no interchanges,
        so they never expect an acknowledgment and are not listed. The one acknowledgment-overdue
        query: the deadline stage and ``x12gw overdue`` both use it."""
        f, i, g = s.files, s.interchanges, s.functional_groups
        has_interchange = select(i.c.id).where(i.c.file_id == f.c.id).exists()
        acked_interchange = select(i.c.id).where(i.c.file_id == f.c.id, i.c.ack_status.is_not(None)).exists()
        acked_group = (
            select(g.c.id)
            .join(i, i.c.id == g.c.interchange_id)
            .where(i.c.file_id == f.c.id, g.c.ack_status.is_not(None))
            .exists()
        )
        where = [
            f.c.direction == "out",
            f.c.state == FileState.SENT,
            f.c.updated_at < sent_before,
            has_interchange,
            ~acked_interchange,
            ~acked_group,
        ]
        return self.listing(f, FileRow, where=where, order=[f.c.updated_at, f.c.id], limit=limit)

    @db
    def claim(
        self,
        *,
        event: FileEvent,
        direction: Direction,
        owner: str,
        until: datetime,
        limit: int,
        file_id: int | None = None,
    ) -> list[FileRow]:
        """Files the event can move (its source states; only ``file_id`` when given), moved under
        this node's lease."""
        t = s.files
        if file_id is not None:
            match = {"direction": direction}
            rows = leases.claim_by_id(self, t, Entity.FILE, event, file_id, match, owner, until, limit)
            return [from_mapping(FileRow, r) for r in rows]
        conds = [t.c.direction == direction]
        rows = leases.claim(self, t, Entity.FILE, event, conds, owner, until, limit)
        return [from_mapping(FileRow, r) for r in rows]

    @db
    def release_expired(self, *, dead_owners: Iterable[str] = ()) -> int:
        """Files whose lease expired, or whose node is known dead, go back (``lease_expired``)."""
        return leases.release_expired(self, s.files, Entity.FILE, FileEvent.LEASE_EXPIRED, dead_owners)

    @db
    def count_states(self) -> list[dict[str, Any]]:
        """Files counted by direction and state (``x12gw status``: queue depths, quarantined files)."""
        t = s.files
        keys = (t.c.direction, t.c.state)
        stmt = select(*keys, func.count().label("count")).group_by(*keys)
        return [dict(row._mapping) for row in self.run(stmt)]
