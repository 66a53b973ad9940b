"""Build :class:`~transactions.engine.tables.CompiledMap` from a pyx12 ``map_if`` (once per map)."""

from __future__ import annotations

import functools
from typing import Any

from transactions.engine.elements import WRITTEN, check_composite, check_element, syntax_rule
from transactions.engine.tables import (
    MAXINT,
    Child,
    CompiledMap,
    CompositeSpec,
    ElementSpec,
    LoopNode,
    Node,
    SegNode,
    WalkMemo,
)

ENVELOPE_LOOPS = frozenset({"ISA_LOOP", "GS_LOOP", "ST_LOOP", "HEADER", "DETAIL", "FOOTER"})


def _key(node: Any) -> str:
    from pyx12.path import X12Path  # noqa: PLC0415 - compile time only

    return str(X12Path(node.get_path()).format())


def _is_child_key(root: str, child: str) -> bool:
    """pyx12's ``X12Path.is_child_path``: ``child`` lies strictly under ``root``, component-wise."""
    r, c = root.split("/"), child.split("/")
    return len(r) < len(c) and c[: len(r)] == r


def _element(node: Any, ext_codes: Any) -> ElementSpec:
    try:
        de = node._resolve_data_ele()
        data_type, min_len, max_len = de["data_type"], int(de["min_len"]), int(de["max_len"])
    except Exception:  # noqa: BLE001 - an undefined data element: pyx12 fails later, we check nothing
        data_type, min_len, max_len = None, 0, MAXINT
    codes_set = frozenset(node._valid_codes_set)
    ext = node.external_codes
    external, external_any = None, False
    if ext is not None:
        if ext in ext_codes.exclude_list:
            external_any = True
        else:
            external = frozenset(ext_codes.codes.get(ext, {}).get("codes", frozenset()))
    parent = node.parent
    in_composite = parent is not None and parent.is_composite()
    required = node.usage == "R" and (node.seq != 1 or not in_composite or parent.usage == "R")
    return ElementSpec(
        id=node.id,
        name=node.name,
        usage=node.usage,
        seq=node.seq,
        data_ele=node.data_ele,
        data_type=data_type,
        min_len=min_len,
        max_len=max_len,
        codes=codes_set if (codes_set or ext is not None) else None,
        external=external,
        external_any=external_any,
        regex=node.rec,
        valid_codes=tuple(node.valid_codes),
        required_when_empty=required,
        numeric=data_type is not None and (data_type == "R" or data_type[0] == "N"),
        trailing_checked=data_type in ("AN", "ID"),
        composite_seq=int(parent.seq) if in_composite else 0,
    )


def _child(node: Any, ext_codes: Any) -> Child:
    if node.is_composite():
        kids = tuple(_element(c, ext_codes) for c in node.children)
        return CompositeSpec(node.id, node.name, node.usage, node.seq, node.refdes, node.data_ele, kids)
    return _element(node, ext_codes)


def _loop_path(node: Any) -> tuple[str, ...]:
    out: list[str] = []
    cur = node.parent
    while cur is not None and not cur.is_map_root():
        if cur.is_loop() and cur.id not in ENVELOPE_LOOPS:
            out.append(cur.id)
        cur = cur.parent
    return tuple(reversed(out))


def _qualifier(node: Any) -> tuple[int, int, frozenset[str | None]] | None:
    key = node._resolve_unique_key_field(node.id, with_qual=False)
    if key is None:
        return None
    child, ele_idx, subele_idx = key
    return (ele_idx, subele_idx or 0, frozenset(child._valid_codes_set))


def _parent_levels(seg: Any) -> frozenset[str] | None:
    cur = seg.parent.parent if seg.parent is not None else None
    while cur is not None and not cur.is_map_root():
        if cur.is_loop():
            first = cur.get_first_seg()
            if first is not None and first.id == "HL":
                hl03 = first.get_child_node_by_idx(2)
                return frozenset(hl03.valid_codes) if hl03 is not None else None
        cur = cur.parent
    return None


def _checked_when_missing(kid: Node) -> bool:
    """Segments always; loops only with a first segment that is not an HL (HL loops: the HL checks)."""
    return isinstance(kid, SegNode) or (kid.first_seg is not None and kid.first_seg.id != "HL")


def _clean_codes(spec: ElementSpec, icvn: str) -> frozenset[str]:
    """The values the map itself names for ``spec`` (its codes, external codes, and the empty value)
    that :func:`check_element` passes without an error. Map data only, never a value read from a file."""
    candidates = {"", *(spec.codes or ()), *(spec.external or ())}
    return frozenset(v for v in candidates if v is not None and not check_element(spec, v, icvn))


