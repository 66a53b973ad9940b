"""Compiled implementation-guide tables: a pyx12 map turned once into plain slotted objects.

pyx12's map nodes answer every question by walking the tree, formatting paths and looking data
element definitions up again; the compiled nodes hold the answers: each segment's qualifier test as
(element, component, frozenset of codes), each element's spec (usage, type, min/max length, code set)
as attributes, each loop's children grouped by map position and the counter keys it resets. The
tables are built from pyx12's own map model (so both engines read the same XML the same way) and
then never touch pyx12 again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAXINT = 2147483647


@dataclass(slots=True, eq=False)
class ElementSpec:
    """One simple element (or a component of a composite)."""

    id: str
    name: str
    usage: str
    seq: int
    data_ele: str | None
    data_type: str | None
    min_len: int
    max_len: int
    codes: frozenset[str | None] | None  # None: no code list at all
    external: frozenset[str | None] | None  # None: no external code set (or an excluded one)
    external_any: bool  # an excluded external code set accepts every value
    regex: re.Pattern[str] | None
    valid_codes: tuple[str | None, ...]
    required_when_empty: bool
    numeric: bool  # R or N*: "-" and "." do not count towards the length
    trailing_checked: bool  # AN or ID: trailing spaces are reported
    composite_seq: int = 0  # the enclosing composite's position (0: a simple element of the segment)
    absent: tuple[Any, ...] = ()  # the errors of this element when it is absent (fixed per spec)
    memo: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # value -> its errors (bounded)
    # The map's own codes (and "") this element accepts without an error, found once when compiling by
    # the full check: most elements are qualifiers, and one set lookup settles them.
    ok: frozenset[str] = frozenset()

    def is_composite(self) -> bool:
        return False


@dataclass(slots=True, eq=False)
class CompositeSpec:
    """A composite element and its components in map order."""

    id: str
    name: str
    usage: str
    seq: int
    refdes: str | None
    data_ele: str | None
    children: tuple[ElementSpec, ...]
    absent: tuple[Any, ...] = ()

    def is_composite(self) -> bool:
        return True


Child = ElementSpec | CompositeSpec


@dataclass(slots=True, eq=False)
class SegNode:
    """A segment of the map with everything the walk and the element checks ask of it."""

    id: str
    name: str
    usage: str
    pos: int
    max_repeat: int
    key: str  # pyx12's counter key (the node's path)
    parent: LoopNode
    children: tuple[Child, ...] = ()
    syntax: tuple[tuple[Any, ...], ...] = ()
    qualifier: tuple[int, int, frozenset[str | None]] | None = None  # element, component (0: none), codes
    is_first: bool = False
    loops: tuple[str, ...] = ()
    innermost: str | None = None
    eq_key: tuple[str, str] = ("", "")
    has_composite: bool = False
    element_names: tuple[str, ...] = ()
    special: bool = False  # DTP02/DTP03 or a 1250/1251 pair: element checks that read a neighbour
    rules: tuple[tuple[str, tuple[int, ...], str | None], ...] = ()  # syntax compiled (elements.syntax_rule)
    absent_after: tuple[tuple[Any, ...], ...] = ()  # [n]: the errors of children n+1.. when absent
    memo: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)  # values -> errors

    def is_segment(self) -> bool:
        return True

    def is_loop(self) -> bool:
        return False


@dataclass(slots=True, eq=False)
class LoopNode:
    """A loop (or the map root) with its children grouped by map position."""

    id: str
    name: str
    usage: str
    pos: int
    max_repeat: int
    key: str
    parent: LoopNode | None
    is_root: bool = False
    groups: tuple[tuple[int, tuple[Node, ...]], ...] = ()
    kids: tuple[Node, ...] = ()
    first_node: Node | None = None
    first_seg: SegNode | None = None
    descendant_keys: frozenset[str] = frozenset()
    eq_key: tuple[str, str] = ("", "")
    hl_parent_codes: frozenset[str] | None = None
    has_lx_loop: bool = False
    kid_segment_ids: frozenset[str] = frozenset()
    ancestors: frozenset[LoopNode] = frozenset()  # every enclosing loop and the root (hashed by identity)
    required_kids: tuple[Node, ...] = ()  # usage R kids a closed instance must hold (HL loops left out)
    # required_kids without the loop's first segment, which a whole instance always holds (it opened it):
    # empty for most loops, so that a closed instance is not checked at all
    required_rest: tuple[Node, ...] = ()
    tails: dict[int, Tail] = field(default_factory=dict)  # from position -> children (built when needed)

    def is_segment(self) -> bool:
        return False

    def is_loop(self) -> bool:
        return not self.is_root


Node = SegNode | LoopNode


@dataclass(frozen=True, slots=True)
class Tail:
    """A loop's children from one map position on, with what lets a scan try only the children whose
    segment id is the segment's: per id, the indexes of the children that could match it (a segment,
    or a loop whose first segment has that id), all before the first wrapper loop (one without a first
    segment, whose child loops decide); and the required children (index, counter key, node noted as
    missing) so the ones passed over are still noted, in order."""

    nodes: tuple[Node, ...]
    candidates: dict[str, tuple[int, ...]]
    stop: int  # index of the first wrapper loop (len(nodes) when there is none)
    required: tuple[tuple[int, str, SegNode], ...]


def make_tail(nodes: tuple[Node, ...]) -> Tail:
    wrappers = (i for i, n in enumerate(nodes) if isinstance(n, LoopNode) and n.first_seg is None)
    stop = next(wrappers, len(nodes))
    candidates: dict[str, list[int]] = {}
    required: list[tuple[int, str, SegNode]] = []
    for i, n in enumerate(nodes[:stop]):
        first = n if isinstance(n, SegNode) else n.first_seg
        assert first is not None  # noqa: S101 - wrapper loops end the indexed part
        candidates.setdefault(first.id, []).append(i)
        if n.usage == "R":
            required.append((i, n.key, first))
    return Tail(nodes, {k: tuple(v) for k, v in candidates.items()}, stop, tuple(required))


class WalkMemo(dict[Any, Any]):
    """The walks of sets remembered as a tree keyed by segment (``engine.walk``): each level maps a
    segment's walk key to (node found, walk findings, next level). ``entries`` counts what was added,
    to bound it. Its keys hold only the map's own vocabulary (segment ids the map knows, qualifier
    values the map names), never another data value, so unlike the value memos it is kept from run
    to run (a real-time call's one set is then read from it instead of walked); it is emptied after
    a run only once full, so that it goes on learning."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        super().__init__()
        self.entries = 0

    def clear(self) -> None:
        super().clear()
        self.entries = 0


@dataclass(frozen=True, slots=True)
class CompiledMap:
    """A compiled map: the root, the GS node the walk starts from, and lookups built once."""

    root: LoopNode
    gs_node: SegNode
    gs_loop_key: str
    known_ids: frozenset[str]
    icvn: str
    repeats: dict[str, int]
    memos: tuple[dict[Any, Any], ...] = ()  # every memo dict, to empty after a run
    # per segment id, the elements (1-based, ascending) any of the map's segments with that id reads
    # as its qualifier: the only values besides the id that the loop walk ever reads
    qualifier_elements: dict[str, tuple[int, ...]] = field(default_factory=dict)
    walks: WalkMemo = field(default_factory=WalkMemo)
    # per segment id, for each element of ``qualifier_elements``: the values the map itself names
    # there (qualifier codes, the codes of the elements at that place, "" and None for absent): the
    # only values a walk key kept across runs may hold (``walk.shape_key``)
    shape_values: dict[str, tuple[frozenset[str | None], ...]] = field(default_factory=dict)
