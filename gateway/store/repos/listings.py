"""``tx.listings``: each partner's last remote listing, and every remote file version taken or refused.

The exchange stage takes a new remote file only once two listings in a row agree on its size and
time. The previous listing lives here, not in the run loop's memory, so the check also holds for
``x12gw run --once`` (a new process per cycle) and for the first poll after a restart.

A partner may reuse a name for a new file (every response ``271.x12``), so a remote file is known by
name, size and modification time (``version``), and once downloaded by its content: ``content`` finds
an inbound file of the partner with that name and hash (a duplicate), anything else is new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, insert, select

from gateway.store import schema as s
from gateway.store.repos.base import Repo, db

Listing = Mapping[str, tuple[int, int | None]]  # remote file name -> (size, mtime)


OUTCOMES = ("new", "duplicate", "refused")


@dataclass(frozen=True)
class RemoteVersion:
    """One remote file version we took (``new``/``duplicate``, with its hash and file row) or refused."""

    id: int
    outcome: str
    sha256: str | None
    file_id: int | None
    reason: str | None


class ListingsRepo(Repo):
    """The last listing of each partner's download folder, and the remote file versions seen."""

    @db
    def version(self, partner: str, name: str, size: int, mtime: int | None) -> RemoteVersion | None:
        """The newest record of this remote file version (same name, size and time), if any."""
        t = s.remote_files
        where: list[ColumnElement[bool]] = [t.c.partner == partner, t.c.name == name, t.c.size == size]
        where.append(t.c.mtime.is_(None) if mtime is None else t.c.mtime == mtime)
        row = self.run(
            select(t.c.id, t.c.outcome, t.c.sha256, t.c.file_id, t.c.reason)
            .where(*where)
            .order_by(t.c.id.desc())
            .limit(1)
        ).first()
        return (
            None if row is None else RemoteVersion(row.id, row.outcome, row.sha256, row.file_id, row.reason)
        )

    @db
    def content(self, partner: str, name: str, sha256: str) -> int | None:
        """The id of an inbound file of ``partner`` with this name and content (a re-download of it is
        a duplicate), or None."""
        f = s.files
        row = self.run(
            select(f.c.id)
            .where(f.c.direction == "in", f.c.partner == partner, f.c.name == name, f.c.sha256 == sha256)
            .order_by(f.c.id.desc())
            .limit(1)
        ).first()
        return None if row is None else int(row.id)

    @db
    def remember(
        self,
        partner: str,
        name: str,
        size: int,
        mtime: int | None,
        outcome: str,
        *,
        sha256: str | None = None,
        file_id: int | None = None,
        reason: str | None = None,
    ) -> int:
        """Record a remote file version taken (``new`` or ``duplicate``) or ``refused``; its id."""
        if outcome not in OUTCOMES:
            raise ValueError(f"remote file outcome must be one of {OUTCOMES}")
        values = {
            "partner": partner,
            "name": name,
            "size": size,
            "mtime": mtime,
            "sha256": sha256,
            "file_id": file_id,
            "outcome": outcome,
            "reason": reason,
            "created_at": self.now(),
        }
        return int(
            self.run(insert(s.remote_files).values(**values).returning(s.remote_files.c.id)).scalar_one()
        )

    @db
    def last(self, partner: str) -> dict[str, tuple[int, int | None]]:
        """The listing stored for ``partner`` (empty when it was never listed)."""
        t = s.remote_listings
        rows = self.run(select(t.c.name, t.c.size, t.c.mtime).where(t.c.partner == partner))
        return {name: (size, mtime) for name, size, mtime in rows}

    @db
    def replace(self, partner: str, entries: Iterable[tuple[str, int, int | None]]) -> Listing:
        """Store this listing (name, size, mtime) for ``partner`` and return the previous one."""
        previous = self.last(partner)
        t = s.remote_listings
        self.run(delete(t).where(t.c.partner == partner))
        now = self.now()
        rows = [
            {"partner": partner, "name": name, "size": size, "mtime": mtime, "listed_at": now}
            for name, size, mtime in {e[0]: e for e in entries}.values()
        ]
        if rows:
            self.run(insert(t), rows)
        return previous