class _Compiler:
    def __init__(self, imap: Any, repeats: dict[str, int]) -> None:
        self.imap = imap
        self.repeats = repeats
        self.ext_codes = imap.ext_codes
        self.loops: list[LoopNode] = []
        self.keys: list[str] = []
        self.segments: dict[int, SegNode] = {}  # id(pyx12 node) -> compiled

    def run(self) -> CompiledMap:
        imap = self.imap
        root = LoopNode(imap.id or "", imap.name or "", "R", 0, MAXINT, "/", None, is_root=True)
        self._fill(root, imap)
        for loop in self.loops:
            loop.descendant_keys = frozenset(k for k in self.keys if _is_child_key(loop.key, k))
        gs = imap.getnodebypath("/ISA_LOOP/GS_LOOP/GS")
        gs_loop = imap.getnodebypath("/ISA_LOOP/GS_LOOP")
        known = frozenset(n.id for n in imap.loop_segment_iterator() if n.is_segment())
        memos: list[dict[Any, Any]] = [s.memo for s in self.segments.values()]
        for seg in self.segments.values():
            for c in seg.children:
                memos += [c.memo] if isinstance(c, ElementSpec) else [k.memo for k in c.children]
        walks = WalkMemo()  # not among ``memos``: it holds no data value (see WalkMemo)
        icvn = imap.icvn or "00401"
        for seg in self.segments.values():
            for c in seg.children:
                for spec in [c] if isinstance(c, ElementSpec) else c.children:
                    spec.ok = _clean_codes(spec, icvn)
        return CompiledMap(
            root,
            self.segments[id(gs)],
            _key(gs_loop),
            known,
            icvn,
            dict(self.repeats),
            tuple(memos),
            self._qualifier_elements(),
            walks,
            self._shape_values(),
        )

    def _qualifier_elements(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, set[int]] = {}
        for seg in self.segments.values():
            if seg.qualifier is not None:
                out.setdefault(seg.id, set()).add(seg.qualifier[0])
        return {seg_id: tuple(sorted(at)) for seg_id, at in out.items()}

    def _shape_values(self) -> dict[str, tuple[frozenset[str | None], ...]]:
        """Per segment id, per qualifier element: the values the map names there (see
        ``CompiledMap.shape_values``): map data only, never a value read from a file."""
        at_of = self._qualifier_elements()
        out: dict[str, list[set[str | None]]] = {tag: [{None, ""} for _ in at] for tag, at in at_of.items()}
        for seg in self.segments.values():
            at = at_of.get(seg.id)
            if at is None:
                continue
            for i, ele in enumerate(at):
                if seg.qualifier is not None and seg.qualifier[0] == ele and not seg.qualifier[1]:
                    out[seg.id][i] |= seg.qualifier[2]
                spec = seg.children[ele - 1] if ele <= len(seg.children) else None
                if isinstance(spec, ElementSpec) and spec.codes:
                    out[seg.id][i] |= spec.codes
        return {tag: tuple(frozenset(v) for v in sets) for tag, sets in out.items()}

    def _fill(self, loop: LoopNode, pnode: Any) -> None:
        groups: list[tuple[int, tuple[Node, ...]]] = []
        for pos in sorted(pnode.pos_map):
            groups.append((pos, tuple(self._node(c, loop) for c in pnode.pos_map[pos])))
        loop.groups = tuple(groups)
        loop.kids = tuple(n for _, g in groups for n in g)
        loop.first_node = groups[0][1][0] if groups else None
        loop.first_seg = loop.first_node if isinstance(loop.first_node, SegNode) else None
        loop.has_lx_loop = any(
            isinstance(k, LoopNode) and k.first_seg is not None and k.first_seg.id == "LX" for k in loop.kids
        )
        loop.required_kids = tuple(k for k in loop.kids if k.usage == "R" and _checked_when_missing(k))
        loop.required_rest = tuple(k for k in loop.required_kids if k is not loop.first_seg)
        loop.kid_segment_ids = frozenset(k.id for k in loop.kids if isinstance(k, SegNode))

    def _node(self, pnode: Any, parent: LoopNode) -> Node:
        key = _key(pnode)
        self.keys.append(key)
        eq_key = (pnode.id or "", pnode.parent.id or "")
        if pnode.is_loop():
            loop = LoopNode(
                pnode.id, pnode.name or "", pnode.usage, pnode.pos, pnode.get_max_repeat(), key, parent
            )
            loop.eq_key = eq_key
            loop.ancestors = parent.ancestors | {parent}
            self.loops.append(loop)
            self._fill(loop, pnode)
            return loop
        seg = SegNode(
            pnode.id,
            pnode.name or "",
            pnode.usage,
            pnode.pos,
            pnode.get_max_repeat(),
            key,
            parent,
            tuple(_child(c, self.ext_codes) for c in pnode.children),
            tuple(tuple(s) for s in pnode.syntax),
            _qualifier(pnode),
            pnode.is_first_seg_in_loop(),
            _loop_path(pnode),
            eq_key=eq_key,
        )
        seg.rules = tuple(syntax_rule(syn) for syn in seg.syntax)
        seg.innermost = seg.loops[-1] if seg.loops else None
        seg.element_names = tuple(c.name for c in seg.children)
        seg.has_composite = any(isinstance(c, CompositeSpec) for c in seg.children)
        seg.special = seg.id == "DTP" or any(
            isinstance(c, ElementSpec) and c.data_ele in ("1250", "1251") for c in seg.children
        )
        for c in seg.children:
            c.absent = tuple(
                check_composite(c, None, "") if isinstance(c, CompositeSpec) else check_element(c, None, "")
            )
        seg.absent_after = tuple(
            tuple(e for c in seg.children[n:] for e in c.absent) for n in range(len(seg.children) + 1)
        )
        if seg.id == "HL" and not parent.is_root:
            parent.hl_parent_codes = _parent_levels(pnode)
        self.segments[id(pnode)] = seg
        return seg


_COMPILED: list[CompiledMap] = []


def forget_values() -> None:
    """Empty every remembered result of every compiled map: what a validation run read (data values,
    possibly PHI) is not kept after the run. Only the speed of the next run depends on the memos.

    Only the memos written since the last call are emptied (``elements.WRITTEN``): walking every memo
    of every map was a twentieth of a real-time API call's CPU."""
    while WRITTEN:
        try:
            WRITTEN.pop().clear()
        except IndexError:  # another thread's run emptied the list meanwhile
            break


@functools.cache
def compiled_map(map_file: str, map_source: str) -> CompiledMap:
    """The compiled tables of one map (cached per process; maps are immutable)."""
    from transactions.maps import element_repeats, load_map  # noqa: PLC0415 - pyx12 only to compile

    cmap = _Compiler(load_map(map_file, map_source), element_repeats(map_file, map_source)).run()
    _COMPILED.append(cmap)
    return cmap
