"""What a walk returns: findings, and segments placed in their loops (shared by both engines)."""

from __future__ import annotations

from dataclasses import dataclass

from transactions.findings import Finding
from transactions.segment import Segment


@dataclass(frozen=True, slots=True)
class Placed:
    """A segment with the map node it matched: its loop path and map names for display and mapping."""

    segment: Segment
    position: int
    loops: tuple[str, ...]  # TR3 loop ids from outermost to innermost, e.g. ("2000A", "2000B", "2100B")
    name: str
    element_names: tuple[str, ...]
    starts_loop: bool = False


@dataclass(frozen=True, slots=True)
class WalkResult:
    findings: tuple[Finding, ...]
    placed: tuple[Placed, ...]
