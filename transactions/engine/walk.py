"""Validate one transaction set with the compiled engine: the same findings as
:func:`transactions.ig_walk.walk_transaction_set`, from compiled tables instead of pyx12's objects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from transactions.engine import elements
from transactions.engine.checks import (
    Candidate,
    HLCheck,
    LSCheck,
    LXCheck,
    UseCounter,
    missing_candidates,
    missing_parts,
    unreported,
)
from transactions.engine.compile import compiled_map
from transactions.engine.elements import (
    WRITTEN,
    EleErr,
    View,
    _slow_view,
    check_segment,
    element_value_errors,
    view,
)
from transactions.engine.tables import CompiledMap, CompositeSpec, LoopNode, Node, SegNode
from transactions.engine.walker import SegErr, Walker
from transactions.findings import ELEMENT_CODES, SEGMENT_CODES, Finding
from transactions.placed import PlacedSegments, WalkResult
from transactions.segment import Delimiters, Element, Repetition, Segment

_DATE_FORMATS = {8: "%Y%m%d", 6: "%y%m%d", 12: "%Y%m%d%H%M"}
_join = "".join
WALK_MEMO_LIMIT = 20_000  # remembered walk steps per map and run (a few MB at most)
# A remembered walk step (``_SetWalk._live_step``): found, walk findings, kept, closed, end, next level
_Step = tuple[
    SegNode | None,
    tuple[Finding, ...] | None,
    tuple[Finding, ...] | None,
    tuple[tuple[Candidate, ...], ...],
    tuple[tuple[Candidate, ...], ...] | None,
    dict[Any, Any],
]


def not_found_code(seg_id: str, current: Node, known: frozenset[str]) -> str:
    """IK304 for a segment the walk could not place (1 unknown, 7 out of sequence, 2 unexpected)."""
    if seg_id not in known:
        return "1"
    loop = current.parent
    while loop is not None and not loop.is_root:
        if seg_id in loop.kid_segment_ids:
            return "7"
        loop = loop.parent
    return "2"


def segment_finding(err: SegErr, fallback: str, position: int, code: str | None = None) -> Finding:
    """IK3 for a walk error: a missing segment is named by the map, any other by the data."""
    node = err.node
    code = code or err.code
    if code == "3" and isinstance(node, SegNode):
        seg_id, loop, name = node.id, node.innermost, node.name
    elif code == "3" and isinstance(node, LoopNode):
        first = node.first_seg
        seg_id, loop, name = (first.id if first else fallback), node.id, f"loop {node.id} ({node.name})"
    else:
        seg_id = err.data_id or fallback
        same = isinstance(node, SegNode) and node.id == seg_id
        loop = node.innermost if same and isinstance(node, SegNode) else None
        name = node.name if same and node is not None else seg_id
    pos = err.seg_count or position
    return Finding(seg_id, pos, loop, code, f"{SEGMENT_CODES.get(code, 'segment error')}: {name}")


def element_finding(
    err: EleErr, seg: SegNode, segment: Segment, position: int, repetition: int | None = None
) -> Finding:
    code, spec, refdes = err
    if code == "10" and spec is not None and spec.usage == "N":
        code = "I10"
    if spec is not None:
        if spec.composite_seq:
            where: tuple[int, int | None, int | None] = (spec.composite_seq, spec.seq, repetition)
        else:
            where = (spec.seq, None, repetition)
        xid, name, ref = spec.id, spec.name, spec.data_ele
    else:
        first = int(str(refdes)) if str(refdes or "").isdigit() else 1
        where, xid, name, ref = (first, None, repetition), f"{segment.tag}{first:02d}", segment.tag, None
    message = f"{ELEMENT_CODES.get(code, 'element error')}: {name} ({xid})"
    return Finding(segment.tag, position, seg.innermost, code, message, xid, where, ref)


def repetition_findings(
    seg: SegNode,
    segment: Segment,
    position: int,
    cmap: CompiledMap,
    repeated: Sequence[tuple[int, Repetition]] | None = None,
) -> list[Finding]:
    """IK403 12/13 and the value checks of the second and later occurrences of repeated elements.
    ``repeated``: the segment's (1-based position, Repetition) pairs when the caller has them."""
    out: list[Finding] = []
    if repeated is None:
        repeated = [(i, v) for i, v in enumerate(segment.elements, 1) if isinstance(v, Repetition)]
    for index, value in repeated:
        if index > len(seg.children):
            continue
        child = seg.children[index - 1]
        limit = cmap.repeats.get(child.id, 1)
        if len(value) > limit:
            msg = f"{ELEMENT_CODES['12']}: {child.name} ({child.id}) allows {limit}"
            out.append(
                Finding(
                    segment.tag,
                    position,
                    seg.innermost,
                    "12",
                    msg,
                    child.id,
                    (index, None, None),
                    child.data_ele,
                )
            )
        if isinstance(child, CompositeSpec):
            continue
        later = value[1:]
        if child.ok.issuperset(later):  # each one of the map's codes that check clean (so a str): none
            continue
        for rep_index, occurrence in enumerate(later, 2):
            if not isinstance(occurrence, str):
                msg = f"{ELEMENT_CODES['13']}: {child.name} ({child.id})"
                out.append(
                    Finding(
                        segment.tag,
                        position,
                        seg.innermost,
                        "13",
                        msg,
                        child.id,
                        (index, None, rep_index),
                        child.data_ele,
                    )
                )
                continue
            if occurrence in child.ok:  # one of the map's codes that checks clean
                continue
            errs = element_value_errors(child, occurrence, cmap.icvn)
            out += [element_finding(e, seg, segment, position, repetition=rep_index) for e in errs]
    return out


