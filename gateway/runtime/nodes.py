"""Several gateway nodes on one database: the node registry, named leases, and the SQLite guard.

* Every ``x12gw run`` registers itself in ``nodes`` and renews ``last_seen`` each cycle, so
  ``x12gw nodes`` can list the live ones and what they hold.
* A lease (``leases`` row) is a named lock with an expiry: the holder renews it while it works; when
  a node dies its leases expire and another node takes them over. ``partner:<name>`` leases make one
  node at a time poll and upload for a partner.
* SQLite is for one node: a second ``x12gw run`` on the same SQLite database is refused (an
  exclusive ``flock`` on a file next to the database, released by the kernel when the process dies).
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Table, func, insert, or_, select, update

from gateway.errors import ConfigError, StoreError
from gateway.lifecycle import FileState, RequestState
from gateway.store import Store, Tx
from gateway.store import schema as s


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None
    leases: tuple[str, ...]
    claimed_requests: int  # requests it is batching right now
    claimed_files: int  # files it is processing right now


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


_LOCKS: dict[str, IO[bytes]] = {}


def single_node_guard(url: str, state_dir: Path) -> None:
    """On SQLite, refuse to start when another node already runs on this database."""
    if not is_sqlite(url):
        return
    path = state_dir / "gateway.node.lock"
    fh = path.open("ab")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise ConfigError(
            "another gateway node is already running on this SQLite database; SQLite supports one node "
            "- set gateway.database_url to a PostgreSQL database to run several"
        ) from None
    _LOCKS[str(path)] = fh  # held (and the lock with it) for the life of the process


class NodeRegistry:
    """This node's row in ``nodes``."""

    def __init__(self, store: Store, node_id: str, clock: Callable[[], datetime]) -> None:
        self.store, self.node_id, self.clock = store, node_id, clock

    def register(self) -> None:
        now = self.clock()
        values = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": now,
            "last_seen": now,
            "stopped_at": None,
        }
        with self.store.begin() as tx:
            done = tx.conn.execute(update(s.nodes).where(s.nodes.c.node_id == self.node_id).values(**values))
            if done.rowcount == 0:
                tx.conn.execute(insert(s.nodes).values(node_id=self.node_id, **values))

    def heartbeat(self) -> None:
        with self.store.begin() as tx:
            tx.conn.execute(
                update(s.nodes).where(s.nodes.c.node_id == self.node_id).values(last_seen=self.clock())
            )

    def stop(self) -> None:
        now = self.clock()
        with self.store.begin() as tx:
            tx.conn.execute(update(s.nodes).where(s.nodes.c.node_id == self.node_id).values(stopped_at=now))
            tx.conn.execute(update(s.leases).where(s.leases.c.owner == self.node_id).values(until=now))


def acquire_lease(
    store: Store, name: str, owner: str, seconds: float, now: datetime, *, dead: Collection[str] = ()
) -> bool:
    """Take or renew lease ``name`` for ``seconds``; False while another live holder has it (a holder in
    ``dead`` is taken over at once instead of waiting for its lease to run out)."""
    until = now + timedelta(seconds=seconds)
    t = s.leases
    try:
        with store.begin() as tx:
            done = tx.conn.execute(
                update(t)
                .where(t.c.name == name, or_(t.c.owner == owner, t.c.until < now, t.c.owner.in_(list(dead))))
                .values(owner=owner, until=until)
            )
            if done.rowcount == 1:
                return True
            if tx.conn.execute(select(t.c.name).where(t.c.name == name)).first() is not None:
                return False
            tx.conn.execute(insert(t).values(name=name, owner=owner, until=until, acquired_at=now))
            return True
    except StoreError:
        return False  # another node inserted the lease at the same moment: it holds it


# A node that has not renewed its row for this long is taken for dead: its claimed work is released.
NODE_SILENT_SECONDS = 90.0


def dead_owners(
    store: Store, me: str, now: datetime, *, single_node: bool, silent_seconds: float = NODE_SILENT_SECONDS
) -> list[str]:
    """Lease owners whose work may be taken over now. On SQLite only one node runs (the flock guard),
    so every owner but this node is a previous, dead process."""
    with store.read() as tx:
        owners = set(
            tx.conn.execute(
                select(s.requests.c.lease_owner).where(s.requests.c.lease_owner.is_not(None)).distinct()
            ).scalars()
        ) | set(
            tx.conn.execute(
                select(s.files.c.lease_owner).where(s.files.c.lease_owner.is_not(None)).distinct()
            ).scalars()
        )
        owners |= set(tx.conn.execute(select(s.leases.c.owner).where(s.leases.c.until > now)).scalars())
        nodes = {n.node_id: n for n in tx.conn.execute(select(s.nodes)).all()}
    owners.discard(me)
    if single_node:
        return sorted(owners)
    silent = now - timedelta(seconds=silent_seconds)
    return sorted(
        o for o in owners if o not in nodes or nodes[o].stopped_at is not None or nodes[o].last_seen < silent
    )


def release_lease(store: Store, name: str, owner: str, now: datetime) -> None:
    with store.begin() as tx:
        tx.conn.execute(
            update(s.leases).where(s.leases.c.name == name, s.leases.c.owner == owner).values(until=now)
        )


def _claims_by_owner(tx: Tx, table: Table, state: str) -> dict[str, int]:
    stmt = (
        select(table.c.lease_owner, func.count())
        .where(table.c.state == state, table.c.lease_owner.is_not(None))
        .group_by(table.c.lease_owner)
    )
    return {str(owner): int(count) for owner, count in tx.conn.execute(stmt).all()}


def list_nodes(store: Store, now: datetime) -> list[NodeInfo]:
    """Every registered node with the leases it currently holds, most recently seen first."""
    with store.read() as tx:
        nodes = tx.conn.execute(select(s.nodes).order_by(s.nodes.c.last_seen.desc())).all()
        held = tx.conn.execute(select(s.leases).where(s.leases.c.until > now)).all()
        claimed_requests = _claims_by_owner(tx, s.requests, RequestState.BATCHING)
        claimed_files = _claims_by_owner(tx, s.files, FileState.PROCESSING)
    by_owner: dict[str, list[str]] = {}
    for lease in held:
        by_owner.setdefault(lease.owner, []).append(lease.name)
    return [
        NodeInfo(
            n.node_id,
            n.host,
            n.pid,
            n.started_at,
            n.last_seen,
            n.stopped_at,
            tuple(sorted(by_owner.get(n.node_id, []))),
            claimed_requests.get(n.node_id, 0),
            claimed_files.get(n.node_id, 0),
        )
        for n in nodes
    ]
