"""The loop walker over compiled tables: pyx12's ``walk_tree.walk_errors``, step for step.

Counters are plain ``dict[str, int]`` keyed by pyx12's node paths (so nodes pyx12 counts together,
such as two NM1s at different positions of one loop, are counted together here too); entering a loop
drops its descendants' counts using the key set compiled for that loop. Segment matching reads the
qualifier the compiled node names. Errors are the same codes on the same nodes, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

from transactions.engine.elements import View, is_match
from transactions.engine.tables import LoopNode, Node, SegNode, Tail, make_tail


@dataclass(frozen=True, slots=True)
class SegErr:
    """A walk error: IK304 code, the map node it names, the data segment id, the segment position."""

    code: str
    node: Node | None
    data_id: str | None
    seg_count: int | None


_Missing = tuple[SegNode, int]  # (node, seg_count) of a required segment or loop not seen
MISS = object()  # a scan found nothing (None is a match without a node, as in pyx12)


class Walker:
    """One transaction set's walk state (pyx12's ``walk_tree`` with its ``NodeCounter``)."""

    __slots__ = ("component", "counts", "errors", "missing", "seg_count", "tag", "values")

    def __init__(self, component: str) -> None:
        self.counts: dict[str, int] = {}
        self.component = component
        self.missing: list[_Missing] = []
        self.errors: list[SegErr] = []
        self.tag = ""
        self.values: View = ()
        self.seg_count = 0

    def start_at_group(self, gs_loop_key: str, gs: SegNode) -> None:
        """pyx12's ``forceWalkCounterToLoopStart`` for the GS loop and its GS."""
        self._reset(gs_loop_key, None)  # a no-op on a fresh walker, kept as pyx12 does it
        self._incr(gs_loop_key)
        self._incr(gs.key)

    def _incr(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _reset(self, key: str, loop: LoopNode | None) -> None:
        counts = self.counts
        stale: Iterable[str]
        if loop is None:
            stale = [k for k in counts if _is_child_key(key, k)]
        else:  # whichever of the two is smaller is scanned (in C); the keys dropped are the same
            desc = loop.descendant_keys
            stale = desc & counts.keys() if len(desc) < len(counts) else desc.intersection(counts)
        for k in stale:
            del counts[k]

    def walk(self, node: Node, tag: str, values: View, seg_count: int) -> tuple[SegNode | None, list[SegErr]]:
        """The node matching the segment (None: not found) and the errors met on the way. pyx12 also
        returns the loops popped and pushed; our driver never reads them, so they are not built."""
        if self.missing:  # an empty list is kept rather than replaced: most walks note nothing
            self.missing = []
        if self.errors:  # likewise: callers read the list a walk returns before the next walk
            self.errors = []
        self.tag, self.values, self.seg_count = tag, values, seg_count
        node_pos = node.pos
        loop: LoopNode = node if node.__class__ is LoopNode else node.parent  # type: ignore[assignment]
        while True:
            found = self._scan(loop, node_pos)
            if found is not MISS:
                return found, self.errors  # type: ignore[return-value]  # a SegNode or None here
            if loop.is_root:
                self.errors.append(SegErr("1", node, tag, seg_count))
                return None, self.errors
            node_pos = loop.pos
            parent = loop.parent
            assert parent is not None  # noqa: S101 - only the root has none
            loop = parent

    def _scan(self, loop: LoopNode, node_pos: int) -> SegNode | object | None:
        """Children of ``loop`` from map position ``node_pos`` on, in order; the first that matches
        (:data:`MISS` when none does). A required child not yet seen that is passed over is noted as
        missing, as pyx12 does. Up to the first wrapper loop only the children with the segment's id
        are tried (:meth:`_scan_candidates`); from there on each child in turn."""
        tail = loop.tails.get(node_pos)
        if tail is None:
            nodes = tuple(c for pos, g in loop.groups if pos >= node_pos for c in g)
            tail = loop.tails[node_pos] = make_tail(nodes)
        found = self._scan_candidates(loop, tail)
        if found is not MISS or tail.stop == len(tail.nodes):
            return found
        return self._scan_each(loop, tail.nodes, tail.stop)

    def _scan_candidates(self, loop: LoopNode, tail: Tail) -> SegNode | object | None:
        """The children before the first wrapper loop: those with the segment's id tried in order, the
        required ones between them noted missing exactly as a one-by-one scan rejecting them would."""
        required = tail.required
        count = len(required)
        counts = self.counts
        r = 0
        for i in tail.candidates.get(self.tag, ()):
            while r < count and required[r][0] < i:  # what _note_required(required, r, i) does, inline
                _, key, need = required[r]
                if counts.get(key, 0) < 1:
                    self.missing.append((need, self.seg_count))
                r += 1
            if r < count and required[r][0] == i:
                r += 1  # the candidate's own note, if any, is made by its own try below
            child = tail.nodes[i]
            if child.__class__ is SegNode:
                found = self._try_segment(loop, child)
                if found is not MISS:
                    return found
                continue
            first = child.first_seg  # type: ignore[union-attr]  # a loop with a first segment here
            if is_match(first, self.tag, self.values, self.component):  # type: ignore[arg-type]
                return self._enter(child, first)  # type: ignore[arg-type]
            if child.usage == "R" and counts.get(child.key, 0) < 1:
                self.missing.append((first, self.seg_count))  # type: ignore[arg-type]
        self._note_required(required, r, tail.stop)
        return MISS

    def _note_required(self, required: tuple[tuple[int, str, SegNode], ...], r: int, end: int) -> int:
        """Note the required children from ``required[r]`` up to index ``end`` that were never seen;
        returns where the next call goes on."""
        counts = self.counts
        while r < len(required) and required[r][0] < end:
            _, key, first = required[r]
            if counts.get(key, 0) < 1:
                self.missing.append((first, self.seg_count))
            r += 1
        return r

    def _scan_each(self, loop: LoopNode, nodes: tuple[Node, ...], start: int) -> SegNode | object | None:
        """Children from ``start`` on, one by one (most rejected on the segment id alone)."""
        tag = self.tag
        counts = self.counts
        for child in islice(nodes, start, None):
            if child.__class__ is SegNode:
                if child.id != tag:
                    if child.usage == "R" and counts.get(child.key, 0) < 1:
                        self.missing.append((child, self.seg_count))
                    continue
                found = self._try_segment(loop, child)
            else:
                first = child.first_seg  # type: ignore[union-attr]
                if first is None:  # a wrapper loop: its child loops decide
                    found = self._try_loop(child)  # type: ignore[arg-type]
                elif first.id == tag and is_match(first, tag, self.values, self.component):
                    return self._enter(child, first)  # type: ignore[arg-type]  # what _try_loop does
                else:
                    if child.usage == "R" and counts.get(child.key, 0) < 1:
                        self.missing.append((first, self.seg_count))
                    continue
            if found is not MISS:
                return found
        return MISS

    def _try_segment(self, loop: LoopNode, child: SegNode) -> SegNode | object | None:
        tag = self.tag
        if child.id == tag and (
            child.qualifier is None or is_match(child, tag, self.values, self.component)
        ):  # is_match, without the call when the map names no qualifier
            if not loop.is_root and self._is_loop_match(loop):  # the segment opens its loop again
                first = loop.first_seg  # matched by _is_loop_match: what _goto would find first
                return self._goto(loop) if first is None else self._enter(loop, first)
            counts = self.counts  # _incr and _check_seg_usage, inline: this runs for most segments
            key = child.key
            seen = counts[key] = counts.get(key, 0) + 1
            if child.usage == "N":
                self.errors.append(SegErr("2", None, None, None))
            elif seen > child.max_repeat:
                self.errors.append(SegErr("5", child, tag, self.seg_count))
            if self.missing:
                eq = child.eq_key
                self.missing = [m for m in self.missing if m[0].eq_key != eq]
                self._flush(child.pos)
            return child
        if child.usage == "R" and self.counts.get(child.key, 0) < 1:
            self.missing.append((child, self.seg_count))
        return MISS

    def _try_loop(self, child: LoopNode) -> SegNode | object | None:
        if not self._is_loop_match(child):
            return MISS
        return self._goto(child)  # None: pyx12 returns no node and no error either

    def _flush(self, cur_pos: int | None = None) -> None:
        if not self.missing:
            return
        keep: list[_Missing] = []
        for m in self.missing:
            if m[0].pos != cur_pos:
                self.errors.append(SegErr("3", m[0], m[0].id, m[1]))
            else:
                keep.append(m)
        self.missing = keep

    def _is_loop_match(self, loop: LoopNode) -> bool:
        first = loop.first_node
        if first is None:
            return False
        if isinstance(first, LoopNode):
            return any(isinstance(c, LoopNode) and self._is_loop_match(c) for c in loop.kids)
        if first.id == self.tag and is_match(first, self.tag, self.values, self.component):
            return True
        if loop.usage == "R" and self.counts.get(loop.key, 0) < 1:
            self.missing.append((first, self.seg_count))
        return False

    def _goto(self, loop: LoopNode) -> SegNode | None:
        first = loop.first_seg
        if first is not None and is_match(first, self.tag, self.values, self.component):
            return self._enter(loop, first)
        for child in loop.kids:
            if isinstance(child, LoopNode):
                seg = self._goto(child)
                if seg is not None:
                    return seg
        return None

    def _enter(self, loop: LoopNode, first: SegNode) -> SegNode:
        """Entering ``loop`` at its first segment: loop count and usage, then the segment's count."""
        self._check_loop_usage(loop)
        self._incr(first.key)
        self._flush()
        return first

    def _check_loop_usage(self, loop: LoopNode) -> None:
        if loop.usage == "N":
            self.errors.append(SegErr("2", None, None, None))
            return
        self._reset(loop.key, loop)
        self._incr(loop.key)
        if self.counts[loop.key] > loop.max_repeat:
            self.errors.append(SegErr("4", loop, self.tag, self.seg_count))


def _is_child_key(root: str, child: str) -> bool:
    r, c = root.split("/"), child.split("/")
    return len(r) < len(c) and c[: len(r)] == r
