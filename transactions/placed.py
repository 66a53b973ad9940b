"""What a walk returns: findings, and segments placed in their loops (shared by both engines)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, overload

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

    @property
    def is_first(self) -> bool:
        """``starts_loop`` under the name a map node gives it, so a placed segment and a
        :class:`MapPlace` are read alike (``mappings.segtree.build_nodes``)."""
        return self.starts_loop


_SET_SEGMENT = Placed.__dict__["segment"].__set__
_SET_POSITION = Placed.__dict__["position"].__set__
_SET_LOOPS = Placed.__dict__["loops"].__set__
_SET_NAME = Placed.__dict__["name"].__set__
_SET_ELEMENT_NAMES = Placed.__dict__["element_names"].__set__
_SET_STARTS_LOOP = Placed.__dict__["starts_loop"].__set__


class MapPlace(Protocol):
    """What a walk's map node tells of a segment it placed (the compiled engine's ``SegNode``)."""

    @property
    def loops(self) -> tuple[str, ...]: ...
    @property
    def name(self) -> str: ...
    @property
    def element_names(self) -> tuple[str, ...]: ...
    @property
    def is_first(self) -> bool: ...


class PlacedSegments(Sequence[Placed]):
    """A set's placed segments held as its segments and, per segment, the map node it matched (None:
    not placed), instead of one :class:`Placed` per segment. Why: a set validated to be mapped placed
    every segment, and those objects, made once each and mostly read only for their loop path, cost
    their allocation and, in a whole-file validation, about half of the cyclic collector's passes over
    the held sets. Read as a sequence it gives the same :class:`Placed` objects, made when asked for;
    the mapper reads :attr:`segments` and :attr:`nodes` directly."""

    __slots__ = ("_count", "_made", "nodes", "segments")

    def __init__(self, segments: Sequence[Segment], nodes: Sequence[MapPlace | None], count: int) -> None:
        """``nodes[i]`` is the node of ``segments[i]``; ``count`` how many of them are not None."""
        self.segments = segments
        self.nodes = nodes
        self._count = count
        self._made: tuple[Placed, ...] | None = None

    def __iter__(self) -> Iterator[Placed]:
        if self._made is not None:
            yield from self._made
            return
        for position, (segment, node) in enumerate(zip(self.segments, self.nodes, strict=True), 1):
            if node is not None:
                yield Placed(segment, position, node.loops, node.name, node.element_names, node.is_first)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    @overload
    def __getitem__(self, index: int) -> Placed: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Placed, ...]: ...
    def __getitem__(self, index: int | slice) -> Placed | tuple[Placed, ...]:
        if self._made is None:
            self._made = tuple(self)
        return self._made[index]

    def placed_segments(self) -> Sequence[Segment]:
        """The segments that were placed, in order (all of them, the usual case, without a copy)."""
        if self._count == len(self.segments):
            return self.segments
        return [s for s, n in zip(self.segments, self.nodes, strict=True) if n is not None]

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same placed segments (a tuple of :class:`Placed` included)."""
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"PlacedSegments({tuple(self)!r})"


@dataclass(frozen=True, slots=True)
class WalkResult:
    findings: tuple[Finding, ...]
    placed: Sequence[Placed]