def trim_composites(
    seg: SegNode, segment: Segment, position: int, odd: Sequence[tuple[int, Element]] | None = None
) -> tuple[Segment, list[Finding]]:
    """Composites with more components than the map defines get IK403 13 and are cut to size.
    ``odd``: the segment's (0-based index, value) pairs that are not plain strings, when the caller
    has them (only those can be cut)."""
    findings: list[Finding] = []
    values = list(segment.elements)
    kids = seg.children
    if odd is None:
        odd = [(i, v) for i, v in enumerate(values) if not isinstance(v, str)]
    for index, value in odd:
        if index >= len(kids):
            continue
        child = kids[index]
        if not isinstance(child, CompositeSpec):
            continue
        first = value[0] if isinstance(value, Repetition) else value
        limit = len(child.children)
        if isinstance(first, tuple) and len(first) > limit:
            msg = f"{ELEMENT_CODES['13']}: {child.name} ({child.id}) has {limit}"
            findings.append(
                Finding(
                    segment.tag,
                    position,
                    seg.innermost,
                    "13",
                    msg,
                    child.id,
                    (index + 1, None, None),
                    child.data_ele,
                )
            )
            values[index] = first[:limit]
    return (Segment(segment.tag, tuple(values)) if findings else segment), findings


def element_errors(found: SegNode, tag: str, values: View, icvn: str) -> Sequence[EleErr]:
    """Element errors against the node; a same-id sibling the segment fits without errors wins."""
    errors = check_segment(found, tag, values, icvn)
    if not errors:
        return errors
    for sibling in found.parent.kids:
        same_id = sibling is not found and isinstance(sibling, SegNode) and sibling.id == found.id
        if same_id and not check_segment(sibling, tag, values, icvn):  # type: ignore[arg-type]
            return ()
    return errors


def value_at(segment: Segment, where: tuple[int, int | None, int | None] | None) -> str:
    if where is None or where[0] < 1 or where[0] > len(segment.elements):
        return ""
    value = segment.elements[where[0] - 1]
    if isinstance(value, Repetition):
        value = value[(where[2] or 1) - 1] if len(value) >= (where[2] or 1) else ""
    if isinstance(value, tuple):
        index = (where[1] or 1) - 1
        value = value[index] if index < len(value) else ""
    return value if isinstance(value, str) else ""


def calendar_date(text: str) -> bool:
    """A real calendar date in an X12 DT form; any year counts (see ig_walk)."""
    if not text.isascii() or not text.isdigit() or len(text) not in _DATE_FORMATS:
        return False
    try:
        datetime.strptime(text, _DATE_FORMATS[len(text)])  # noqa: DTZ007 - a calendar check
    except ValueError:
        return False
    return True


