"""A transaction set as light Python nodes shaped like its XML form, for the compiled mapping paths.

``transactions.document.to_xml`` gives lxml elements (``transaction > loop[@id] > seg[@id] > ele[@id]``,
``comp[@id] > subele[@id]``); building them and querying them with XPath cost more than validating the
set. These nodes have the same shape, ids, text and document order, are built straight from the placed
segments, and a segment's elements are only made when a path reads into that segment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from transactions.placed import MapPlace, Placed, PlacedSegments
from transactions.segment import Composite, Repetition, Segment

STRUCTURE = "structure"  # the document node's cache key for its structural nodes in document order
LOOPS = "loops"  # the document node's cache key for its loop nodes alone, in document order


class Node:
    """One node of the tree: ``kind`` is the XML tag (doc, transaction, loop, seg, ele, comp, subele,
    attr), ``key`` its place in document order, ``text`` what lxml's ``.text`` would give."""

    __slots__ = ("attrs", "cache", "id", "key", "kids", "kind", "parent", "segment", "text")

    def __init__(self, kind: str, node_id: str | None, parent: Node | None, key: tuple[int, ...]) -> None:
        self.kind = kind
        self.id = node_id
        self.parent = parent
        self.key = key
        self.text: str | None = None
        self.kids: list[Node] | None = [] if kind in ("doc", "transaction", "loop") else None
        self.segment: Segment | None = None
        self.attrs: tuple[tuple[str, str], ...] = ()
        self.cache: dict[str, list[Node]] | None = None  # on the document node: absolute paths

    def children(self) -> list[Node]:
        """Child elements in document order (a segment's elements are made on first use)."""
        kids = self.kids
        if kids is None:
            kids = self.kids = _element_nodes(self) if self.segment is not None else []
        return kids

    def element(self, position: int) -> list[Node]:
        """The ``ele``/``comp`` nodes of one element of a segment (what ``children`` holds for it)."""
        if self.kids is not None:
            return [k for k in self.kids if k.key[1] == position]
        segment = self.segment
        if segment is None or not 0 < position <= len(segment.elements):
            return []
        out: list[Node] = []
        _add_element(out, self, position, segment.elements[position - 1])
        return out

    def attributes(self) -> list[Node]:
        """The attribute nodes (``id`` and, on the root, ``control``), ``text`` holding the value."""
        out: list[Node] = []
        if self.id is not None and self.kind != "attr":
            out.append(_attr(self, "id", self.id, -2))
        out.extend(_attr(self, name, value, -1) for name, value in self.attrs)
        return out

    def id_attribute(self) -> Node:
        """The ``id`` attribute node alone (what ``@id`` selects), the first of :meth:`attributes`."""
        assert self.id is not None  # noqa: S101 - callers ask nodes that have one
        return _attr(self, "id", self.id, -2)

    def root(self) -> Node:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def string_value(self) -> str:
        """XPath's string-value: the node's own text, or every descendant text in document order."""
        if self.kind in ("ele", "subele", "attr"):
            return self.text or ""
        return "".join(k.string_value() for k in self.children())


def _attr(owner: Node, name: str, value: str, rank: int) -> Node:
    node = Node("attr", name, owner, (*owner.key, rank))
    node.text = value
    return node


def _element_nodes(seg: Node) -> list[Node]:
    """``ele`` and ``comp > subele`` nodes of a segment, as ``transactions.document.segment_xml``."""
    segment = seg.segment
    assert segment is not None  # noqa: S101 - only called for segment nodes
    out: list[Node] = []
    for i, value in enumerate(segment.elements, 1):
        _add_element(out, seg, i, value)
    return out


def _add_element(out: list[Node], seg: Node, i: int, value: str | Composite | Repetition) -> None:
    xid = f"{seg.id}{i:02d}"
    base = seg.key[0]
    if type(value) is str:
        if value:
            out.append(_leaf("ele", xid, seg, (base, i, 0, 0), value))
        return
    occurrences = value if isinstance(value, Repetition) else (value,)
    for occ, occurrence in enumerate(occurrences or ("",)):
        _add_occurrence(out, seg, xid, (base, i, occ), occurrence)


