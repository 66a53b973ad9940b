"""The one shape every step of the run loop has: ``stage(ctx, cycle) -> None``.

Like structlog's processors, each stage is a small object with a ``name`` (what the logs call it when it
fails) and one call signature: it gets the shared context and the current cycle, does its unit of work
and adds what it did to ``cycle.summary``. The runner owns the order and the error handling, so a stage
never needs its own try/except for "log and go on with the next stage".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gateway.runtime.context import Context

RECOVER = "recover"  # the name shared by the steps that finish what a crash interrupted


@dataclass
class CycleSummary:
    """What one cycle did (logged when it did anything, and used to decide whether to sleep)."""

    taken: int = 0
    queued: int = 0
    uploaded: int = 0
    downloaded: int = 0
    processed: int = 0
    overdue: int = 0
    errors: int = 0

    @property
    def busy(self) -> bool:
        return any((self.taken, self.queued, self.uploaded, self.downloaded, self.processed))


@dataclass
class Cycle:
    """What the stages of one cycle share: the running summary and the owners found dead at its start."""

    summary: CycleSummary = field(default_factory=CycleSummary)
    dead: list[str] = field(default_factory=list)
    # the previous cycle was cut short (database outage): what this node held is not in progress
    abandoned: bool = False


@runtime_checkable
class Stage(Protocol):
    """One step of the run loop. ``name`` is a read-only attribute (a class attribute, a frozen
    dataclass field or a property all fit); the call does the work and records counts in ``cycle``."""

    @property
    def name(self) -> str: ...

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None: ...
