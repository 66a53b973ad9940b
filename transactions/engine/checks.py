"""What our driver adds to the walk (HL levels, LS/LE, loop instances, LX numbering), over compiled nodes.

The same rules as :mod:`transactions.ig_walk`, with compiled nodes in place of pyx12's.
"""

from __future__ import annotations

from collections.abc import Sequence

from transactions.engine.tables import LoopNode, SegNode
from transactions.findings import SEGMENT_CODES, Finding
from transactions.segment import Segment


class HLCheck:
    """HL01 sequence, HL02 parent level (from the map's loop nesting) and HL04 child codes."""

    def __init__(self) -> None:
        self.levels: dict[str, str] = {}
        self.has_child: set[str] = set()
        self.declared: list[tuple[str, str, int, str | None]] = []
        self.findings: list[Finding] = []

    def _err(self, position: int, loop: str | None, xid: str, index: int, ref: str, what: str) -> None:  # noqa: PLR0917
        msg = f"invalid code value: {what} ({xid})"
        self.findings.append(Finding("HL", position, loop, "7", msg, xid, (index, None, None), ref))

    def see(self, node: SegNode, segment: Segment, position: int, *, plain: bool = False) -> None:
        """``plain``: every element is a string (no composite, no repetition), so that HL01-HL04 are
        the first four elements as they stand, missing ones empty (what ``Segment.get`` gives)."""
        loop = node.innermost
        if plain:
            els: tuple[str, ...] = segment.elements  # type: ignore[assignment]  # plain: strings only
            hl_id, parent, level, child_code = (*els[:4], "", "", "", "")[:4]
        else:
            get = segment.get
            hl_id, parent, level, child_code = get(1), get(2), get(3), get(4)
        if hl_id != str(len(self.levels) + 1):
            self._err(position, loop, "HL01", 1, "628", "hierarchical id number out of sequence")
        allowed = node.parent.hl_parent_codes
        if allowed is None and parent:
            self._err(position, loop, "HL02", 2, "734", "a top-level HL has a parent")
        elif allowed is not None and self.levels.get(parent) not in allowed:
            self._err(position, loop, "HL02", 2, "734", "parent is not an HL of the level the guide requires")
        if parent:
            self.has_child.add(parent)
        self.levels[hl_id] = level
        self.declared.append((hl_id, child_code, position, loop))

    def finish(self) -> list[Finding]:
        for hl_id, child_code, position, loop in self.declared:
            if child_code == "0" and hl_id in self.has_child:
                self._err(position, loop, "HL04", 4, "736", "HL04 says no children but HLs follow")
            elif child_code == "1" and hl_id not in self.has_child:
                msg = "HL04 says children follow but none do"
                self.findings.append(
                    Finding("HL", position, loop, "7", msg, "HL04", (4, None, None), "736", "warning")
                )
        return self.findings


class LSCheck:
    """LS/LE bounded loops: every LS closed by an LE with the same loop id before its parent loop ends."""

    def __init__(self) -> None:
        self.open: tuple[str, int, str | None] | None = None
        self.findings: list[Finding] = []

    def see(self, node: SegNode, segment: Segment, position: int) -> None:
        loop = node.innermost
        tag = segment.tag
        if tag == "LS":
            self.open = (segment.get(1), position, loop)
        elif tag == "LE":
            if self.open is None:
                self.findings.append(
                    Finding("LE", position, loop, "2", "unexpected segment: LE without a matching LS")
                )
            elif self.open[0] != segment.get(1):
                msg = "LE01 does not match LS01"
                self.findings.append(Finding("LE", position, loop, "8", msg, "LE01", (1, None, None), "447"))
            self.open = None
        elif self.open is not None and not any(lp.startswith(self.open[0]) for lp in node.loops):
            self.close(position)

    def close(self, position: int) -> None:
        if self.open is not None:
            msg = "required segment missing: LE closing the LS loop"
            self.findings.append(Finding("LE", position, self.open[2], "3", msg))
            self.open = None


class Instance:
    """One occurrence of a loop: its segment uses, the child loops started in it, where it began, and
    whether its first segment opened it (a partial one is never checked for missing parts)."""

    __slots__ = ("children", "loop", "start", "uses", "whole")

    def __init__(self, loop: LoopNode, start: int, uses: dict[SegNode, int], *, whole: bool) -> None:
        self.loop = loop
        self.start = start
        self.uses = uses  # nodes hash by identity: no id() call per segment
        self.children: set[LoopNode] = set()
        self.whole = whole


def encloses(outer: LoopNode | None, inner: LoopNode) -> bool:
    """True when ``outer`` is a strict ancestor of ``inner`` in the map."""
    return outer in inner.ancestors