def _add_occurrence(
    out: list[Node], seg: Node, xid: str, where: tuple[int, int, int], value: str | Composite
) -> None:
    comps: tuple[str, ...] = ((value,) if value else ()) if isinstance(value, str) else value
    if len(comps) > 1:
        comp = Node("comp", xid, seg, (*where, 0))
        comp.kids = [
            _leaf("subele", f"{xid}-{j:02d}", comp, (*where, j), sub) for j, sub in enumerate(comps, 1) if sub
        ]
        out.append(comp)
    elif comps and comps[0]:
        out.append(_leaf("ele", xid, seg, (*where, 0), comps[0]))


def _leaf(kind: str, xid: str, parent: Node, key: tuple[int, ...], text: str) -> Node:
    node = Node(kind, xid, parent, key)
    node.text = text
    node.kids = []
    return node


def build_nodes(placed: Sequence[Placed], *, set_id: str, control_number: str) -> Node:
    """The ``transaction`` node of a set (under a document node), loops opened as
    ``transactions.document.build_tree`` opens them. The compiled engine's placed segments
    (:class:`PlacedSegments`) are read as segments and map nodes, with no :class:`Placed` made."""
    root, listing, loops = _document(set_id, control_number)
    stack = [root]
    order = 1
    previous: tuple[str, ...] = ()
    transitions = _TRANSITIONS
    new = Node.__new__
    parent = root
    kids = root.kids
    if len(transitions) > _MAX_TRANSITIONS:  # bounded whatever the maps: a cache, not a store
        transitions.clear()
    by_node = placed.__class__ is PlacedSegments
    last: object = None  # the map node of the last placed segment (``previous`` is its loops)
    for segment, place in _pairs(placed):
        if place is None:
            continue  # a segment the walk could not place
        target = place.loops
        starts = place.is_first
        if target != previous or starts:  # else the same loop instance goes on
            # The plan is a function of the two map nodes' loops and ``is_first``, so with the compiled
            # engine's long-lived map nodes it is remembered by the pair of nodes (hashed by identity)
            # rather than by the tuples of loop ids, whose hash is worked out afresh at each lookup.
            key = (last, place) if by_node else (previous, target, starts)
            plan = transitions.get(key)
            if plan is None:
                plan = transitions[key] = _transition(previous, target, starts)
            depth, opens = plan
            del stack[depth + 1 :]
            for loop_id in opens:
                order += 1
                node = Node("loop", loop_id, stack[-1], (order,))
                stack[-1].kids.append(node)  # type: ignore[union-attr]  # loops always have kids
                stack.append(node)
                listing.append(node)
                loops.append(node)
            previous = target
            parent = stack[-1]
            kids = parent.kids
        last = place
        order += 1
        seg = new(Node)  # what Node("seg", ...) makes, without a call to __init__ per segment
        seg.kind = "seg"
        seg.id = segment.tag
        seg.parent = parent
        seg.key = (order,)
        seg.text = None
        seg.kids = None
        seg.segment = segment
        seg.attrs = ()
        seg.cache = None
        kids.append(seg)  # type: ignore[union-attr]  # loops always have kids
        listing.append(seg)
    return root


def _document(set_id: str, control_number: str) -> tuple[Node, list[Node], list[Node]]:
    """A set's ``transaction`` node under its document node, and the two lists the document's cache
    holds for :func:`build_nodes` to extend: every structural node as made (always the rightmost, so
    in document order: what xpath_lite's descendant steps scan) and the loops alone (a few per set:
    what ``mappings.straight``'s ``//loop[...]`` steps scan)."""
    doc = Node("doc", None, None, (0,))
    root = Node("transaction", set_id, doc, (1,))
    root.attrs = (("control", control_number),)
    doc.kids = [root]
    listing = [doc, root]
    loops: list[Node] = []
    doc.cache = {STRUCTURE: listing, LOOPS: loops}
    return root, listing, loops


