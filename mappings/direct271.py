"""The shipped eligibility rule (``mappings/rules/default.xml``, record ``eligibility``) read straight
from a 271's placed segments: the same field dicts as its generated code (``mappings.straight``) over
the node tree (``mappings.segtree``), without building that tree or evaluating a path per field.

Why: mapping a 271 cost half as much as validating it, and most of that was the general machinery
(a node per segment, a list comprehension and an index per path step, a fallback per field) for one
rule that every gateway without payer overrides uses on every 271. Here one pass over the placed
segments opens light loop instances (the loop changes ``segtree.build_nodes`` works out, shared with
it), and each record is read by walking its loops once.

It applies only to a rule equal to the shipped one (:func:`direct_record`); any other rule (a payer
override, an edited file) goes the general way. The paths' XPath meaning is kept under one assumption
the set is checked for as its loops are opened: no loop lies inside a loop of the same id (the 271
map nests no loop id in itself), so the children of same-id loops, taken loop by loop, are in
document order. A set that breaks it gives None and is mapped the general way.
``tests/test_map_direct.py`` holds the generated code as the reference.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from mappings.compiled_rules import PerRule
from mappings.eligibility import benefit_of, result_of
from mappings.engine import RecordRule, load_rules
from mappings.records import AuthorizationRecord, Benefit, BenefitEntity, ControlRef, EligibilityResult
from mappings.segtree import _MAX_TRANSITIONS, _pairs, _transition
from mappings.straight import _eq1
from mappings.xpath_lite import value_texts
from transactions.placed import Placed, PlacedSegments
from transactions.segment import Repetition, Segment

Fields = dict[str, Any]

_ENTITY_LOOPS = frozenset({"2120C", "2120D"})
_PAYER_PLAN = frozenset({"1", "6"})  # EB01 values whose EB05 names the plan (plan_name's fallback)


class _Loop:
    """One loop instance (or, with no parent, the transaction): its segments and loops in order."""

    __slots__ = ("id", "loops", "order", "parent", "segs")

    def __init__(
        self, loop_id: str, parent: _Loop | None, order: int, segs: list[Segment] | None = None
    ) -> None:
        self.id = loop_id
        self.parent = parent
        self.order = order  # opening order: document order among loops
        self.segs: list[Segment] = [] if segs is None else segs
        self.loops: list[_Loop] = []


class _Set:
    """A set's loops: the transaction, every loop in document order, and its AAA segments with the
    loop that holds each (in document order)."""

    __slots__ = ("aaa", "loops", "root")

    def __init__(self, root: _Loop, loops: list[_Loop], aaa: list[tuple[Segment, _Loop]]) -> None:
        self.root = root
        self.loops = loops
        self.aaa = aaa


_PLANS: dict[tuple[object, ...], tuple[int, tuple[str, ...]] | None] = {}
"""Loop changes worked out (``segtree._transition``), keyed as ``segtree._TRANSITIONS`` is; None when
the loops entered put a loop inside one of its own id."""


_UNKNOWN: Any = object()  # a key not in _PLANS (whose values may be None)


def _plan(
    previous: tuple[str, ...], target: tuple[str, ...], starts: bool
) -> tuple[int, tuple[str, ...]] | None:
    """``segtree._transition``, or None when ``target`` (the loops open after it) holds an id twice."""
    if len(set(target)) < len(target):
        return None
    return _transition(previous, target, starts)


class _Shape:
    """The loop instances a sequence of map nodes opens, by segment index: what :func:`_walk_tree`
    builds, without the segments, so that a set of a shape already seen is built without walking."""

    __slots__ = ("aaa", "loops", "root")

    def __init__(
        self,
        root: list[int],
        loops: list[tuple[str, int, list[int]]],
        aaa: list[tuple[int, int]],
    ) -> None:
        self.root = root  # the transaction's segments
        self.loops = loops  # per loop in opening order: (id, parent's index in loops or -1, segments)
        self.aaa = aaa  # (segment index, holding loop's index or -1) per AAA


_SHAPES: dict[tuple[object, ...], _Shape | None] = {}
"""Shapes worked out, keyed by the tuple of a set's map nodes (the compiled engine's long-lived
nodes, hashed by identity: no data in a key); None for a shape outside the assumption."""
_MAX_SHAPES = 4096  # a cache, not a store: emptied when full


def _tree(placed: Sequence[Placed], set_id: str) -> _Set | None:
    """The loop instances as ``segtree.build_nodes`` opens them; None when a loop opens inside a
    loop of the same id (outside this module's assumption). The compiled engine's placed segments are
    built from their shape (:class:`_Shape`, worked out once per sequence of map nodes); other
    placed segments are walked (:func:`_walk_tree`, the reference the shapes are tested against)."""
    if placed.__class__ is not PlacedSegments:
        return _walk_tree(placed, set_id)
    nodes = placed.nodes
    key = tuple(nodes)
    shape = _SHAPES.get(key, _UNKNOWN)
    if shape is _UNKNOWN:
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        shape = _SHAPES[key] = _shape(nodes)
    if shape is None:
        return None
    pick = placed.segments.__getitem__  # segments by index, in C (no comprehension frame per loop)
    root = _Loop(set_id, None, 0, list(map(pick, shape.root)))
    loops: list[_Loop] = []
    append = loops.append
    for order, (loop_id, up, held) in enumerate(shape.loops, 1):
        parent = root if up < 0 else loops[up]
        node = _Loop(loop_id, parent, order, list(map(pick, held)))
        parent.loops.append(node)
        append(node)
    aaa = [(pick(i), root if at < 0 else loops[at]) for i, at in shape.aaa] if shape.aaa else []
    return _Set(root, loops, aaa)


def _shape(nodes: Sequence[Any]) -> _Shape | None:
    """:func:`_walk_tree` over segment indices instead of segments (None where it gives None)."""
    root: list[int] = []
    loops: list[tuple[str, int, list[int]]] = []
    aaa: list[tuple[int, int]] = []
    stack = [-1]  # indices in loops of the open loop instances (-1: the transaction)
    held = root
    previous: tuple[str, ...] = ()
    for index, place in enumerate(nodes):
        if place is None:
            continue
        target = place.loops
        if place.is_first or target != previous:
            plan = _plan(previous, target, place.is_first)
            if plan is None:
                return None
            depth, opens = plan
            del stack[depth + 1 :]
            for loop_id in opens:
                loops.append((loop_id, stack[-1], []))
                stack.append(len(loops) - 1)
            previous = target
            held = root if stack[-1] < 0 else loops[stack[-1]][2]
        held.append(index)
        if place.id == "AAA":
            aaa.append((index, stack[-1]))
    return _Shape(root, loops, aaa)


def _walk_tree(placed: Sequence[Placed], set_id: str) -> _Set | None:
    """The loop instances walked segment by segment (:func:`_tree`'s reference, and its way for
    placed segments that are not the compiled engine's)."""
    root = _Loop(set_id, None, 0)
    loops: list[_Loop] = []
    aaa: list[tuple[Segment, _Loop]] = []
    stack = [root]
    previous: tuple[str, ...] = ()
    plans = _PLANS
    if len(plans) > _MAX_TRANSITIONS:
        plans.clear()
    by_node = placed.__class__ is PlacedSegments
    last: object = None
    parent = root
    segs = root.segs
    pairs = zip(placed.segments, placed.nodes, strict=True) if by_node else _pairs(placed)  # type: ignore[attr-defined]
    for segment, place in pairs:
        if place is None:
            continue
        target = place.loops
        if place.is_first or (target is not previous and target != previous):
            key = (last, place) if by_node else (previous, target, place.is_first)
            plan = plans.get(key, _UNKNOWN)
            if plan is _UNKNOWN:
                plan = plans[key] = _plan(previous, target, place.is_first)
            if plan is None:
                _release(_Set(root, loops, aaa))  # what was opened so far: no cycle left behind
                return None
            depth, opens = plan
            del stack[depth + 1 :]
            for loop_id in opens:
                node = _Loop(loop_id, stack[-1], len(loops) + 1)
                stack[-1].loops.append(node)
                stack.append(node)
                loops.append(node)
            previous = target
            parent = stack[-1]
            segs = parent.segs
        last = place
        segs.append(segment)
        if segment.tag == "AAA":
            aaa.append((segment, parent))
    return _Set(root, loops, aaa)


# --- element reads, as the generated code's (a first text, or every text, of one element) --------


def _first(segs: list[Segment], i: int) -> str | None:
    """The first non-empty ``ele`` text of element ``i`` of ``segs`` (what ``straight._first`` gives)."""
    for s in segs:
        e = s.elements
        if len(e) >= i:
            x = e[i - 1]
            if x.__class__ is str:
                if x:
                    return x
            elif texts := value_texts(x):
                return texts[0]
    return None


def _all(segs: list[Segment], i: int) -> list[str]:
    """Every ``ele`` text of element ``i`` of ``segs``, in order (what ``straight._values`` gives)."""
    out: list[str] = []
    for s in segs:
        e = s.elements
        if len(e) >= i:
            x = e[i - 1]
            if x.__class__ is str:
                if x:
                    out.append(x)
            else:
                out.extend(value_texts(x))
    return out


def _occurrences(segs: list[Segment], i: int) -> list[tuple[str, ...]]:
    """The composite occurrences (two components or more) of element ``i`` of ``segs``, in order:
    what ``straight._components`` walks, gathered in one loop without its generators."""
    out: list[tuple[str, ...]] = []
    for s in segs:
        e = s.elements
        if i > len(e):
            continue
        value = e[i - 1]
        if value.__class__ is str:
            continue
        for occ in value if isinstance(value, Repetition) else (value,):
            if not isinstance(occ, str) and len(occ) > 1:
                out.append(occ)
    return out


def _component(segs: list[Segment], i: int, j: int) -> str | None:
    """The first non-empty component ``j`` of composite element ``i`` of ``segs``: the first text
    ``straight._components(s.elements, i, (j,))`` gives."""
    for occ in _occurrences(segs, i):
        if j <= len(occ) and (c := occ[j - 1]):
            return c
    return None


def _tagged(loops: list[_Loop], tag: str) -> list[Segment]:
    return [s for lp in loops for s in lp.segs if s.tag == tag]


def _qualified(segs: list[Segment], tag: str, value: str) -> list[Segment]:
    """``seg[@id=tag][ele[@id=tag01]=value]``."""
    return [s for s in segs if s.tag == tag and _eq1(s.elements, 1, value)]


_NONE: list[Segment] = []  # no segments (never appended to)


def _by_qualifier(segs: list[Segment]) -> dict[str, list[Segment]]:
    """``segs`` by the texts of their first element: ``_qualified(segs, tag, v)`` is entry ``v``
    (for a non-empty ``v``), for every ``v`` in one pass."""
    out: dict[str, list[Segment]] = {}
    for s in segs:
        e = s.elements
        if not e:
            continue
        x = e[0]
        if x.__class__ is str:
            if x:
                if x in out:
                    out[x].append(s)
                else:
                    out[x] = [s]
        else:
            for t in dict.fromkeys(value_texts(x)):
                out.setdefault(t, []).append(s)
    return out


def _names_plan(eb: Segment) -> bool:
    """``ele[@id='EB01']='1' or ele[@id='EB01']='6'``."""
    e = eb.elements
    if not e:
        return False
    x = e[0]
    if x.__class__ is str:
        return x in _PAYER_PLAN
    return not _PAYER_PLAN.isdisjoint(value_texts(x))


def _children(loops: list[_Loop], ids: tuple[str, ...]) -> list[_Loop]:
    return [k for lp in loops for k in lp.loops if k.id in ids]


# --- the records ----------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """The first ``ele`` text of an element value that is not a plain string (None: none)."""
    texts = value_texts(value)
    return texts[0] if texts else None


_join = "".join
_NONE_IF_EMPTY: Callable[[Any, Any], Any] = {"": None}.get  # (x, x): None for "", else x itself


def _row(segs: list[Segment], size: int) -> list[str | None]:
    """``_first(segs, i)`` for ``i`` in 1..``size``: from one segment read in one pass (the usual
    case: one EB or NM1 per loop), all None with no segment, else element by element."""
    n = len(segs)
    if n != 1:
        return [_first(segs, i) for i in range(1, size + 1)] if n else [None] * size
    elements = segs[0].elements[:size]
    try:  # every value a string (the join fails on a composite or a repetition): "" to None in C
        _join(elements)  # type: ignore[arg-type]
        out: list[str | None] = list(map(_NONE_IF_EMPTY, elements, elements))
    except TypeError:
        out = [(x or None) if x.__class__ is str else _text(x) for x in elements]
    if len(out) < size:
        out.extend([None] * (size - len(out)))
    return out


def _entity_row(loop: _Loop) -> list[str | None]:
    """NM101, NM103, NM104, NM108 and NM109 of a 2120C/2120D loop (``BenefitEntity``'s order)."""
    row = _row([s for s in loop.segs if s.tag == "NM1"], 9)
    return [row[0], row[2], row[3], row[7], row[8]]


def _entity(loop: _Loop) -> Fields:
    return dict(zip(_ENTITY_FIELDS, _entity_row(loop), strict=True))


_ENTITY_FIELDS = ("entity_code", "name", "first_name", "id_qualifier", "id")


class _Reads:
    """What a 2110C/2110D loop's fields read: EB01-EB12 but EB03 (``row``), EB03's texts, EB13's
    two components, and its MSG and DTP segments."""

    __slots__ = ("dtp", "msg", "procedure", "row", "service_types")

    def __init__(self, loop: _Loop) -> None:
        eb: list[Segment] = []
        msg: list[Segment] = []
        dtp: list[Segment] = []
        for s in loop.segs:
            tag = s.tag
            if tag == "EB":
                eb.append(s)
            elif tag == "MSG":
                msg.append(s)
            elif tag == "DTP":
                dtp.append(s)
        if len(eb) == 1:  # the usual case: read in one pass
            e = eb[0].elements
            row = [(x or None) if x.__class__ is str else _text(x) for x in (*e[:2], *e[3:12])]
            if len(row) < 11:
                row.extend([None] * (11 - len(row)))
            x3 = e[2] if len(e) >= 3 else ""
            service_types = ([x3] if x3 else []) if x3.__class__ is str else value_texts(x3)
            if len(e) < 13 or e[12].__class__ is str:  # no EB13 composite: no components to read
                procedure: tuple[str | None, str | None] = (None, None)
            else:
                procedure = (_component(eb, 13, 1), _component(eb, 13, 2))
        else:
            row = [_first(eb, i) for i in (1, 2, *range(4, 13))]
            service_types = _all(eb, 3)
            procedure = (_component(eb, 13, 1), _component(eb, 13, 2)) if eb else (None, None)
        self.procedure = procedure
        self.row = row
        self.service_types = service_types
        self.msg = msg
        self.dtp = dtp


def _benefit(loop: _Loop) -> Fields:
    """One 2110C/2110D loop's field dict (``benefits`` and ``subscriber_benefits`` read alike)."""
    r = _Reads(loop)
    row = r.row
    return {
        "code": row[0],
        "coverage_level": row[1],
        "service_types": r.service_types,
        "insurance_type": row[2],
        "plan_description": row[3],
        "time_period": row[4],
        "amount": row[5],
        "percent": row[6],
        "quantity_qualifier": row[7],
        "quantity": row[8],
        "authorization_required": row[9],
        "in_network": row[10],
        "procedure_qualifier": r.procedure[0],
        "procedure_code": r.procedure[1],
        "messages": _all(r.msg, 1) if r.msg else [],
        "dates": _all(r.dtp, 3) if r.dtp else [],
        "entities": [_entity(k) for k in loop.loops if k.id in _ENTITY_LOOPS] if loop.loops else [],
    }


def _benefit_made(loop: _Loop) -> Benefit:
    """The :class:`Benefit` ``eligibility._benefit`` makes of :func:`_benefit`'s dict, without the
    dict (its ``dates``, which no record keeps, not read)."""
    r = _Reads(loop)
    row = r.row
    entities = [BenefitEntity(*_entity_row(k)) for k in loop.loops if k.id in _ENTITY_LOOPS]
    return benefit_of(
        row[0],
        row[1],
        r.service_types,
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        r.procedure[0],
        r.procedure[1],
        _all(r.msg, 1) if r.msg else [],
        entities or (),
    )


_BENEFITS: dict[tuple[Any, ...], Benefit] = {}
"""Benefits made, keyed by what :func:`_benefit_made` reads of a 2110C/2110D loop (:func:`_benefit_key`):
a response file repeats a plan's EB rows member after member, and a :class:`Benefit` is immutable.
Bounded (emptied when full), emptied with the validation engine's memos when a run ends (the values
may be PHI), and not used when those memos are off (``transactions.engine.elements.MEMO_LIMIT``)."""
_BENEFITS_LIMIT = 2048


def _benefit_key(loop: _Loop) -> tuple[Any, ...]:
    """Everything :func:`_benefit_made` reads of ``loop``: its EB and MSG segments in order, and the
    NM1 segments of each 2120C/2120D loop in it, each segment's elements with their types (a
    repetition and a composite of the same texts are equal tuples, but read differently)."""
    own = tuple([(s.tag, s.elements, tuple(map(type, s.elements))) for s in loop.segs if s.tag in _READ_TAGS])
    if not loop.loops:
        return own, ()
    entities = tuple(
        tuple([(s.elements, tuple(map(type, s.elements))) for s in k.segs if s.tag == "NM1"])
        for k in loop.loops
        if k.id in _ENTITY_LOOPS
    )
    return own, entities


_READ_TAGS = frozenset({"EB", "MSG"})


def _benefit_remembered(loop: _Loop) -> Benefit:
    """:func:`_benefit_made`, remembered per :func:`_benefit_key` (see :data:`_BENEFITS`)."""
    # the engine's memo settings, when it is loaded (not imported here: loading it is a validation's
    # cost); without it (the pyx12 walker) nothing is remembered
    engine: Any = sys.modules.get("transactions.engine.elements")
    if engine is None or not engine.MEMO_LIMIT:  # memos off: every benefit made afresh
        return _benefit_made(loop)
    key = _benefit_key(loop)
    found = _BENEFITS.get(key)
    if found is None:
        found = _benefit_made(loop)
        if len(_BENEFITS) >= _BENEFITS_LIMIT:
            _BENEFITS.clear()
        _BENEFITS[key] = found
        engine.WRITTEN.append(_BENEFITS)  # emptied when the run ends, with the engine's memos
    return found


def _chain(ctx: _Loop) -> list[_Loop]:
    """The loops from the outermost down to ``ctx`` (the transaction left out)."""
    out = []
    node: _Loop | None = ctx
    while node is not None and node.parent is not None:
        out.append(node)
        node = node.parent
    return out[::-1]


def _inside(loop: _Loop, ctx: _Loop) -> bool:
    node: _Loop | None = loop
    while node is not None:
        if node is ctx:
            return True
        node = node.parent
    return False


def _rejections(tree: _Set, ctx: _Loop, ancestors_2000c: list[_Loop]) -> list[Fields]:
    """The ``rejections`` list's union of five paths: an AAA of a top 2000A, of its 2100A, of any
    2100B, of a 2100C of an ancestor 2000C, or anywhere below a loop context; in document order."""
    out: list[Fields] = []
    root = tree.root
    is_loop = ctx.parent is not None
    for segment, loop in tree.aaa:
        up = loop.parent
        if up is None:
            continue  # directly in the transaction: none of the paths reaches it
        lid = loop.id
        if not (
            (lid == "2000A" and up is root)
            or (lid == "2100A" and up.id == "2000A" and up.parent is root)
            or lid == "2100B"
            or (lid == "2100C" and any(up is a for a in ancestors_2000c))
            or (is_loop and _inside(loop, ctx))
        ):
            continue
        e = [segment]
        out.append({
            "level": lid or None,
            "valid_request": _first(e, 1),
            "reason_code": _first(e, 3),
            "follow_up": _first(e, 4),
        })  # fmt: skip
    return out


def _record(tree: _Set, ctx: _Loop, top: Fields, benefit: Callable[[_Loop], Any]) -> Fields:
    """One eligibility record from its context (a 2000C, a 2000D or the transaction)."""
    chain = _chain(ctx)
    self_or_above = [lp for lp in chain if lp.id == "2000C"]
    above = [lp for lp in chain[:-1] if lp.id == "2000C"]
    subscriber = _children(self_or_above, ("2100C",))
    sub_nm1 = _tagged(subscriber, "NM1")
    sub_dmg = _tagged(subscriber, "DMG")
    dependent = _children([ctx], ("2100D",)) if ctx.parent is not None and ctx.id == "2000D" else []
    dep_nm1 = _tagged(dependent, "NM1")
    dep_dmg = _tagged(dependent, "DMG")
    person = [k for k in ctx.loops if k.id in ("2100C", "2100D")]
    ref: list[Segment] = []
    dtp: list[Segment] = []
    for lp in person:
        for s in lp.segs:
            if s.tag == "REF":
                ref.append(s)
            elif s.tag == "DTP":
                dtp.append(s)
    refs = _by_qualifier(ref)
    ref18 = refs.get("18", _NONE)
    ref6p = refs.get("6P", _NONE)
    plan_number = _first(ref18, 2)
    plan_name = _first(ref18, 3)
    group_number = _first(ref6p, 2)
    group_name = _first(ref6p, 3)
    if plan_number is None or group_number is None or group_name is None:
        above_ref = _tagged(_children(above, ("2100C",)), "REF")
        if plan_number is None:
            plan_number = _first(_qualified(above_ref, "REF", "18"), 2)
        if group_number is None:
            group_number = _first(_qualified(above_ref, "REF", "6P"), 2)
        if group_name is None:
            group_name = _first(_qualified(above_ref, "REF", "6P"), 3)
    benefit_loops = _children(person, ("2110C", "2110D"))
    if plan_name is None:
        plan_name = _first([s for s in _tagged(benefit_loops, "EB") if _names_plan(s)], 5)
    up = ctx.parent
    if up is not None and ctx.id == "2000D" and up.parent is not None and up.id == "2000C":
        subscriber_loops = _children(_children([up], ("2100C",)), ("2110C",))
    else:
        subscriber_loops = []
    trn = [s for s in ctx.segs if s.tag == "TRN"]
    dates = _by_qualifier(dtp)
    return {
        "bht_reference": top["bht_reference"],
        "trace_numbers": _all(_qualified(trn, "TRN", "2"), 2),
        "payer_trace_numbers": _all(_qualified(trn, "TRN", "1"), 2),
        "payer_name": top["payer_name"],
        "payer_id": top["payer_id"],
        "provider_name": top["provider_name"],
        "provider_id": top["provider_id"],
        "subscriber_last_name": _first(sub_nm1, 3),
        "subscriber_first_name": _first(sub_nm1, 4),
        "member_id": _first(sub_nm1, 9),
        "subscriber_birth_date": _first(sub_dmg, 2),
        "dependent_last_name": _first(dep_nm1, 3),
        "dependent_first_name": _first(dep_nm1, 4),
        "dependent_birth_date": _first(dep_dmg, 2),
        "plan_number": plan_number,
        "plan_name": plan_name,
        "group_number": group_number,
        "group_name": group_name,
        "plan_begin": _first(dates.get("346", _NONE), 3),
        "plan_end": _first(dates.get("347", _NONE), 3),
        "eligibility_begin": _first(dates.get("356", _NONE), 3),
        "eligibility_end": _first(dates.get("357", _NONE), 3),
        "plan_dates": _first(dates.get("291", _NONE), 3),
        "benefits": [benefit(lp) for lp in benefit_loops],
        "subscriber_benefits": [benefit(lp) for lp in subscriber_loops],
        "rejections": _rejections(tree, ctx, above),
    }


def _top(tree: _Set) -> Fields:
    """The fields every record of the set shares (absolute paths and the first 2100B)."""
    root = tree.root
    payer = _tagged(_children(_children([root], ("2000A",)), ("2100A",)), "NM1")
    provider = next(([lp] for lp in tree.loops if lp.id == "2100B"), [])
    provider_nm1 = _tagged(provider, "NM1")
    return {
        "bht_reference": _first([s for s in root.segs if s.tag == "BHT"], 3),
        "payer_name": _first(payer, 3),
        "payer_id": _first(payer, 9),
        "provider_name": _first(provider_nm1, 3),
        "provider_id": _first(provider_nm1, 9),
    }


def _release(tree: _Set) -> None:
    """Every loop's link to its parent broken once the set is read: the loops are then freed as soon
    as the last reference goes, not left to the cyclic collector (as ``segtree.release``)."""
    for lp in tree.loops:
        lp.parent = None


def _contexts(tree: _Set) -> list[_Loop]:
    """What the rule's select finds: each 2000C without a 2000D and with a 2100C, each 2000D with a
    2100D, and the transaction when there is no 2000C; in document order."""
    contexts: list[_Loop] = []
    any_2000c = False
    for lp in tree.loops:
        lid = lp.id
        if lid == "2000C":
            any_2000c = True
            kids = [k.id for k in lp.loops]
            if "2000D" not in kids and "2100C" in kids:
                contexts.append(lp)
        elif lid == "2000D" and any(k.id == "2100D" for k in lp.loops):
            contexts.append(lp)
    if not any_2000c:
        contexts.insert(0, tree.root)  # the transaction comes first in document order
    return contexts


def eligibility_fields(placed: Sequence[Placed], set_id: str) -> list[Fields] | None:
    """The shipped eligibility rule's field dicts for a 271's placed segments (None: the set is
    outside this module's assumption, map it the general way)."""
    tree = _tree(placed, set_id)
    if tree is None:
        return None
    try:
        contexts = _contexts(tree)
        top = _top(tree) if contexts else {}
        return [_record(tree, ctx, top, _benefit) for ctx in contexts]
    finally:
        _release(tree)


def eligibility_records(
    placed: Sequence[Placed], set_id: str, control: ControlRef
) -> list[EligibilityResult] | None:
    """``eligibility.eligibility_result`` of each of :func:`eligibility_fields`'s dicts, the benefits
    made without their dicts (None as there)."""
    tree = _tree(placed, set_id)
    if tree is None:
        return None
    try:
        contexts = _contexts(tree)
        top = _top(tree) if contexts else {}
        out = []
        for ctx in contexts:
            f = _record(tree, ctx, top, _benefit_remembered)
            out.append(result_of(f, control, tuple(f["benefits"]), tuple(f["subscriber_benefits"])))
        return out
    finally:
        _release(tree)


Made = Sequence[EligibilityResult | AuthorizationRecord]
"""What a direct reader's ``records`` gives: one record type per rule, the mapper's union."""


@dataclass(frozen=True)
class DirectReader:
    """A rule read straight from placed segments: its field dicts, and its records."""

    fields: Callable[[Sequence[Placed], str], list[Fields] | None]
    records: Callable[[Sequence[Placed], str, ControlRef], Made | None]


ELIGIBILITY = DirectReader(eligibility_fields, eligibility_records)


@cache
def shipped_rule(kind: str) -> RecordRule:
    """The rule for ``kind`` as shipped, loaded on its own (the rule a direct reader stands for)."""
    data = files("mappings").joinpath("rules", "default.xml").read_bytes()
    return load_rules(data, "mappings/rules/default.xml")[kind]


def shipped_eligibility() -> RecordRule:
    """The eligibility rule as shipped."""
    return shipped_rule("eligibility")


def _direct(rule: RecordRule) -> DirectReader | None:
    return ELIGIBILITY if rule == shipped_eligibility() else None


direct_record = PerRule(_direct)
"""The direct reader standing for ``rule`` (None: no such reader, map it the general way); worked
out once per rule object."""