class _SetWalk:
    """The state of one set's walk and the checks riding along."""

    def __init__(self, cmap: CompiledMap, d: Delimiters, *, keep_placed: bool) -> None:
        self.cmap = cmap
        self.walker = Walker(d.component)
        self.walker.start_at_group(cmap.gs_loop_key, cmap.gs_node)
        self.node: Node = cmap.gs_node
        self.findings: list[Finding] = []
        self.nodes: list[SegNode | None] | None = [] if keep_placed else None  # per segment, when kept
        self.hl, self.ls, self.lx, self.counts = HLCheck(), LSCheck(), LXCheck(), UseCounter()
        self.end: tuple[tuple[Candidate, ...], ...] | None = None  # set by the remembered walk

    def step(self, segment: Segment, position: int) -> None:
        tag = segment.tag
        values, plain = view(segment)
        start = self.node
        found, errors = self.walker.walk(start, tag, values, position)
        walk_findings = [self._walk_finding(e, tag, start, position) for e in errors] if errors else None
        self.placed(found, walk_findings, segment, position, values, plain=plain)

    def placed(
        self,
        found: SegNode | None,
        walk_findings: Sequence[Finding] | None,
        segment: Segment,
        position: int,
        values: View,
        *,
        plain: bool,
    ) -> None:
        """What follows the loop walk of one segment: the node it found (None: not placed) and the
        walk's findings, then the loop-instance, element, HL, LS and LX checks."""
        if self.nodes is not None:
            self.nodes.append(found)
        if found is None:
            self.findings += walk_findings or ()
            return
        self.node = found
        for inst in self.counts.see(found, position):
            if inst.whole and inst.loop.required_rest:  # else missing_parts finds nothing
                missing = missing_parts(inst, position, self.findings, walk_findings)
                if missing:
                    walk_findings = missing if walk_findings is None else [*walk_findings, *missing]
        if walk_findings:
            counts = self.counts
            self.findings += [f for f in walk_findings if not counts.overcount(f, found, position)]
        self._segment_checks(found, segment, position, values, plain=plain)

    def walk_remembered(self, segments: Sequence[Segment]) -> None:
        """All of ``segments`` (ST..SE), each segment's loop walk read from the run's remembered walks
        (:class:`~transactions.engine.tables.WalkMemo`) while the set follows a path already walked.

        Why: the walk and the loop-instance count were a third of a response set's validation, and
        the sets of one file mostly repeat a few shapes. What the walk finds for a segment (node,
        errors, findings) and the loop instances it closes depend only on the set's segments so far
        as the walk reads them: each one's id, and the values at the elements the map's segments of
        that id read as qualifiers (plus the component separator, which joins a composite qualifier).
        Those are the keys of the tree, so a path found in it gives exactly what walking would (a
        closed instance's missing parts are kept as candidates: whether one was already reported
        depends on the element findings, so that is still asked per set). Where the set leaves the
        tree, the walker and the instance count are brought to that point by walking the segments
        before it (neither has seen any so far) and go on live, adding what they find."""
        memo = self.cmap.walks
        component = self.walker.component
        level = memo.get(component)
        if level is None:  # kept across runs (a delimiter, no data value): see WalkMemo
            level = memo.setdefault(component, {})
        quals = self.cmap.qualifier_elements
        last = len(segments)
        apply, checks, nodes = self._apply, self._segment_checks, self.nodes
        for position, segment in enumerate(segments, 1):
            tag = segment.tag
            values: View
            raw = segment.elements  # view(segment), inline: a call per segment saved
            try:  # a composite or a repetition (a tuple) stops the join
                _join(raw)  # type: ignore[arg-type]
            except TypeError:
                values, plain = _slow_view(raw), False
            else:
                plain = True
                values = _slow_view(raw) if raw and raw[-1] == "" else raw  # type: ignore[assignment]
            at = quals.get(tag)
            if at is None:
                key: Any = tag
            elif len(at) == 1:  # walk_key's commonest case, inline
                first = at[0]
                key = (tag, values[first - 1] if first <= len(values) else None)
            else:
                key = walk_key(tag, values, at)
            step = level.get(key)
            if step is None or (position == last and step[4] is None):
                self._walk_on(segments, position, level)
                return
            found = step[0]
            if found is not None and not step[2] and not step[3]:  # placed, no finding: _apply, inline
                if nodes is not None:
                    nodes.append(found)
                self.node = found
                checks(found, segment, position, values, plain=plain)
            else:
                apply(step, segment, position, values, plain=plain)
            level = step[5]
        self.end = step[4]

    def _walk_on(self, segments: Sequence[Segment], position: int, level: dict[Any, Any] | None) -> None:
        """Segments from ``position`` on walked live, after the walker and the instance count have
        seen the ones before; each step added under ``level`` (the tree's node for the segments
        before) while the memo has room."""
        walker, node, counts = self.walker, self.cmap.gs_node, self.counts
        for before, segment in enumerate(segments[: position - 1], 1):
            found, _ = walker.walk(node, segment.tag, view(segment)[0], before)
            if found is not None:
                node = found
                counts.see(found, before)
        cmap = self.cmap
        memo, last = cmap.walks, len(segments)
        for at_pos in range(position, last + 1):
            segment = segments[at_pos - 1]
            tag = segment.tag
            values, plain = view(segment)
            step = self._live_step(node, tag, values, at_pos, last)
            key = shape_key(cmap, tag, values) if level is not None else None
            if key is not None and memo.entries < WALK_MEMO_LIMIT:
                level[key] = step  # type: ignore[index]
                memo.entries += 1
                level = step[5]
            else:  # the tree keeps no data value: the rest of this set is not remembered
                level = None
            node = node if step[0] is None else step[0]
            self._apply(step, segment, at_pos, values, plain=plain)
        self.end = step[4]
        if memo.entries >= WALK_MEMO_LIMIT:  # full: emptied when the run ends, to learn again
            WRITTEN.append(memo)

    def _live_step(self, start: Node, tag: str, values: View, position: int, last: int) -> _Step:
        """One segment walked and counted: (node found, walk findings, those kept after the
        instance count, the missing-part candidates of each instance it closed, at the set's last
        segment the candidates of the instances still open, the tree's next level)."""
        found, errors = self.walker.walk(start, tag, values, position)
        walk = tuple(self._walk_finding(e, tag, start, position) for e in errors) if errors else None
        kept = walk
        closed: tuple[tuple[Candidate, ...], ...] = ()
        if found is not None:
            counts = self.counts
            closed = tuple(
                c
                for inst in counts.see(found, position)
                if inst.whole and inst.loop.required_rest and (c := missing_candidates(inst, position))
            )
            if walk:
                kept = tuple(f for f in walk if not counts.overcount(f, found, position))
        end = None
        if position == last:
            end = tuple(c for inst in self.counts.finish() if (c := missing_candidates(inst, last)))
        return (found, walk, kept, closed, end, {})

    def _apply(self, step: _Step, segment: Segment, position: int, values: View, *, plain: bool) -> None:
        """What :meth:`placed` does, from a walk step: the node placed, the walk findings kept, the
        missing parts not already reported, then the element, HL, LS and LX checks."""
        found, walk, kept, closed, _, _ = step
        if self.nodes is not None:
            self.nodes.append(found)
        if found is None:
            if kept:
                self.findings += kept
            return
        self.node = found
        if closed:
            more = list(walk or ())
            added: list[Finding] = []
            for candidates in closed:
                missing = unreported(candidates, self.findings, more)
                more += missing
                added += missing
            self.findings += [*(kept or ()), *added]
        elif kept:
            self.findings += kept
        self._segment_checks(found, segment, position, values, plain=plain)

    def _walk_finding(self, e: SegErr, tag: str, start: Node, position: int) -> Finding:
        code = not_found_code(tag, start, self.cmap.known_ids) if e.code == "1" else None
        return segment_finding(e, tag, position, code)

    def _segment_checks(
        self, found: SegNode, segment: Segment, position: int, values: View, *, plain: bool
    ) -> None:
        findings = self.findings
        tag = segment.tag
        # The values that are not plain strings, found once for the two checks that read only them.
        # (``__class__``: a str subclass counted as odd is passed over by both, as a plain str would be)
        odd = None if plain else [(i, v) for i, v in enumerate(segment.elements) if v.__class__ is not str]
        if found.has_composite and odd:  # a plain segment (no composite, no repeat) needs no cut
            trimmed, too_many = trim_composites(found, segment, position, odd)
            if too_many:
                findings += too_many
                values = view(trimmed)[0]
        icvn = self.cmap.icvn
        # element_errors' first step, inline (most are clean), its memo read here when memos are on
        errs: Sequence[EleErr] | None = found.memo.get(values) if elements.MEMO_LIMIT else None
        if errs is None:
            errs = check_segment(found, tag, values, icvn)
        if errs:
            errs = element_errors(found, tag, values, icvn)
        for e in errs:
            f = element_finding(e, found, segment, position)
            if not (f.code == "8" and calendar_date(value_at(segment, f.element_position))):
                findings.append(f)
        repeated = [(i + 1, v) for i, v in odd if isinstance(v, Repetition)] if odd else None
        if repeated:
            findings += repetition_findings(found, segment, position, self.cmap, repeated)
        if found.is_first and (found.parent.has_lx_loop or tag == "LX"):  # else LXCheck.see does nothing
            findings += self.lx.see(found, segment, position)
        if tag == "HL":
            self.hl.see(found, segment, position, plain=plain)
        if self.ls.open is not None or tag in ("LS", "LE"):
            self.ls.see(found, segment, position)

    def finish(self, segments: Sequence[Segment], *, ended_by_se: bool) -> WalkResult:
        findings = self.findings
        count = len(segments)
        if not ended_by_se:
            _, errors = self.walker.walk(self.node, "SE", ("0", "0"), count + 1)
            findings += [segment_finding(e, "SE", count + 1) for e in errors]
        if self.end is not None:  # the set's walk was remembered: its open instances' candidates
            for candidates in self.end:
                findings += unreported(candidates, findings)
        else:
            for inst in self.counts.finish():
                findings += missing_parts(inst, count, findings)
        self.ls.close(count)
        findings += self.hl.finish() + self.ls.findings
        findings.sort(key=lambda f: f.position)
        nodes = self.nodes
        if nodes is None:
            return WalkResult(tuple(findings), ())
        placed = len(nodes) - nodes.count(None)
        return WalkResult(tuple(findings), PlacedSegments(segments, nodes, placed))


