"""``tx.nodes``: the gateway nodes sharing a database (their heartbeat rows) and the named leases
that let one node at a time do a partner's exchange or a periodic job."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, func, insert, or_, select, update

from gateway.lifecycle import FileState, RequestState
from gateway.store import schema as s
from gateway.store.repos.base import Repo, db


class NodesRepo(Repo):
    """Node rows, named leases, and who holds claimed work."""

    @db
    def register(self, node_id: str, *, host: str, pid: int, at: datetime) -> None:
        """Create or restart this node's row (started and seen ``at``, not stopped)."""
        values = {"host": host, "pid": pid, "started_at": at, "last_seen": at, "stopped_at": None}
        done = self.run(update(s.nodes).where(s.nodes.c.node_id == node_id).values(**values))
        if done.rowcount == 0:
            self.run(insert(s.nodes).values(node_id=node_id, **values))

    @db
    def heartbeat(self, node_id: str, at: datetime) -> None:
        """The node is alive at ``at``."""
        self.run(update(s.nodes).where(s.nodes.c.node_id == node_id).values(last_seen=at))

    @db
    def stop(self, node_id: str, at: datetime) -> None:
        """The node stopped cleanly: its leases end now."""
        self.run(update(s.nodes).where(s.nodes.c.node_id == node_id).values(stopped_at=at))
        self.run(update(s.leases).where(s.leases.c.owner == node_id).values(until=at))

    @db
    def all(self) -> list[Row[Any]]:
        """Every registered node, most recently seen first."""
        return list(self.run(select(s.nodes).order_by(s.nodes.c.last_seen.desc())).all())

    @db
    def acquire_lease(
        self, name: str, owner: str, *, until: datetime, now: datetime, dead: Collection[str] = ()
    ) -> bool:
        """Take or renew lease ``name`` until ``until``; False while another live holder has it."""
        t = s.leases
        done = self.run(
            update(t)
            .where(t.c.name == name, or_(t.c.owner == owner, t.c.until < now, t.c.owner.in_(list(dead))))
            .values(owner=owner, until=until)
        )
        if done.rowcount == 1:
            return True
        if self.run(select(t.c.name).where(t.c.name == name)).first() is not None:
            return False
        self.run(insert(t).values(name=name, owner=owner, until=until, acquired_at=now))
        return True

    @db
    def release_lease(self, name: str, owner: str, at: datetime) -> None:
        """End ``owner``'s lease ``name`` at ``at``."""
        t = s.leases
        self.run(update(t).where(t.c.name == name, t.c.owner == owner).values(until=at))

    @db
    def held_leases(self, now: datetime) -> list[Row[Any]]:
        """Leases that have not run out."""
        return list(self.run(select(s.leases).where(s.leases.c.until > now)).all())

    @db
    def work_owners(self) -> set[str]:
        """Every node named as the lease owner of a request or file row."""
        owners: set[str] = set()
        for table in (s.requests, s.files):
            stmt = select(table.c.lease_owner).where(table.c.lease_owner.is_not(None)).distinct()
            owners |= {str(o) for o in self.conn.execute(stmt).scalars()}
        return owners

    @db
    def claimed_requests(self) -> dict[str, int]:
        """Requests each node is batching right now."""
        return self._claims_by_owner(s.requests, RequestState.BATCHING)

    @db
    def claimed_files(self) -> dict[str, int]:
        """Files each node is processing right now."""
        return self._claims_by_owner(s.files, FileState.PROCESSING)

    def _claims_by_owner(self, table: Table, state: str) -> dict[str, int]:
        stmt = (
            select(table.c.lease_owner, func.count())
            .where(table.c.state == state, table.c.lease_owner.is_not(None))
            .group_by(table.c.lease_owner)
        )
        return {str(owner): int(count) for owner, count in self.run(stmt).all()}
