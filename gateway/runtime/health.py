"""Partner health: the run loop's memory of each trading partner, in one object per partner.

What the exchange stage must remember between cycles, and nothing else: how many exchanges in a row
failed and whether (until when and why) the partner is paused. It is deliberately not durable: a
restarted gateway tries every partner again. (The previous remote listing, which the download
completeness check compares against, is durable: ``tx.listings`` in the store.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gateway.lifecycle import Entity

if TYPE_CHECKING:
    from gateway.store import Tx
    from gateway.store.rows import StateChange


@dataclass
class PartnerHealth:
    """One partner's failures and pause; the transitions are the methods."""

    failures: int = 0
    paused_until: datetime | None = None
    paused_why: str | None = None

    def is_paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until

    def failed(
        self, now: datetime, why: str, *, retryable: bool, pause_after: int, pause_minutes: float
    ) -> bool:
        """Count one failed exchange; pause after ``pause_after`` in a row, or at once when retrying
        cannot help. True when this failure paused the partner."""
        self.failures += 1
        if self.failures < pause_after and retryable:
            return False
        self.paused_until = now + timedelta(minutes=pause_minutes)
        self.paused_why = why
        return True

    def succeeded(self) -> bool:
        """An exchange went through: forget the failures. True when the partner had been failing."""
        was_failing = self.failures > 0
        self.failures = 0
        self.paused_until = None
        self.paused_why = None
        return was_failing


@dataclass
class PartnerHealthBoard:
    """Every partner's health, created on first use (partners come from the configuration)."""

    partners: dict[str, PartnerHealth] = field(default_factory=dict)

    def of(self, partner: str) -> PartnerHealth:
        return self.partners.setdefault(partner, PartnerHealth())


def stored_move(tx: Tx, partner: str, *, scan: int = 500) -> StateChange | None:
    """The newest logged health move of ``partner`` (pause, recover, resume) among the last ``scan``
    partner events: what another process (``x12gw status``, the next ``run --once``) knows of it."""
    for change in tx.audit.list_changes(entity_type=Entity.PARTNER, limit=scan):
        if (change.detail or {}).get("partner") == partner:
            return change
    return None