def walk_transaction_set(
    segments: Sequence[Segment], map_file: str, map_source: str, d: Delimiters, *, keep_placed: bool = True
) -> WalkResult:
    """Validate ST..SE of one set against one map with the compiled engine."""
    state = _SetWalk(compiled_map(map_file, map_source), d, keep_placed=keep_placed)
    ended_by_se = bool(segments) and segments[-1].tag == "SE"
    if ended_by_se and elements.MEMO_LIMIT:  # memos on (a set without SE takes a last walk: live)
        state.walk_remembered(segments)
    else:
        step = state.step
        for position, segment in enumerate(segments, 1):
            step(segment, position)
    return state.finish(segments, ended_by_se=ended_by_se)


def walk_key(tag: str, values: View, at: tuple[int, ...]) -> tuple[Any, ...]:
    """A segment's key in the remembered walks: its id and its values at ``at`` (the elements its
    id's qualifiers read; None past the last one)."""
    count = len(values)
    if len(at) == 1:
        first = at[0]
        return (tag, values[first - 1] if first <= count else None)
    return (tag, *[values[e - 1] if e <= count else None for e in at])


def shape_key(cmap: CompiledMap, tag: str, values: View) -> Any:
    """:func:`walk_key` of a segment when it holds only the map's vocabulary: a segment id the map
    knows and, at its qualifier elements, values the map names there (``CompiledMap.shape_values``);
    else None. Only such keys enter the remembered walks, which are kept from run to run: a shape,
    never a data value (an unknown id or an odd qualifier value may be anything, PHI included)."""
    if tag not in cmap.known_ids:
        return None
    at = cmap.qualifier_elements.get(tag)
    if at is None:
        return tag
    key = walk_key(tag, values, at)
    for value, named in zip(key[1:], cmap.shape_values[tag], strict=True):
        if value.__class__ is tuple or value not in named:  # a composite's parts: data
            return None
    return key