def _pairs(placed: Sequence[Placed]) -> Iterable[tuple[Segment, MapPlace | None]]:
    """(segment, what placed it) per segment: the compiled engine's map nodes as they are (None for a
    segment not placed), else each :class:`Placed` itself (it answers ``loops`` and ``is_first``)."""
    if placed.__class__ is PlacedSegments:
        return zip(placed.segments, placed.nodes, strict=True)
    return ((p.segment, p) for p in placed)


_TRANSITIONS: dict[tuple[object, ...], tuple[int, tuple[str, ...]]] = {}
"""Loop changes worked out: keyed by (previous loops, loops, is_first) for :class:`Placed` segments,
by (previous map node, map node) for :class:`PlacedSegments` (the key tuples differ in length)."""
_MAX_TRANSITIONS = 50_000


def _transition(
    previous: tuple[str, ...], target: tuple[str, ...], starts_loop: bool
) -> tuple[int, tuple[str, ...]]:
    """(loops kept open, loop ids to open) going from the loops of ``previous`` to ``target``: what
    :func:`_open_loops` does, as a function of the two paths alone (the open loops are always those
    of the previous segment), so it is worked out once per pair of paths."""
    depth = 0
    while depth < len(target) and depth < len(previous) and previous[depth] == target[depth]:
        depth += 1
    if starts_loop and target and depth == len(target):
        depth -= 1  # the first segment of a loop opens a new instance of it
    return depth, target[depth:]


def release(transaction: Node) -> None:
    """Break the tree's parent/child and cache links once a set is mapped, so its nodes are freed
    as soon as the last reference goes rather than left to the cyclic garbage collector, whose
    passes over a growing heap cost a tenth of mapping time."""
    doc = transaction.root()
    listing = doc.cache.get(STRUCTURE, []) if doc.cache is not None else []
    for node in listing:
        if node.kind == "seg":
            kids = node.kids
            if kids is None and node.cache is None:
                continue  # elements never made, no index: it refers only up, so no cycle runs through it
            for made in kids or ():
                made.parent = made.kids = made.cache = None
        node.parent = node.kids = node.cache = None


def _open_loops(
    stack: list[Node], target: tuple[str, ...], starts_loop: bool, order: int, listing: list[Node]
) -> int:
    """Close the loops ``target`` leaves and open the ones it enters; the last order number used."""
    depth = 0
    while depth < len(target) and depth + 1 < len(stack) and stack[depth + 1].id == target[depth]:
        depth += 1
    if starts_loop and target and depth == len(target):
        depth -= 1  # the first segment of a loop opens a new instance of it
    del stack[depth + 1 :]
    for loop_id in target[depth:]:
        order += 1
        node = Node("loop", loop_id, stack[-1], (order,))
        stack[-1].kids.append(node)  # type: ignore[union-attr]  # loops always have kids
        stack.append(node)
        listing.append(node)
    return order


def build_nodes_by_stack(placed: Sequence[Placed], *, set_id: str, control_number: str) -> Node:
    """:func:`build_nodes` as it was, each loop change worked out on the stack of open loops
    (:func:`_open_loops`): the reference its remembered transitions are tested against."""
    doc = Node("doc", None, None, (0,))
    root = Node("transaction", set_id, doc, (1,))
    root.attrs = (("control", control_number),)
    doc.kids = [root]
    listing = [doc, root]
    doc.cache = {STRUCTURE: listing}
    stack = [root]
    order = 1
    previous: tuple[str, ...] | None = None
    for p in placed:
        target = p.loops
        if target != previous or p.starts_loop:
            previous = target
            order = _open_loops(stack, target, p.starts_loop, order, listing)
        order += 1
        parent = stack[-1]
        seg = Node("seg", p.segment.tag, parent, (order,))
        seg.segment = p.segment
        parent.kids.append(seg)  # type: ignore[union-attr]  # loops always have kids
        listing.append(seg)
    return root