NONE_CLOSED: list[Instance] = []  # shared, never appended to


class UseCounter:
    """Segment uses per loop instance (see :class:`transactions.ig_walk._UseCounter` for why)."""

    def __init__(self) -> None:
        self.stack: list[Instance] = []

    def see(self, found: SegNode, position: int) -> list[Instance]:
        """Count ``found``; returns the loop instances it closed."""
        loop = found.parent
        stack = self.stack
        if not found.is_first and stack and stack[-1].loop is loop:  # the common case: same instance
            uses = stack[-1].uses
            uses[found] = uses.get(found, 0) + 1
            return NONE_CLOSED
        closed: list[Instance] = []
        if found.is_first:
            ancestors = loop.ancestors
            while stack and stack[-1].loop not in ancestors:
                closed.append(stack.pop())
            if stack:
                top = stack[-1]
                cur: LoopNode | None = loop
                while cur is not None and cur is not top.loop:
                    top.children.add(cur)
                    cur = cur.parent
            stack.append(Instance(loop, position, {found: 1}, whole=True))  # opened by its first segment
            return closed
        top_loop = stack[-1].loop if stack else None
        while stack and top_loop is not loop and not encloses(top_loop, loop):
            closed.append(stack.pop())
            top_loop = stack[-1].loop if stack else None
        if not stack or stack[-1].loop is not loop:
            stack.append(Instance(loop, position, {}, whole=False))
        uses = stack[-1].uses
        uses[found] = uses.get(found, 0) + 1
        return closed

    def finish(self) -> list[Instance]:
        closed, self.stack = list(reversed(self.stack)), []
        return closed

    def overcount(self, f: Finding, found: SegNode, position: int) -> bool:
        if f.code != "5" or f.position != position or f.element is not None or not self.stack:
            return False
        return self.stack[-1].uses.get(found, 0) <= found.max_repeat


Candidate = tuple[str, int, Finding]  # (segment id, start of its loop instance, the IK304 3 finding)


def missing_parts(
    inst: Instance, position: int, findings: list[Finding], more: Sequence[Finding] | None = None
) -> list[Finding]:
    """IK304 3 for required segments and loops an ended loop instance lacks (HL loops left to HL checks);
    one already reported since the instance began (in ``findings`` or ``more``) is not repeated."""
    return unreported(missing_candidates(inst, position), findings, more)


def missing_candidates(inst: Instance, position: int) -> tuple[Candidate, ...]:
    """What :func:`missing_parts` reports for ``inst`` before leaving out what was already reported:
    a function of the loop instance alone (the remembered walks keep it per step)."""
    if not inst.whole:
        return ()
    out: list[Candidate] = []
    for kid in inst.loop.required_rest:  # the first segment is in ``uses``: it opened the instance
        if isinstance(kid, SegNode):
            if inst.uses.get(kid):
                continue
            seg_id, name, loop_id = kid.id, kid.name, kid.innermost
        elif kid not in inst.children:
            first = kid.first_seg
            assert first is not None  # noqa: S101 - required_kids holds only loops with a first segment
            seg_id, name, loop_id = first.id, f"loop {kid.id} ({kid.name})", kid.id
        else:
            continue
        out.append(
            (seg_id, inst.start, Finding(seg_id, position, loop_id, "3", f"{SEGMENT_CODES['3']}: {name}"))
        )
    return tuple(out)


def unreported(
    candidates: Sequence[Candidate], findings: Sequence[Finding], more: Sequence[Finding] | None = None
) -> list[Finding]:
    """The candidates' findings not already reported since their instance began (in ``findings`` or
    ``more``)."""
    return [
        f
        for seg_id, start, f in candidates
        if not (_reported(seg_id, start, findings) or (more and _reported(seg_id, start, more)))
    ]


def _reported(seg_id: str, start: int, findings: Sequence[Finding]) -> bool:
    return any(f.segment == seg_id and f.code == "3" and f.position >= start for f in findings)


class LXCheck:
    """LX01 (assigned number) counts 1, 2, 3 ... within the loop that holds the LX loops (837P 2300)."""

    def __init__(self) -> None:
        self.next = 1

    def see(self, found: SegNode, segment: Segment, position: int) -> list[Finding]:
        if found.is_first and found.parent.has_lx_loop:
            self.next = 1
        if segment.tag != "LX" or not found.is_first:
            return []
        expected, self.next = str(self.next), self.next + 1
        if segment.get(1) == expected:
            return []
        msg = f"invalid code value: assigned number out of sequence, {expected} expected (LX01)"
        return [Finding("LX", position, found.innermost, "7", msg, "LX01", (1, None, None), "554")]
