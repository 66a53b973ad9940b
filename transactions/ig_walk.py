"""Walk one transaction set through an implementation-guide map with pyx12's engine.

pyx12 supplies the map model, the loop walker and the element validator; this module drives them
one transaction set at a time and adds what pyx12 4 does not check: element repetitions (ISA11),
HL parent levels and HL04 child codes, and LS/LE pairing. Findings are built from codes and map names
(see :mod:`transactions.findings`), never from pyx12's message strings, which quote the data.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyx12.map_walker import walk_tree
from pyx12.segment import Element as PyxElement
from pyx12.segment import Segment as PyxSegment

from transactions.findings import ELEMENT_CODES, SEGMENT_CODES, Finding
from transactions.maps import element_repeats, load_map
from transactions.placed import Placed, WalkResult
from transactions.segment import Delimiters, Repetition, Segment
from transactions.writer import format_segment

__all__ = ["Placed", "WalkResult", "loop_path", "walk_transaction_set"]

ENVELOPE_LOOPS = frozenset({"ISA_LOOP", "GS_LOOP", "ST_LOOP", "HEADER", "DETAIL", "FOOTER"})


def loop_path(node: Any) -> tuple[str, ...]:
    """TR3 loop ids enclosing a pyx12 map node, outermost first (envelope wrappers left out)."""
    out: list[str] = []
    cur = node.parent
    while cur is not None and not cur.is_map_root():
        if cur.is_loop() and cur.id not in ENVELOPE_LOOPS:
            out.append(cur.id)
        cur = cur.parent
    return tuple(reversed(out))


def _innermost_loop(node: Any) -> str | None:
    path = loop_path(node) if node is not None else ()
    return path[-1] if path else None


def _first_occurrences(segment: Segment) -> Segment:
    """The segment with each repeated element reduced to its first occurrence (what pyx12 can check)."""
    if not any(isinstance(e, Repetition) for e in segment.elements):
        return segment
    values = tuple((e[0] if e else "") if isinstance(e, Repetition) else e for e in segment.elements)
    return Segment(segment.tag, values)


def to_pyx12(segment: Segment, d: Delimiters) -> PyxSegment:
    text = format_segment(_first_occurrences(segment), d)
    return PyxSegment(text, d.segment, d.element, d.component, d.repetition)


def _kids(node: Any) -> list[Any]:
    """A loop's (or the root's) child nodes in map order."""
    pos_map = getattr(node, "pos_map", None)
    if pos_map is not None:
        return [c for key in sorted(pos_map) for c in pos_map[key]]
    return list(node.children or ())


@functools.cache
def _segment_ids(map_file: str, map_source: str) -> frozenset[str]:
    """Every segment id a map knows (anywhere in the set)."""
    imap = load_map(map_file, map_source)
    return frozenset(n.id for n in imap.loop_segment_iterator() if n.is_segment())


def _not_found_code(seg_id: str, current: Any, known: frozenset[str]) -> str:
    """IK304 for a segment the walk could not place: 1 when the guide has no such segment, 7 when its
    id belongs to the loop being read or one enclosing it (it is out of sequence), 2 otherwise (a known
    segment, or a known one with a qualifier the guide does not allow there)."""
    if seg_id not in known:
        return "1"
    loop = current.parent if current is not None else None
    while loop is not None and not loop.is_map_root():
        if any(c.is_segment() and c.id == seg_id for c in _kids(loop)):
            return "7"
        loop = loop.parent
    return "2"


def _segment_finding(err: Any, fallback: str, position: int, code: str | None = None) -> Finding:
    """IK3 for a walk error: a missing segment is named by the map, any other by the data."""
    node = err.map_node
    code = code or err.err_cde
    data_id = err.seg_data.get_seg_id() if err.seg_data is not None else None
    if code == "3" and node is not None and node.is_segment():
        seg_id, loop, name = node.id, _innermost_loop(node), node.name
    elif code == "3" and node is not None and node.is_loop():
        first = node.get_first_seg()
        seg_id, loop, name = (first.id if first else fallback), node.id, f"loop {node.id} ({node.name})"
    else:
        seg_id = data_id or fallback
        loop = _innermost_loop(node) if node is not None and node.is_segment() and node.id == seg_id else None
        name = node.name if node is not None and node.is_segment() and node.id == seg_id else seg_id
    pos = err.seg_count or position
    return Finding(seg_id, pos, loop, code, f"{SEGMENT_CODES.get(code, 'segment error')}: {name}")


def _element_finding(
    err: Any, seg_node: Any, segment: Segment, position: int, repetition: int | None = None
) -> Finding:
    node = err.map_node
    code = err.err_cde
    if code == "10" and node is not None and node.usage == "N":
        code = "I10"  # pyx12 says 10 (exclusion); X12 has a code for an implementation "not used" element
    if node is not None:
        if node.parent is not None and node.parent.is_composite():
            where: tuple[int, int | None, int | None] = (int(node.parent.seq), int(node.seq), repetition)
        else:
            where = (int(node.seq), None, repetition)
        xid, name, ref = node.id, node.name, node.data_ele
    else:
        first = int(err.refdes) if str(err.refdes or "").isdigit() else 1
        where, xid, name, ref = (first, None, repetition), f"{segment.tag}{first:02d}", segment.tag, None
    message = f"{ELEMENT_CODES.get(code, 'element error')}: {name} ({xid})"
    return Finding(segment.tag, position, _innermost_loop(seg_node), code, message, xid, where, ref)


def _repetition_findings(
    seg_node: Any, segment: Segment, position: int, repeats: dict[str, int]
) -> list[Finding]:
    out: list[Finding] = []
    for index, value in enumerate(segment.elements, 1):
        if not isinstance(value, Repetition):
            continue
        child = seg_node.get_child_node_by_idx(index - 1)
        if child is None:
            continue
        limit = repeats.get(child.id, 1)
        if len(value) > limit:
            msg = f"{ELEMENT_CODES['12']}: {child.name} ({child.id}) allows {limit}"
            out.append(
                Finding(
                    segment.tag,
                    position,
                    _innermost_loop(seg_node),
                    "12",
                    msg,
                    child.id,
                    (index, None, None),
                    child.data_ele,
                )
            )
        if child.is_composite():
            continue
        for rep_index, occurrence in enumerate(value[1:], 2):
            if not isinstance(occurrence, str):
                out.append(
                    Finding(
                        segment.tag,
                        position,
                        _innermost_loop(seg_node),
                        "13",
                        f"{ELEMENT_CODES['13']}: {child.name} ({child.id})",
                        child.id,
                        (index, None, rep_index),
                        child.data_ele,
                    )
                )
                continue
            _, errors = child.is_valid_errors(PyxElement(occurrence))
            out += [_element_finding(e, seg_node, segment, position, repetition=rep_index) for e in errors]
    return out


def _trim_composites(seg_node: Any, segment: Segment, position: int) -> tuple[Segment, list[Finding]]:
    """Composites with more components than the map defines get IK403 13 and are cut to size
    (pyx12 4 raises IndexError on them instead of reporting)."""
    findings: list[Finding] = []
    values = list(segment.elements)
    for index, value in enumerate(values):
        child = seg_node.get_child_node_by_idx(index)
        if child is None or not child.is_composite() or isinstance(value, str):
            continue
        first = value[0] if isinstance(value, Repetition) else value
        limit = child.get_child_count()
        if isinstance(first, tuple) and len(first) > limit:
            msg = f"{ELEMENT_CODES['13']}: {child.name} ({child.id}) has {limit}"
            findings.append(
                Finding(
                    segment.tag,
                    position,
                    _innermost_loop(seg_node),
                    "13",
                    msg,
                    child.id,
                    (index + 1, None, None),
                    child.data_ele,
                )
            )
            values[index] = first[:limit]
    return (Segment(segment.tag, tuple(values)) if findings else segment), findings


class _HLCheck:
    """HL01 sequence, HL02 parent level (from the map's loop nesting) and HL04 child codes."""

    def __init__(self) -> None:
        self.levels: dict[str, str] = {}
        self.has_child: set[str] = set()
        self.declared: list[tuple[str, str, int, str | None]] = []  # (id, HL04, position, loop)
        self.findings: list[Finding] = []

    def _err(self, position: int, loop: str | None, xid: str, index: int, ref: str, what: str) -> None:  # noqa: PLR0917
        self.findings.append(
            Finding(
                "HL",
                position,
                loop,
                "7",
                f"invalid code value: {what} ({xid})",
                xid,
                (index, None, None),
                ref,
            )
        )

    def see(self, seg_node: Any, segment: Segment, position: int) -> None:
        loop = _innermost_loop(seg_node)
        hl_id, parent, level = segment.get(1), segment.get(2), segment.get(3)
        if hl_id != str(len(self.levels) + 1):
            self._err(position, loop, "HL01", 1, "628", "hierarchical id number out of sequence")
        allowed = _parent_levels(seg_node)
        if allowed is None and parent:
            self._err(position, loop, "HL02", 2, "734", "a top-level HL has a parent")
        elif allowed is not None and self.levels.get(parent) not in allowed:
            self._err(position, loop, "HL02", 2, "734", "parent is not an HL of the level the guide requires")
        if parent:
            self.has_child.add(parent)
        self.levels[hl_id] = level
        self.declared.append((hl_id, segment.get(4), position, loop))

    def finish(self) -> list[Finding]:
        """HL04 = 0 with children is an error; HL04 = 1 without any is only a warning, because the TR3's
        own rejection examples keep HL04 = 1 after dropping the lower levels."""
        for hl_id, child_code, position, loop in self.declared:
            if child_code == "0" and hl_id in self.has_child:
                self._err(position, loop, "HL04", 4, "736", "HL04 says no children but HLs follow")
            elif child_code == "1" and hl_id not in self.has_child:
                msg = "HL04 says children follow but none do"
                self.findings.append(
                    Finding("HL", position, loop, "7", msg, "HL04", (4, None, None), "736", "warning")
                )
        return self.findings


def _parent_levels(seg_node: Any) -> frozenset[str] | None:
    """HL03 codes allowed for the parent of the HL loop ``seg_node`` opens (None at the top level)."""
    cur = seg_node.parent.parent if seg_node.parent is not None else None
    while cur is not None and not cur.is_map_root():
        if cur.is_loop():
            first = cur.get_first_seg()
            if first is not None and first.id == "HL":
                hl03 = first.get_child_node_by_idx(2)
                return frozenset(hl03.valid_codes) if hl03 is not None else None
        cur = cur.parent
    return None


class _LSCheck:
    """LS/LE bounded loops: every LS closed by an LE with the same loop id before its parent loop ends."""

    def __init__(self) -> None:
        self.open: tuple[str, int, str | None] | None = None
        self.findings: list[Finding] = []

    def see(self, seg_node: Any, segment: Segment, position: int) -> None:
        loop = _innermost_loop(seg_node)
        if segment.tag == "LS":
            self.open = (segment.get(1), position, loop)
        elif segment.tag == "LE":
            if self.open is None:
                self.findings.append(
                    Finding("LE", position, loop, "2", "unexpected segment: LE without a matching LS")
                )
            elif self.open[0] != segment.get(1):
                self.findings.append(
                    Finding(
                        "LE", position, loop, "8", "LE01 does not match LS01", "LE01", (1, None, None), "447"
                    )
                )
            self.open = None
        elif self.open is not None and not any(lp.startswith(self.open[0]) for lp in loop_path(seg_node)):
            self.close(position)

    def close(self, position: int) -> None:
        if self.open is not None:
            self.findings.append(
                Finding("LE", position, self.open[2], "3", "required segment missing: LE closing the LS loop")
            )
            self.open = None


def _element_errors(found: Any, pseg: PyxSegment) -> list[Any]:
    """Element errors of a segment against its node; where the loop defines several segments with the
    same id (837P 2400 PWK: attachments, then the DME certificate of medical necessity), pyx12 places
    it on the first, so a sibling the segment fits without errors wins."""
    _, errors = found.is_valid_errors(pseg)
    if not errors or found.parent is None:
        return list(errors)
    for sibling in _kids(found.parent):
        if sibling is not found and sibling.is_segment() and sibling.id == found.id:
            _, other = sibling.is_valid_errors(pseg)
            if not other:
                return []
    return list(errors)


def _value_at(segment: Segment, where: tuple[int, int | None, int | None] | None) -> str:
    if where is None or where[0] < 1 or where[0] > len(segment.elements):
        return ""
    value = segment.elements[where[0] - 1]
    if isinstance(value, Repetition):
        value = value[(where[2] or 1) - 1] if len(value) >= (where[2] or 1) else ""
    if isinstance(value, tuple):
        index = (where[1] or 1) - 1
        value = value[index] if index < len(value) else ""
    return value if isinstance(value, str) else ""


def _calendar_date(text: str) -> bool:
    """A real calendar date in an X12 DT form (CCYYMMDD, YYMMDD, or CCYYMMDDHHMM); any year counts:
    the guides ask for a date, not a plausible one (payers use 10010101 as a placeholder)."""
    formats = {8: "%Y%m%d", 6: "%y%m%d", 12: "%Y%m%d%H%M"}
    if not text.isascii() or not text.isdigit() or len(text) not in formats:
        return False
    try:
        datetime.strptime(text, formats[len(text)])  # noqa: DTZ007 - a calendar check, no zone involved
    except ValueError:
        return False
    return True


@dataclass
class _Instance:
    """One occurrence of a loop: its segment uses, the child loops started in it, where it began."""

    loop: Any
    start: int
    uses: dict[int, int]
    children: set[int]
    whole: bool  # opened by its first segment (a partial one is never checked for missing parts)


class _UseCounter:
    """Segment uses per loop instance, for two checks pyx12 4 gets wrong. Its counter does not restart
    a segment's count when its loop starts again under a new parent (the 999 guide's own example gets
    "Business Unit CTX exceeds maximum use"): a max-use error it reports is dropped when this count is
    within the limit. And it does not notice a loop instance that ends without its required segments
    or loops when the same loop starts again at once (a duplicated CLM leaves a 2300 with no HI)."""

    def __init__(self) -> None:
        self.stack: list[_Instance] = []

    def see(self, found: Any, position: int) -> list[_Instance]:
        """Count ``found``; returns the loop instances it closed."""
        loop = found.parent
        closed: list[_Instance] = []
        if found.is_first_seg_in_loop():
            while self.stack and not _encloses(self.stack[-1].loop, loop):
                closed.append(self.stack.pop())
            if self.stack:
                cur = loop
                while cur is not None and cur is not self.stack[-1].loop:
                    self.stack[-1].children.add(id(cur))
                    cur = cur.parent
            self.stack.append(_Instance(loop, position, {}, set(), whole=True))
        else:
            top = self.stack[-1].loop if self.stack else None
            while self.stack and top is not loop and not _encloses(top, loop):
                closed.append(self.stack.pop())
                top = self.stack[-1].loop if self.stack else None
            if not self.stack or self.stack[-1].loop is not loop:
                self.stack.append(_Instance(loop, position, {}, set(), whole=False))
        uses = self.stack[-1].uses
        uses[id(found)] = uses.get(id(found), 0) + 1
        return closed

    def finish(self) -> list[_Instance]:
        closed, self.stack = list(reversed(self.stack)), []
        return closed

    def pyx12_overcount(self, f: Finding, found: Any, position: int) -> bool:
        if f.code != "5" or f.position != position or f.element is not None or not self.stack:
            return False
        limit: int = found.get_max_repeat()
        return self.stack[-1].uses.get(id(found), 0) <= limit


def _missing_parts(inst: _Instance, position: int, findings: list[Finding]) -> list[Finding]:
    """IK304 3 for required segments and loops an ended loop instance lacks (HL loops are left to the
    HL checks), unless the walk already reported that segment missing inside the instance."""
    if not inst.whole:
        return []
    out: list[Finding] = []
    for kid in _kids(inst.loop):
        if kid.usage != "R":
            continue
        if kid.is_segment() and not inst.uses.get(id(kid)):
            seg_id, name, loop_id = kid.id, kid.name, _innermost_loop(kid)
        elif kid.is_loop() and id(kid) not in inst.children:
            first = kid.get_first_seg()
            if first is None or first.id == "HL":
                continue
            seg_id, name, loop_id = first.id, f"loop {kid.id} ({kid.name})", kid.id
        else:
            continue
        if any(f.segment == seg_id and f.code == "3" and f.position >= inst.start for f in findings):
            continue
        out.append(Finding(seg_id, position, loop_id, "3", f"{SEGMENT_CODES['3']}: {name}"))
    return out


def _encloses(outer: Any, inner: Any) -> bool:
    """True when ``outer`` is a strict ancestor of ``inner`` in the map."""
    cur = inner.parent
    while cur is not None:
        if cur is outer:
            return True
        cur = cur.parent
    return False


class _LXCheck:
    """LX01 (assigned number) counts 1, 2, 3 ... within the loop that holds the LX loops (837P 2300)."""

    def __init__(self) -> None:
        self.next = 1

    def see(self, found: Any, segment: Segment, position: int) -> list[Finding]:
        if found.is_first_seg_in_loop() and any(
            c.is_loop() and (c.get_first_seg() is not None and c.get_first_seg().id == "LX")
            for c in _kids(found.parent)
        ):
            self.next = 1
        if segment.tag != "LX" or not found.is_first_seg_in_loop():
            return []
        expected, self.next = str(self.next), self.next + 1
        if segment.get(1) == expected:
            return []
        loop = _innermost_loop(found)
        msg = f"invalid code value: assigned number out of sequence, {expected} expected (LX01)"
        return [Finding("LX", position, loop, "7", msg, "LX01", (1, None, None), "554")]


def walk_transaction_set(
    segments: Sequence[Segment], map_file: str, map_source: str, d: Delimiters, *, keep_placed: bool = True
) -> WalkResult:
    """Validate ST..SE of one set against one map; returns findings and (when ``keep_placed``) the
    segments placed in their loops."""
    imap = load_map(map_file, map_source)
    repeats = element_repeats(map_file, map_source)
    walker = walk_tree()
    node = imap.getnodebypath("/ISA_LOOP/GS_LOOP/GS")
    walker.forceWalkCounterToLoopStart("/ISA_LOOP/GS_LOOP", "/ISA_LOOP/GS_LOOP/GS")
    findings: list[Finding] = []
    placed: list[Placed] = []
    hl, ls = _HLCheck(), _LSCheck()
    ls_id: str | None = None
    known = _segment_ids(map_file, map_source)
    counts, lx = _UseCounter(), _LXCheck()
    for position, segment in enumerate(segments, 1):
        pseg = to_pyx12(segment, d)
        found, _pops, _pushes, errors = walker.walk_errors(node, pseg, position, position, ls_id)
        for e in errors:
            code = _not_found_code(segment.tag, node, known) if e.err_cde == "1" else None
            findings.append(_segment_finding(e, segment.tag, position, code))
        if found is None:
            continue
        node = found
        for inst in counts.see(found, position):
            findings += _missing_parts(inst, position, findings)
        findings[:] = [f for f in findings if not counts.pyx12_overcount(f, found, position)]
        trimmed, too_many = _trim_composites(found, segment, position)
        findings += too_many
        if too_many:
            pseg = to_pyx12(trimmed, d)
        element_errors = _element_errors(found, pseg)
        findings += [
            f
            for f in (_element_finding(e, found, segment, position) for e in element_errors)
            if not (f.code == "8" and _calendar_date(_value_at(segment, f.element_position)))
        ]
        findings += _repetition_findings(found, segment, position, repeats)
        findings += lx.see(found, segment, position)
        if segment.tag == "HL":
            hl.see(found, segment, position)
        ls.see(found, segment, position)
        ls_id = segment.get(1) if segment.tag == "LS" else (None if segment.tag == "LE" else ls_id)
        if keep_placed:
            names = tuple(c.name for c in found.children) if found.children else ()
            first = found.is_first_seg_in_loop()
            placed.append(Placed(segment, position, loop_path(found), found.name, names, first))
    if not segments or segments[-1].tag != "SE":
        closing = PyxSegment(f"SE{d.element}0{d.element}0", d.segment, d.element, d.component)
        _, _, _, errors = walker.walk_errors(node, closing, len(segments) + 1, len(segments) + 1, ls_id)
        findings += [_segment_finding(e, "SE", len(segments) + 1) for e in errors]
    for inst in counts.finish():
        findings += _missing_parts(inst, len(segments), findings)
    ls.close(len(segments))
    findings += hl.finish() + ls.findings
    findings.sort(key=lambda f: f.position)
    return WalkResult(tuple(findings), tuple(placed))
