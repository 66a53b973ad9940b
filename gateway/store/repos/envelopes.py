"""``tx.envelopes``: interchanges (ISA), functional groups (GS) and transaction sets (ST) of files,
their acknowledgment verdicts, and the transaction sets' lifecycle (``SetState``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Executable,
    Row,
    Select,
    bindparam,
    func,
    literal_column,
    select,
    union_all,
    update,
)

from gateway import lifecycle
from gateway.lifecycle import Entity, SetEvent, SetState, check_initial
from gateway.store import schema as s
from gateway.store.errors import NotFoundError, StaleStateError
from gateway.store.repos.base import (
    DEFAULT_LIMIT,
    KEY,
    WAS,
    Repo,
    check_limit,
    db,
    equal,
    insert_ids,
    insert_rows,
    inserting,
    inserting_id,
    keyed_update_many,
    locked_many,
    prebuilt,
    rows_where,
    window,
)
from gateway.store.rows import GroupRow, InterchangeRow, TransactionSetRow, from_mapping

AckLevel = Literal["interchange", "group", "transaction_set"]
# sets recorded per statement of ``record_sets`` (bounded memory for a file of any size)
SETS_AT_ONCE = 1_000

# a set's trace numbers, written by one multi-row INSERT (``base.insert_rows``)
_TRACE_COLUMNS = ("transaction_set_id", "trace_number")
_ACK_TABLES = {
    "interchange": s.interchanges,
    "group": s.functional_groups,
    "transaction_set": s.transaction_sets,
}


def _sets_query(given: tuple[str, ...], limit: int) -> Select[Any]:
    """``find_sets``'s statement for this set of filters (``f_<name>`` parameters), built once: the
    inbound stage matches every response through it."""

    def build() -> Select[Any]:
        t, tn = s.transaction_sets, s.trace_numbers
        conds: list[ColumnElement[bool]] = []
        for name in given:
            column = name.removeprefix("f_")
            if column == "trace_number":
                traced = select(tn.c.transaction_set_id).where(tn.c.trace_number == bindparam(name))
                conds.append(t.c.id.in_(traced))
            elif column == "since":
                conds.append(t.c.created_at >= bindparam(name))
            elif column == "until":
                conds.append(t.c.created_at < bindparam(name))
            else:
                conds.append(t.c[column] == bindparam(name))
        return select(t).where(*conds).order_by(t.c.id.desc()).limit(limit)

    return prebuilt(("find_sets", *given, str(limit)), build)


@dataclass(frozen=True)
class NewSet:
    """One transaction set for ``record_sets`` (the arguments of ``record_set``)."""

    interchange_id: int
    group_id: int | None
    control_number: str
    set_id: str
    trace_numbers: tuple[str, ...] = ()
    bht03: str | None = None
    state: SetState = SetState.RECEIVED
    request_id: int | None = None
    ack_status: str | None = None


class EnvelopesRepo(Repo):
    """Record and find envelopes; the verdicts TA1/999 gave them."""

    @db
    def record_interchange(
        self,
        *,
        file_id: int,
        control_number: int,
        sender: str,
        receiver: str,
        interchange_at: datetime | None = None,
        ack_status: str | None = None,
    ) -> InterchangeRow:
        """Record one ISA envelope of a file (``sender``/``receiver`` as 'qualifier:id')."""
        now = self.now()
        values = {
            "file_id": file_id,
            "control_number": control_number,
            "sender": sender,
            "receiver": receiver,
            "interchange_at": interchange_at,
            "ack_status": ack_status,
            "created_at": now,
        }
        # only the id back: the row returned is what was written (no times parsed under the lock)
        new_id = int(self.run(inserting_id(s.interchanges), values).scalar_one())
        return InterchangeRow(
            id=new_id,
            file_id=file_id,
            control_number=control_number,
            sender=sender,
            receiver=receiver,
            interchange_at=None if interchange_at is None else interchange_at.astimezone(UTC),
            ack_status=ack_status,
            created_at=now.astimezone(UTC),
        )

    @db
    def record_group(
        self,
        *,
        interchange_id: int,
        control_number: int,
        functional_id: str,
        version: str,
        ack_status: str | None = None,
    ) -> GroupRow:
        """Record one GS group (GS06 control number, GS01 functional id, GS08 version)."""
        now = self.now()
        values = {
            "interchange_id": interchange_id,
            "control_number": control_number,
            "functional_id": functional_id,
            "version": version,
            "ack_status": ack_status,
            "created_at": now,
        }
        new_id = int(self.run(inserting_id(s.functional_groups), values).scalar_one())  # as above
        return GroupRow(
            id=new_id,
            interchange_id=interchange_id,
            control_number=control_number,
            functional_id=functional_id,
            version=version,
            ack_status=ack_status,
            created_at=now.astimezone(UTC),
        )

    @db
    def record_set(
        self,
        *,
        interchange_id: int,
        group_id: int | None,
        control_number: str,
        set_id: str,
        trace_numbers: Iterable[str] = (),
        bht03: str | None = None,
        state: SetState = SetState.RECEIVED,
        request_id: int | None = None,
        ack_status: str | None = None,
    ) -> TransactionSetRow:
        """Record one transaction set (or TA1 with ``group_id=None``) with its TRN02 trace numbers."""
        state = SetState(check_initial(Entity.TRANSACTION_SET, state))
        now = self.now()
        values = {
            "interchange_id": interchange_id,
            "group_id": group_id,
            "control_number": control_number,
            "set_id": set_id,
            "bht03": bht03,
            "ack_status": ack_status,
            "state": state,
            "request_id": request_id,
            "created_at": now,
            "updated_at": now,
        }
        row = self.run(inserting(s.transaction_sets), values).one()
        traces = tuple(dict.fromkeys(trace_numbers))
        if traces:
            rows = [{"transaction_set_id": row.id, "trace_number": trn} for trn in traces]
            insert_rows(self.conn, s.trace_numbers, _TRACE_COLUMNS, rows)
        self.audit.record_change(Entity.TRANSACTION_SET, row.id, None, state)
        return from_mapping(TransactionSetRow, row, trace_numbers=traces)

    @db
    def record_sets(self, sets: Sequence[NewSet]) -> list[int]:
        """``record_set`` for a file's sets in three statements (sets, trace numbers, event log) per
        ``SETS_AT_ONCE`` of them (the statements' parameter lists of a 46,000-set file would be tens
        of MiB at once); the new rows' ids in the order given."""
        ids: list[int] = []
        for start in range(0, len(sets), SETS_AT_ONCE):
            ids.extend(self._record_sets(sets[start : start + SETS_AT_ONCE]))
        return ids

    def _record_sets(self, sets: Sequence[NewSet]) -> list[int]:
        if not sets:
            return []
        now = self.now()
        values = [
            {
                "interchange_id": n.interchange_id,
                "group_id": n.group_id,
                "control_number": n.control_number,
                "set_id": n.set_id,
                "bht03": n.bht03,
                "ack_status": n.ack_status,
                "state": SetState(check_initial(Entity.TRANSACTION_SET, n.state)),
                "request_id": n.request_id,
                "created_at": now,
                "updated_at": now,
            }
            for n in sets
        ]
        ids = insert_ids(self.conn, s.transaction_sets, values)
        traces = [
            {"transaction_set_id": i, "trace_number": trn}
            for i, n in zip(ids, sets, strict=True)
            for trn in dict.fromkeys(n.trace_numbers)
        ]
        if traces:
            insert_rows(self.conn, s.trace_numbers, _TRACE_COLUMNS, traces)
        changes = [(i, None, str(v["state"])) for i, v in zip(ids, values, strict=True)]
        self.audit.record_changes(Entity.TRANSACTION_SET, changes)
        return ids

    @db
    def transition_set(
        self,
        set_row_id: int,
        event: SetEvent,
        *,
        expect: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> TransactionSetRow:
        """Apply ``event`` to a transaction set (per the lifecycle table, logged like files)."""
        t = s.transaction_sets
        row = self.locked(t, "id", set_row_id, f"transaction set {set_row_id}")
        new = self.move(Entity.TRANSACTION_SET, t, row, event, expect=expect, detail=detail)
        return self._with_traces([new])[0]

    @db
    def transition_sets(self, set_row_ids: Sequence[int], event: SetEvent) -> None:
        """``transition_set`` for a batch of sets (a sent file's) in three statements: all or none."""
        if not set_row_ids:
            return
        t = s.transaction_sets
        rows = {r.id: r for r in self.run(locked_many(t, "id"), {"keys": list(set_row_ids)})}
        if len(rows) != len(set(set_row_ids)):
            raise NotFoundError("transaction set not found")
        moves: list[tuple[Row[Any], Mapping[str, Any]]] = [(rows[i], {}) for i in dict.fromkeys(set_row_ids)]
        self.move_many(Entity.TRANSACTION_SET, t, moves, event)

    @db
    def transition_sets_from(self, set_row_ids: Sequence[int], event: SetEvent, *, expect: str) -> bool:
        """``transition_sets`` for sets the caller knows to be in ``expect`` (the real-time sender's
        own, just queued): one guarded UPDATE, nothing read. False, with nothing written, when none
        of them is in ``expect`` (the caller moves them as ``transition_sets`` does);
        StaleStateError when only some are (the transaction must not go on half moved)."""
        ids = list(dict.fromkeys(set_row_ids))
        if not ids:
            return True
        new_state = lifecycle.target(Entity.TRANSACTION_SET, expect, event)
        t = s.transaction_sets
        stmt = prebuilt(
            ("sets_from",),
            lambda: (
                update(t)
                .where(t.c.id.in_(bindparam("keys", expanding=True)), t.c.state == bindparam(WAS))
                .values(state=bindparam("state"), updated_at=bindparam("updated_at"))
            ),
        )
        params = {"keys": ids, WAS: expect, "state": new_state, "updated_at": self.now()}
        moved = self.run(stmt, params).rowcount
        if moved == 0:
            return False
        if moved != len(ids):
            raise StaleStateError(f"{len(ids) - moved} transaction set(s) not {expect!r}")
        if new_state != expect:
            self.audit.record_changes(Entity.TRANSACTION_SET, [(i, expect, new_state) for i in ids])
        return True

    @db
    def link_set(self, set_row_id: int, request_id: int) -> None:
        """Attach a (response) transaction set to the request it answers."""
        t = s.transaction_sets
        result = self.run(
            update(t).where(t.c.id == set_row_id).values(request_id=request_id, updated_at=self.now())
        )
        if result.rowcount == 0:
            raise NotFoundError(f"transaction set {set_row_id} not found")

    @db
    def set_ack_status(
        self, level: AckLevel, row_id: int, status: str, *, detail: Mapping[str, Any] | None = None
    ) -> None:
        """Record the TA1/999 verdict (A, E, R, P, ...) on an interchange, group or transaction set.

        A verdict is not a lifecycle state; the change is logged under entity type ``<level>.ack``.
        """
        table = _ACK_TABLES[level]
        row = self.locked(table, "id", row_id, f"{level} {row_id}")
        self.run(update(table).where(table.c.id == row_id).values(ack_status=status))
        if row.ack_status != status:
            self.audit.record_change(f"{level}.ack", row_id, row.ack_status, status, detail)

    @db
    def set_ack_statuses(self, level: AckLevel, statuses: Mapping[int, str]) -> None:
        """``set_ack_status`` for many rows of one level (a 999's sets) in three statements."""
        if not statuses:
            return
        table = _ACK_TABLES[level]
        rows = list(self.run(locked_many(table, "id"), {"keys": list(statuses)}))
        if len(rows) != len(statuses):
            raise NotFoundError(f"{level} not found")
        values = [{KEY: r.id, "ack_status": statuses[r.id]} for r in rows]
        self.run(keyed_update_many(table, ("ack_status",)), values)
        changes = [(r.id, r.ack_status, statuses[r.id]) for r in rows if r.ack_status != statuses[r.id]]
        self.audit.record_changes(f"{level}.ack", changes)

    # -- reads -----------------------------------------------------------------------------------

    @db
    def get_interchange(self, interchange_id: int) -> InterchangeRow:
        """One interchange by row id; NotFoundError if there is none."""
        rows = self.listing(s.interchanges, InterchangeRow, where=[s.interchanges.c.id == interchange_id])
        if not rows:
            raise NotFoundError(f"interchange {interchange_id} not found")
        return rows[0]

    @db
    def find_interchanges(
        self, control_number: int, *, sender: str | None = None, receiver: str | None = None
    ) -> list[InterchangeRow]:
        """Interchanges with this ISA13 (optionally of one sender/receiver), newest first."""
        t = s.interchanges
        where = equal((t.c.control_number, control_number), (t.c.sender, sender), (t.c.receiver, receiver))
        return self.listing(t, InterchangeRow, where=where, limit=None)

    @db
    def interchanges_of_file(self, file_id: int) -> list[InterchangeRow]:
        """The interchanges recorded for one file, in file order."""
        rows = self.run(rows_where(s.interchanges, "file_id"), {"k_file_id": file_id})
        return [from_mapping(InterchangeRow, r) for r in rows]

    @db
    def sets_of_file(self, file_id: int) -> list[tuple[int, int | None]]:
        """``(set row id, request id)`` of every transaction set of one file, in file order (by
        interchange, group and set), in one statement: what sending a file moves."""
        ic, g, ts = s.interchanges, s.functional_groups, s.transaction_sets

        def build() -> Select[Any]:
            return (
                select(ts.c.id, ts.c.request_id)
                .join(g, ts.c.group_id == g.c.id)
                .join(ic, g.c.interchange_id == ic.c.id)
                .where(ic.c.file_id == bindparam("k_file_id"))
                .order_by(ic.c.id, g.c.id, ts.c.id)
            )

        rows = self.run(prebuilt(("sets_of_file",), build), {"k_file_id": file_id})
        return [(int(r.id), r.request_id) for r in rows]

    @db
    def find_groups(self, control_number: int, *, interchange_id: int | None = None) -> list[GroupRow]:
        """Functional groups with this GS06, newest first."""
        t = s.functional_groups
        where = equal((t.c.control_number, control_number), (t.c.interchange_id, interchange_id))
        return self.listing(t, GroupRow, where=where, limit=None)

    @db
    def groups_of_interchange(self, interchange_id: int) -> list[GroupRow]:
        """The groups of one interchange, in file order."""
        rows = self.run(
            rows_where(s.functional_groups, "interchange_id"), {"k_interchange_id": interchange_id}
        )
        return [from_mapping(GroupRow, r) for r in rows]

    @db
    def get_set(self, set_row_id: int) -> TransactionSetRow:
        """One transaction set by row id; NotFoundError if there is none."""
        t = s.transaction_sets
        row = self.run(select(t).where(t.c.id == set_row_id)).first()
        if row is None:
            raise NotFoundError(f"transaction set {set_row_id} not found")
        return self._with_traces([row])[0]

    @db
    def sets_of_group(self, group_id: int) -> list[TransactionSetRow]:
        """The transaction sets of one group, in file order."""
        stmt = rows_where(s.transaction_sets, "group_id")
        return self._with_traces(self.run(stmt, {"k_group_id": group_id}).all())

    @db
    def find_sets(
        self,
        *,
        control_number: str | None = None,
        trace_number: str | None = None,
        bht03: str | None = None,
        set_id: str | None = None,
        state: str | None = None,
        request_id: int | None = None,
        interchange_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[TransactionSetRow]:
        """Transaction sets by ST02, TRN trace number, BHT03, kind, state, request or time; newest first."""
        given = {
            "control_number": control_number,
            "bht03": bht03,
            "set_id": set_id,
            "state": state,
            "request_id": request_id,
            "interchange_id": interchange_id,
            "trace_number": trace_number,
            "since": since,
            "until": until,
        }
        params = {f"f_{k}": v for k, v in given.items() if v is not None}
        stmt = _sets_query(tuple(sorted(params)), check_limit(limit))
        return self._with_traces(self.run(stmt, params).all())

    @db
    def requests_of_sets(
        self,
        *,
        trace_number: str | None = None,
        bht03: str | None = None,
        set_id: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[int]:
        """The request ids of the sets ``find_sets`` gives for these filters (sets without a request
        left out), without reading the sets' trace numbers: matching a response needs only these."""
        given = {"trace_number": trace_number, "bht03": bht03, "set_id": set_id}
        params = {f"f_{k}": v for k, v in given.items() if v is not None}
        stmt = _sets_query(tuple(sorted(params)), check_limit(limit))
        return [r.request_id for r in self.run(stmt, params) if r.request_id is not None]

    @db
    def requests_of_traces(
        self, trace_numbers: Sequence[str], *, set_id: str, limit: int = DEFAULT_LIMIT
    ) -> dict[str, list[int]]:
        """``requests_of_sets(trace_number=t, set_id=set_id, limit=limit)`` for every ``t`` at once (one
        statement for a file's responses): per trace, the request ids of its newest ``limit`` sets."""
        tn, t = s.trace_numbers, s.transaction_sets
        stmt = prebuilt(
            ("requests_of_traces",),
            lambda: (
                select(tn.c.trace_number, t.c.id, t.c.request_id)
                .join(t, t.c.id == tn.c.transaction_set_id)
                .where(
                    tn.c.trace_number.in_(bindparam("keys", expanding=True)),
                    t.c.set_id == bindparam("set_id"),
                )
                .order_by(t.c.id.desc())
            ),
        )
        return self._newest(self.run(stmt, {"keys": list(trace_numbers), "set_id": set_id}), limit)

    @db
    def requests_of_bht03s(
        self, bht03s: Sequence[str], *, set_id: str, limit: int = DEFAULT_LIMIT
    ) -> dict[str, list[int]]:
        """``requests_of_sets(bht03=b, set_id=set_id, limit=limit)`` for every ``b`` in one statement."""
        t = s.transaction_sets
        stmt = prebuilt(
            ("requests_of_bht03s",),
            lambda: (
                select(t.c.bht03, t.c.id, t.c.request_id)
                .where(t.c.bht03.in_(bindparam("keys", expanding=True)), t.c.set_id == bindparam("set_id"))
                .order_by(t.c.id.desc())
            ),
        )
        return self._newest(self.run(stmt, {"keys": list(bht03s), "set_id": set_id}), limit)

    @db
    def requests_of_keys(
        self, trace_numbers: Sequence[str], bht03s: Sequence[str], *, set_id: str, limit: int = DEFAULT_LIMIT
    ) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """``(requests_of_traces(...), requests_of_bht03s(...))`` in one statement when both lists
        are given (a real-time answer's 271 carries a trace and a BHT03: one statement less while the
        writer lock is held); either alone, or neither, as those give it."""
        if not trace_numbers or not bht03s:
            by_trace = (
                self.requests_of_traces(trace_numbers, set_id=set_id, limit=limit) if trace_numbers else {}
            )
            by_bht = self.requests_of_bht03s(bht03s, set_id=set_id, limit=limit) if bht03s else {}
            return by_trace, by_bht
        tn, t = s.trace_numbers, s.transaction_sets

        def build() -> Executable:
            by_trace = (
                select(
                    literal_column("'t'").label("src"), tn.c.trace_number.label("key"), t.c.id, t.c.request_id
                )
                .join(t, t.c.id == tn.c.transaction_set_id)
                .where(
                    tn.c.trace_number.in_(bindparam("traces", expanding=True)),
                    t.c.set_id == bindparam("set_id"),
                )
            )
            by_bht = select(
                literal_column("'b'").label("src"), t.c.bht03.label("key"), t.c.id, t.c.request_id
            ).where(t.c.bht03.in_(bindparam("bhts", expanding=True)), t.c.set_id == bindparam("set_id"))
            return union_all(by_trace, by_bht)

        stmt = prebuilt(("requests_of_keys",), build)
        params = {"traces": list(trace_numbers), "bhts": list(bht03s), "set_id": set_id}
        rows = sorted(
            (tuple(r) for r in self.run(stmt, params)), key=lambda r: r[2], reverse=True
        )  # newest first
        return (
            self._newest((r[1:] for r in rows if r[0] == "t"), limit),
            self._newest((r[1:] for r in rows if r[0] == "b"), limit),
        )

    @staticmethod
    def _newest(rows: Iterable[Row[Any]] | Iterable[tuple[Any, ...]], limit: int) -> dict[str, list[int]]:
        """(key, set id, request id) rows, newest set first -> per key the request ids of its first
        ``limit`` distinct sets, sets without a request left out after the limit (as ``find_sets``)."""
        check_limit(limit)
        sets: dict[str, list[int]] = {}
        out: dict[str, list[int]] = {}
        for key, set_row_id, request_id in (tuple(r) for r in rows):
            taken = sets.setdefault(key, [])
            if len(taken) >= limit or set_row_id in taken:
                continue
            taken.append(set_row_id)
            if request_id is not None:
                out.setdefault(key, []).append(request_id)
        return out

    @db
    def find_sets_by_control(
        self, control_number: str, *, limit: int = DEFAULT_LIMIT
    ) -> list[TransactionSetRow]:
        """Transaction sets whose ST02 equals ``control_number`` ignoring leading zeros; newest first."""
        t = s.transaction_sets
        wanted = control_number.lstrip("0")
        stmt = (
            select(t)
            .where(func.ltrim(t.c.control_number, "0") == wanted)
            .order_by(t.c.id.desc())
            .limit(check_limit(limit))
        )
        return self._with_traces(self.run(stmt).all())

    def _traces(self, set_ids: Sequence[int]) -> dict[int, list[str]]:
        """The trace numbers of these sets (one query for the whole list), in recorded order."""
        tn = s.trace_numbers
        traces: dict[int, list[str]] = {i: [] for i in set_ids}
        if set_ids:
            # one set (a real-time answer's): no expanding IN list, which costs more to render than to run
            which = tn.c.transaction_set_id
            match = which == set_ids[0] if len(set_ids) == 1 else which.in_(set_ids)
            stmt = select(tn.c.transaction_set_id, tn.c.trace_number).where(match)
            for set_id, trn in self.run(stmt.order_by(tn.c.id)):
                traces[set_id].append(trn)
        return traces

    def _with_traces(self, rows: Sequence[Row[Any]]) -> list[TransactionSetRow]:
        """Attach each set's trace numbers."""
        traces = self._traces([r.id for r in rows])
        return [from_mapping(TransactionSetRow, r, trace_numbers=tuple(traces[r.id])) for r in rows]

    # -- operators' reads --------------------------------------------------------------------------

    @db
    def rows_of_files(self, file_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Every interchange of these files with its transaction sets, groups and requests, flattened.

        One dict per transaction set (keys ``file_id``, ``interchange_*``, ``group_*``, ``set_*``,
        ``trace_numbers``, ``request_*``); an interchange without sets (a TA1) gives one dict whose set
        and group keys are None. Ordered by file, interchange and set.
        """
        if not file_ids:
            return []
        i, g, t, r = s.interchanges, s.functional_groups, s.transaction_sets, s.requests
        stmt = (
            select(
                i.c.file_id,
                i.c.id.label("interchange_row_id"),
                i.c.control_number.label("interchange_control"),
                i.c.sender,
                i.c.receiver,
                i.c.ack_status.label("interchange_ack"),
                g.c.id.label("group_row_id"),
                g.c.control_number.label("group_control"),
                g.c.functional_id,
                g.c.version,
                g.c.ack_status.label("group_ack"),
                t.c.id.label("set_row_id"),
                t.c.set_id,
                t.c.control_number.label("set_control"),
                t.c.bht03,
                t.c.ack_status.label("set_ack"),
                t.c.state.label("set_state"),
                t.c.created_at.label("set_created_at"),
                t.c.updated_at.label("set_updated_at"),
                t.c.request_id,
                r.c.tracking_number,
                r.c.state.label("request_state"),
                r.c.kind.label("request_kind"),
                r.c.payer_id,
            )
            .select_from(i)
            .outerjoin(t, t.c.interchange_id == i.c.id)
            .outerjoin(g, g.c.id == t.c.group_id)
            .outerjoin(r, r.c.id == t.c.request_id)
            .where(i.c.file_id.in_(list(file_ids)))
            .order_by(i.c.file_id, i.c.id, t.c.id)
        )
        rows = [dict(row._mapping) for row in self.run(stmt)]
        traces = self._traces([row["set_row_id"] for row in rows if row["set_row_id"] is not None])
        for row in rows:
            row["trace_numbers"] = traces.get(row["set_row_id"], [])
        return rows

    @db
    def count_sets(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Transaction sets counted by direction, partner, set id, state, acknowledgment code and their
        interchange's TA1 code (``interchange_ack``: a TA1 rejection rejects every set inside)."""
        t, i, f = s.transaction_sets, s.interchanges, s.files
        keys = (
            f.c.direction,
            f.c.partner,
            t.c.set_id,
            t.c.state,
            t.c.ack_status,
            i.c.ack_status.label("interchange_ack"),
        )
        stmt = (
            select(*keys, func.count().label("count"))
            .select_from(t)
            .join(i, i.c.id == t.c.interchange_id)
            .join(f, f.c.id == i.c.file_id)
            .where(*window(t.c.created_at, since, until))
            .group_by(*keys)
        )
        return [dict(row._mapping) for row in self.run(stmt)]
