"""``tx.listings``: each partner's last remote listing (file name -> size and modification time).

The exchange stage takes a new remote file only once two listings in a row agree on its size and
time. The previous listing lives here, not in the run loop's memory, so the check also holds for
``x12gw run --once`` (a new process per cycle) and for the first poll after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import delete, insert, select

from gateway.store import schema as s
from gateway.store.repos.base import Repo, db

Listing = Mapping[str, tuple[int, int | None]]  # remote file name -> (size, mtime)


class ListingsRepo(Repo):
    """The last listing of each partner's download folder."""

    @db
    def last(self, partner: str) -> dict[str, tuple[int, int | None]]:
        """The listing stored for ``partner`` (empty when it was never listed)."""
        t = s.remote_listings
        rows = self.conn.execute(select(t.c.name, t.c.size, t.c.mtime).where(t.c.partner == partner))
        return {name: (size, mtime) for name, size, mtime in rows}

    @db
    def replace(self, partner: str, entries: Iterable[tuple[str, int, int | None]]) -> Listing:
        """Store this listing (name, size, mtime) for ``partner`` and return the previous one."""
        previous = self.last(partner)
        t = s.remote_listings
        self.conn.execute(delete(t).where(t.c.partner == partner))
        now = self.now()
        rows = [
            {"partner": partner, "name": name, "size": size, "mtime": mtime, "listed_at": now}
            for name, size, mtime in {e[0]: e for e in entries}.values()
        ]
        if rows:
            self.conn.execute(insert(t), rows)
        return previous
