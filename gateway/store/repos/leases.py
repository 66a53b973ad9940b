"""Claiming work for one node (row locks + a lease) and giving it back when the node dies.

Shared by ``tx.files`` and ``tx.requests``: the moves themselves are lifecycle events (``claim`` goes
from the event's source states, ``release`` is the table's lease-expired event), so a lease can only
ever move a row the way the table says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, Update, bindparam, or_, select, update

from gateway import lifecycle
from gateway.store.repos.base import KEY, WAS, Repo, by_key, check_limit, keyed_update, prebuilt


def claim(  # noqa: PLR0917 - shared by the two claim methods
    repo: Repo,
    table: Table,
    entity: lifecycle.Entity,
    event: str,
    conds: list[ColumnElement[bool]],
    owner: str,
    until: datetime,
    limit: int,
) -> list[Row[Any]]:
    """Lock up to ``limit`` rows in the event's source states that no other transaction holds (FOR
    UPDATE SKIP LOCKED; SQLite, one node only, has no row locks) and apply ``event`` under a lease."""
    sources = sorted(lifecycle.sources(entity, event))
    pick = (
        select(table.c.id)
        .where(table.c.state.in_(sources), *conds)
        .order_by(table.c.id)
        .limit(check_limit(limit))
    )
    ids = list(repo.conn.execute(pick.with_for_update(skip_locked=True)).scalars())
    if not ids:
        return []
    if len(ids) == 1:  # one row (a real-time request, its answer): by key, statements built once
        row = repo.run(by_key(table, "id"), {KEY: ids[0]}).one()
        return [_claim_one(repo, table, entity, event, row, owner, until)]
    # the states only: the rows themselves are read once, after the move (a payload is unsealed per read)
    rows = repo.run(select(table.c.id, table.c.state).where(table.c.id.in_(ids)).order_by(table.c.id)).all()
    targets = {row.id: lifecycle.target(entity, row.state, event) for row in rows}
    for new_state in sorted(set(targets.values())):
        chosen = [i for i, t in targets.items() if t == new_state]
        stmt = (
            update(table)
            .where(table.c.id.in_(chosen))
            .values(state=new_state, lease_owner=owner, lease_until=until, updated_at=repo.now())
        )
        repo.run(stmt)
    changes = [(row.id, row.state, targets[row.id]) for row in rows]
    repo.audit.record_changes(entity, changes, {"node": owner})  # one executemany, rows in id order
    return list(repo.run(select(table).where(table.c.id.in_(ids)).order_by(table.c.id)).all())


def claim_by_id(  # noqa: PLR0917 - ``claim``'s parameters
    repo: Repo,
    table: Table,
    entity: lifecycle.Entity,
    event: str,
    row_id: int,
    match: Mapping[str, object],
    owner: str,
    until: datetime,
    limit: int = 1,
) -> list[Row[Any]]:
    """``claim`` of the one row with this id (a real-time request, its answer) when no other
    transaction holds it, it is in one of the event's source states and each ``match`` column has
    its value (what ``claim``'s conditions would ask): a locked read by key and an update, both
    built once, instead of a query built for the call and a second read."""
    check_limit(limit)  # as ``claim`` checks it
    sources = lifecycle.sources(entity, event)
    if repo.conn.dialect.name == "sqlite" and len(sources) == 1 and None not in match.values():
        return _claim_guarded(repo, table, entity, event, row_id, match, owner, until)
    return _claim_locked(repo, table, entity, event, row_id, match, owner, until)


def _claim_locked(  # noqa: PLR0917 - ``claim_by_id``'s parameters
    repo: Repo,
    table: Table,
    entity: lifecycle.Entity,
    event: str,
    row_id: int,
    match: Mapping[str, object],
    owner: str,
    until: datetime,
) -> list[Row[Any]]:
    """``claim_by_id`` as a locked read (``FOR UPDATE SKIP LOCKED``: a row another transaction holds
    is skipped, not waited for) and an update of the row read; the reference for ``_claim_guarded``."""
    locked = by_key(table, "id", for_update=True, skip_locked=True)
    row = repo.run(locked, {KEY: row_id}).first()
    if row is None or row.state not in lifecycle.sources(entity, event):
        return []
    if any(getattr(row, column) != value for column, value in match.items()):
        return []
    return [_claim_one(repo, table, entity, event, row, owner, until)]


def _guarded_claim(table: Table, columns: tuple[str, ...]) -> Update:
    """``UPDATE table SET state, lease, updated_at WHERE id = :pk_value AND state = :k_state AND
    <column> = :k_<column> ... RETURNING *``."""

    def build() -> Update:
        conds = [table.c.id == bindparam(KEY), table.c.state == bindparam(WAS)]
        conds += [table.c[c] == bindparam(f"k_{c}") for c in columns]
        return update(table).where(*conds).returning(*table.c)

    return prebuilt(("guarded_claim", table.name, *columns), build)


def _claim_guarded(  # noqa: PLR0917 - ``claim_by_id``'s parameters
    repo: Repo,
    table: Table,
    entity: lifecycle.Entity,
    event: str,
    row_id: int,
    match: Mapping[str, object],
    owner: str,
    until: datetime,
) -> list[Row[Any]]:
    """``claim_by_id`` on SQLite for an event with one source state, in one statement: an UPDATE
    whose WHERE asks what the locked read checked (the state, the ``match`` columns). SQLite has no
    row locks to skip (one writer holds the database), so it takes the same rows, moves them the
    same way and logs the same change as ``_claim_locked``."""
    (source,) = lifecycle.sources(entity, event)
    target = lifecycle.target(entity, source, event)
    columns = tuple(sorted(match))
    values = {
        KEY: row_id,
        WAS: source,
        **{f"k_{c}": match[c] for c in columns},
        "state": target,
        "lease_owner": owner,
        "lease_until": until,
        "updated_at": repo.now(),
    }
    new = repo.run(_guarded_claim(table, columns), values).first()
    if new is None:
        return []
    repo.audit.record_change(entity, row_id, source, target, {"node": owner})
    return [new]


def _claim_one(  # noqa: PLR0917 - claim's parts for one row
    repo: Repo, table: Table, entity: lifecycle.Entity, event: str, row: Row[Any], owner: str, until: datetime
) -> Row[Any]:
    """``claim`` of the one row picked (and locked): the same move, lease and event-log row."""
    row_id = row.id
    target = lifecycle.target(entity, row.state, event)
    values = {
        KEY: row_id,
        "state": target,
        "lease_owner": owner,
        "lease_until": until,
        "updated_at": repo.now(),
    }
    new = repo.run(keyed_update(table), values).one()
    repo.audit.record_change(entity, row_id, row.state, target, {"node": owner})
    return new


def release_expired(
    repo: Repo, table: Table, entity: lifecycle.Entity, event: str, dead_owners: Iterable[str]
) -> int:
    """Rows whose lease expired, or whose node is known dead, undergo ``event`` (back to the queue)."""
    now = repo.now()
    gone = or_(table.c.lease_until < now, table.c.lease_owner.in_(list(dead_owners)))
    sources = sorted(lifecycle.sources(entity, event))
    stale = repo.run(
        select(table).where(table.c.state.in_(sources), gone).with_for_update(skip_locked=True)
    ).all()
    for row in stale:
        repo.move(
            entity,
            table,
            row,
            event,
            extra={"lease_owner": None, "lease_until": None},
            detail={"released_from": row.lease_owner, "reason": "lease expired"},
        )
    return len(stale)
