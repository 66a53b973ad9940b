"""What a walk returns: findings, and segments placed in their loops (shared by both engines)."""

from __future__ import annotations

from dataclasses import dataclass

from transactions.findings import Finding
from transactions.segment import Segment


@dataclass(frozen=True, slots=True, init=False)
class Placed:
    """A segment with the map node it matched: its loop path and map names for display and mapping."""

    segment: Segment
    position: int
    loops: tuple[str, ...]  # TR3 loop ids from outermost to innermost, e.g. ("2000A", "2000B", "2100B")
    name: str
    element_names: tuple[str, ...]
    starts_loop: bool = False

    def __init__(  # noqa: PLR0917 - positional, as the generated __init__ had them
        self,
        segment: Segment,
        position: int,
        loops: tuple[str, ...],
        name: str,
        element_names: tuple[str, ...],
        starts_loop: bool = False,
    ) -> None:
        """Fills the slots through their descriptors: one is made per segment validated with
        ``keep_placed``, and a frozen dataclass's own ``__init__`` (``object.__setattr__`` per field)
        costs twice as much."""
        _SET_SEGMENT(self, segment)
        _SET_POSITION(self, position)
        _SET_LOOPS(self, loops)
        _SET_NAME(self, name)
        _SET_ELEMENT_NAMES(self, element_names)
        _SET_STARTS_LOOP(self, starts_loop)


_SET_SEGMENT = Placed.__dict__["segment"].__set__
_SET_POSITION = Placed.__dict__["position"].__set__
_SET_LOOPS = Placed.__dict__["loops"].__set__
_SET_NAME = Placed.__dict__["name"].__set__
_SET_ELEMENT_NAMES = Placed.__dict__["element_names"].__set__
_SET_STARTS_LOOP = Placed.__dict__["starts_loop"].__set__


@dataclass(frozen=True, slots=True)
class WalkResult:
    findings: tuple[Finding, ...]
    placed: tuple[Placed, ...]
