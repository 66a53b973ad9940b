"""Several gateway nodes on one database: the node registry, named leases, and the SQLite guard.

* Every ``x12gw run`` registers itself in ``nodes`` and renews ``last_seen`` each cycle, so
  ``x12gw nodes`` can list the live ones and what they hold.
* A lease (``leases`` row) is a named lock with an expiry: the holder renews it while it works; when
  a node dies its leases expire and another node takes them over. ``partner:<name>`` leases make one
  node at a time poll and upload for a partner.
* SQLite is for one node: a second ``x12gw run`` on the same SQLite database is refused, whatever
  configuration or state folder it uses (an exclusive ``flock`` on a file beside the database file,
  released by the kernel when the process dies).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from gateway.errors import ConfigError, StoreError
from gateway.store import Store
from gateway.store.fileperms import sqlite_path


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
    """On SQLite, refuse to start when another node already runs on this database.

    The lock belongs to the database, not to the configuration: it is a file beside the database
    file (``<database>.node-lock``, found through the resolved path), so two configurations with
    different state folders that name one SQLite file are refused too. Only a database SQLite keeps
    in no plain file (in-memory, ``file:`` URIs) falls back to a lock in the state folder.
    """
    if not is_sqlite(url):
        return
    database = sqlite_path(url)
    path = (
        database.resolve().with_name(f"{database.resolve().name}.node-lock")
        if database is not None
        else state_dir / "gateway.node.lock"
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create the node lock {path.name}: {exc.strerror}") from None
    fh = os.fdopen(fd, "ab")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise ConfigError(
            "another gateway node is already running on this SQLite database (possibly with another "
            "configuration or state folder); SQLite supports one node "
            "- set gateway.database_url to a PostgreSQL database to run several"
        ) from None
    _LOCKS[str(path)] = fh  # held (and the lock with it) for the life of the process


class NodeRegistry:
    """This node's row in ``nodes``."""

    def __init__(self, store: Store, node_id: str, clock: Callable[[], datetime]) -> None:
        self.store, self.node_id, self.clock = store, node_id, clock
        self._last_beat = time.monotonic()

    def register(self) -> None:
        with self.store.begin() as tx:
            tx.nodes.register(self.node_id, host=socket.gethostname(), pid=os.getpid(), at=self.clock())
        self._last_beat = time.monotonic()

    def heartbeat(self) -> None:
        with self.store.begin() as tx:
            tx.nodes.heartbeat(self.node_id, self.clock())
        self._last_beat = time.monotonic()

    def heartbeat_if_due(self, every: float) -> None:
        """Renew ``last_seen`` when ``every`` seconds passed since the last renewal (between stages)."""
        if time.monotonic() - self._last_beat >= every:
            self.heartbeat()

    def stop(self) -> None:
        with self.store.begin() as tx:
            tx.nodes.stop(self.node_id, self.clock())


def acquire_lease(
    store: Store, name: str, owner: str, seconds: float, now: datetime, *, dead: Collection[str] = ()
) -> bool:
    """Take or renew lease ``name`` for ``seconds``; False while another live holder has it (a holder in
    ``dead`` is taken over at once instead of waiting for its lease to run out)."""
    until = now + timedelta(seconds=seconds)
    try:
        with store.begin() as tx:
            return tx.nodes.acquire_lease(name, owner, until=until, now=now, dead=dead)
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
        owners = tx.nodes.work_owners() | {lease.owner for lease in tx.nodes.held_leases(now)}
        nodes = {n.node_id: n for n in tx.nodes.all()}
    owners.discard(me)
    if single_node:
        return sorted(owners)
    silent = now - timedelta(seconds=silent_seconds)
    return sorted(
        o for o in owners if o not in nodes or nodes[o].stopped_at is not None or nodes[o].last_seen < silent
    )


def release_lease(store: Store, name: str, owner: str, now: datetime) -> None:
    with store.begin() as tx:
        tx.nodes.release_lease(name, owner, now)


def list_nodes(store: Store, now: datetime) -> list[NodeInfo]:
    """Every registered node with the leases it currently holds, most recently seen first."""
    with store.read() as tx:
        nodes = tx.nodes.all()
        held = tx.nodes.held_leases(now)
        claimed_requests = tx.nodes.claimed_requests()
        claimed_files = tx.nodes.claimed_files()
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
