"""``tx.quarantine``: files set aside with a structured (PHI-free) reason."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from gateway.lifecycle import Entity, FileEvent
from gateway.store import schema as s
from gateway.store.repos.base import DEFAULT_LIMIT, Repo, db, equal, window
from gateway.store.rows import QuarantineRow, from_mapping


class QuarantineRepo(Repo):
    """Quarantine entries (the file itself moves by the lifecycle's ``quarantine`` event)."""

    @db
    def add(
        self, file_id: int, reason: Mapping[str, Any], *, detail: Mapping[str, Any] | None = None
    ) -> QuarantineRow:
        """Set a file aside: the ``quarantine`` event, and a quarantine row with the structured reason."""
        row = self.locked(s.files, "id", file_id, f"file {file_id}")
        self.move(Entity.FILE, s.files, row, FileEvent.QUARANTINE, detail=detail)
        values = {"file_id": file_id, "reason": dict(reason), "created_at": self.now()}
        new = self.run(insert(s.quarantine).values(**values).returning(*s.quarantine.c)).one()
        return from_mapping(QuarantineRow, new)

    @db
    def query(
        self,
        *,
        file_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[QuarantineRow]:
        """Quarantine entries, newest first."""
        t = s.quarantine
        where = [*window(t.c.created_at, since, until), *equal((t.c.file_id, file_id))]
        return self.listing(t, QuarantineRow, where=where, limit=limit)
