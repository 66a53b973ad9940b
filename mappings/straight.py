"""Mapping rules compiled into straight-line Python, one function per record or list rule.

``mappings.compiled_rules`` evaluates each field's path as a chain of XPath-like closures over
``mappings.segtree`` nodes: a call per step, per predicate and per field, and caches keyed by the
steps' text. Here each rule is compiled once into the source of one function that reads a record
from its context node: the steps the fields share (``loop[@id='2100C' or @id='2100D']``,
``seg[@id='REF'][ele[@id='REF01']='18']`` ...) are computed once each, as list comprehensions over the
nodes' children, and each field's value is read from the segment's elements in place.

Only the shapes the rule files use are compiled (:func:`parse` says which): location paths over
``loop``, ``seg`` and ``transaction`` on the child, self, parent, ancestor and ancestor-or-self axes,
absolute paths, ``//loop``/``//seg`` from the document and ``(//loop[...])[1]``; id predicates,
``ele[@id=...]`` compared (``=``/``!=``) with a literal, ``or``/``and``/``not`` of those and of
``loop[...]``, ``.//loop[...]`` and ``ancestor::loop[...]`` existence; paths ending in
``ele[@id=...]``, ``comp[@id=...]/subele[@id=...]``, ``comp/subele[substring(@id,
string-length(@id) - 1) = 'NN']`` or ``../@id``; unions of node paths as list selects. Any other path
keeps its ``mappings.xpath_lite`` closure (:func:`fallbacks` lists them), over the same nodes, so a
payer override may use any XPath the subset supports, and a rule set beyond that subset still goes
to lxml (``mappings.mapper``). ``tests/test_map_straight.py`` holds ``compiled_rules`` and lxml as
the references.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mappings.compiled_rules import PerRule, compiled_record, values_of
from mappings.engine import FieldRule, ListRule, RecordRule
from mappings.segtree import LOOPS, Node
from mappings.xpath_lite import (
    Expr,
    TextsFn,
    Unsupported,
    _structure_of,
    _tokens,
    compile_xpath,
    doc_order,
    element_positions,
    value_texts,
)
from transactions.segment import Repetition

Extract = Callable[[Node, Node], dict[str, Any]]


class Skip(Exception):  # noqa: N818 - a signal: this path keeps its xpath_lite closure
    """The path is outside the straight-line subset."""


# --- the parsed form ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One location step; ``ids`` None means any id; ``preds`` are Python tests of ``n``."""

    axis: str  # child, self, parent, ancestor, ancestor-or-self
    test: str  # loop, seg, transaction, node()
    ids: frozenset[str] | None
    preds: tuple[str, ...]
    text: str  # the step's own tokens (the key under which what it finds is shared)


@dataclass(frozen=True)
class NodePath:
    """``start`` (ctx, doc, desc: every ``test`` node of the document, first: the first of them),
    then ``steps``."""

    start: str
    desc: Step | None
    steps: tuple[Step, ...]
    key: str


@dataclass(frozen=True)
class Tail:
    """What a field reads from the nodes its path finds: ``ele`` positions, ``sub`` (element
    position, component positions), ``suffix`` (components whose id ends in two digits), ``parent_id``."""

    kind: str
    positions: tuple[int, ...] = ()
    components: tuple[int, ...] = ()
    suffix: int = 0
    ids: frozenset[str] = frozenset()  # ctx_ele: the element ids, the context segment's tag unknown


class _Tokens:
    def __init__(self, expr: str) -> None:
        try:
            tokens = _tokens(expr)
        except Unsupported as exc:
            raise Skip(expr) from exc
        self.toks = [t for _, t in tokens]
        self.kinds = [k for k, _ in tokens]
        self.pos = 0

    def peek(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.toks[i] if i < len(self.toks) else None

    def kind(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.kinds[i] if i < len(self.kinds) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise Skip(want or "end")
        self.pos += 1
        return tok

    def literal(self) -> str:
        if self.kind() != "lit":
            raise Skip("literal")
        return self.take()[1:-1]

    def since(self, begin: int) -> str:
        return " ".join(self.toks[begin : self.pos])


_AXES = ("child", "self", "parent", "ancestor", "ancestor-or-self", "descendant")
_STRUCTURAL = ("loop", "seg", "transaction")


def _id_set(t: _Tokens) -> frozenset[str]:
    """``@id='A' or @id='B' ...`` up to the closing bracket."""
    ids = set()
    while True:
        t.take("@")
        t.take("id")
        t.take("=")
        ids.add(t.literal())
        if t.peek() != "or":
            return frozenset(ids)
        t.take("or")


def _is_id_set(t: _Tokens) -> bool:
    return t.peek() == "@" and t.peek(1) == "id" and t.peek(2) == "="


class _Pred:
    """A predicate's Python test of node ``n`` (a segment's tag known as ``tag`` when it is one)."""

    def __init__(self, t: _Tokens, tag: str | None, names: dict[str, Any]) -> None:
        self.t = t
        self.tag = tag
        self.names = names
        self.equals: dict[str, tuple[int, str]] = {}  # test written -> (position, value) of ele[i] = 'v'

    def name(self, value: Any) -> str:
        key = f"K{len(self.names)}"
        self.names[key] = value
        return key

    def or_expr(self) -> str:
        parts = [self.and_expr()]
        while self.t.peek() == "or":
            self.t.take()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return self.one_of(parts) or "(" + " or ".join(parts) + ")"

    def one_of(self, parts: list[str]) -> str | None:
        """``ele[i] = 'A' or ele[i] = 'B' ...`` (one position) as one test of ``ele[i]`` against the set
        of values: some ``ele`` node of element ``i`` holds one of them. None for other alternatives."""
        found = [self.equals.get(p) for p in parts]
        if any(f is None for f in found) or len({f[0] for f in found if f is not None}) != 1:
            return None
        i = found[0][0]  # type: ignore[index]  # all found, checked above
        k = self.name(frozenset(f[1] for f in found if f is not None))
        return (
            f"(len(e__ := n.segment.elements) >= {i} and (x__ in {k}"
            f" if (x__ := e__[{i - 1}]).__class__ is str else not {k}.isdisjoint(value_texts(x__))))"
        )

    def and_expr(self) -> str:
        parts = [self.atom()]
        while self.t.peek() == "and":
            self.t.take()
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"

    def atom(self) -> str:
        t = self.t
        if t.peek() == "not" and t.peek(1) == "(":
            t.take()
            t.take("(")
            inner = self.or_expr()
            t.take(")")
            return f"(not {inner})"
        if t.peek() == "(":
            t.take()
            inner = self.or_expr()
            t.take(")")
            return inner
        if t.peek() == "ele" and t.peek(1) == "[":
            return self.element_test()
        return self.exists()

    def element_test(self) -> str:
        """``ele[@id='REF01'] = 'BB'`` (or ``!=``) on a segment whose tag is known."""
        t = self.t
        t.take("ele")
        t.take("[")
        ids = _id_set(t)
        t.take("]")
        op = t.take()
        if op not in ("=", "!=") or self.tag is None:
            raise Skip("element comparison")
        value = t.literal()
        positions = tuple(element_positions(self.tag, ids))
        helper = "_eq" if op == "=" else "_ne"
        if len(positions) == 1 and op == "=" and value:
            i = positions[0]
            k = self.name(value)
            test = (
                f"(len(e__ := n.segment.elements) >= {i} and (x__ == {k}"
                f" if (x__ := e__[{i - 1}]).__class__ is str else {k} in value_texts(x__)))"
            )  # _eq1 written out
            self.equals[test] = (i, value)
            return test
        return f"{helper}(n.segment.elements, {self.name(positions)}, {self.name(value)})"

    def exists(self) -> str:
        """``loop[...]``, ``.//loop[...]``, ``ancestor::loop[...]``: is there such a node."""
        t = self.t
        how = "child"
        if t.peek() == "." and t.peek(1) == "//":
            t.take()
            t.take()
            how = "descendant"
        elif t.peek() == "ancestor" and t.peek(1) == "::":
            t.take()
            t.take()
            how = "ancestor"
        test = t.take()
        if test not in ("loop", "seg"):
            raise Skip("existence test")
        ids: frozenset[str] | None = None
        if t.peek() == "[":
            t.take()
            if not _is_id_set(t):
                raise Skip("existence predicate")
            ids = _id_set(t)
            t.take("]")
        if t.peek() in ("[", "/", "//"):
            raise Skip("existence path")
        if ids is None:
            raise Skip("existence without ids")
        k = self.name(ids)
        if how == "child":
            return f"any(k.kind == {test!r} and k.id in {k} for k in (n.kids or ()))"
        if how == "descendant":
            return f"_has_desc(n, {test!r}, {k})"
        return f"_has_anc(n, {test!r}, {k})"


def _step(t: _Tokens, names: dict[str, Any]) -> Step:
    begin = t.pos
    if t.peek() == "..":
        t.take()
        return Step("parent", "node()", None, (), "..")
    if t.peek() == ".":
        t.take()
        return Step("self", "node()", None, (), ".")
    axis = "child"
    if t.peek(1) == "::":
        axis = t.take()
        t.take("::")
        if axis not in _AXES:
            raise Skip(axis)
    test = t.take()
    if test not in _STRUCTURAL or t.peek() == "(":
        raise Skip(test)
    ids: frozenset[str] | None = None
    preds: list[str] = []
    while t.peek() == "[":
        t.take()
        if _is_id_set(t) and not preds and ids is None:
            ids = _id_set(t)
            if t.peek() != "]":
                raise Skip("id set with more")
        else:
            tag = next(iter(ids)) if test == "seg" and ids is not None and len(ids) == 1 else None
            if t.kind() == "num":
                raise Skip("position")
            preds.append(_Pred(t, tag, names).or_expr())
        t.take("]")
    return Step(axis, test, ids, tuple(preds), t.since(begin))


def _tail(t: _Tokens, last: Step | None) -> Tail | None:
    """The field's last step(s) when they read values: None when the path ends in nodes."""
    tag = next(iter(last.ids)) if last and last.test == "seg" and last.ids and len(last.ids) == 1 else None
    if t.peek() == "ele" and t.peek(1) == "[":
        t.take()
        t.take("[")
        ids = _id_set(t)
        t.take("]")
        if tag is None:
            raise Skip("element of an unknown segment")
        return Tail("ele", tuple(element_positions(tag, ids)))
    if t.peek() == "comp":
        t.take()
        if tag is None:
            raise Skip("component of an unknown segment")
        if t.peek() == "/":
            t.take()
            return _suffix_tail(t)
        t.take("[")
        comp_ids = _id_set(t)
        t.take("]")
        t.take("/")
        t.take("subele")
        t.take("[")
        sub_ids = _id_set(t)
        t.take("]")
        comp = element_positions(tag, comp_ids)
        if len(comp) != 1:
            raise Skip("one composite")
        prefix = f"{tag}{comp[0]:02d}-"
        components = element_positions(prefix, frozenset(s for s in sub_ids if s.startswith(prefix)))
        return Tail("sub", (comp[0],), tuple(components))
    return None


def _suffix_tail(t: _Tokens) -> Tail:
    """``subele[substring(@id, string-length(@id) - 1) = 'NN']``: components numbered ``NN`` mod 100."""
    for want in ("subele", "[", "substring", "(", "@", "id", ",", "string-length", "(", "@", "id", ")", "-"):
        t.take(want)
    if t.take() != "1":
        raise Skip("substring start")
    t.take(")")
    t.take("=")
    digits = t.literal()
    t.take("]")
    if len(digits) != 2 or not digits.isdigit():
        raise Skip("two digits")
    return Tail("suffix", suffix=int(digits))


def _node_path(t: _Tokens, names: dict[str, Any]) -> NodePath:
    begin = t.pos
    start, desc = "ctx", None
    if t.peek() == "(" and t.peek(1) == "//":
        t.take()
        t.take()
        desc = _step(t, names)
        t.take(")")
        t.take("[")
        if t.take() != "1":
            raise Skip("position")
        t.take("]")
        start = "first"
    elif t.peek() == "//":
        t.take()
        desc = _step(t, names)
        start = "desc"
    elif t.peek() == "/":
        t.take()
        start = "doc"
    if desc is not None and (desc.axis != "child" or desc.test not in ("loop", "seg")):
        raise Skip("// before another axis")
    steps: list[Step] = []
    if start in ("ctx", "doc"):
        steps.append(_step(t, names))
    while t.peek() == "/" and t.peek(1) not in ("ele", "comp", "@"):
        t.take()
        steps.append(_step(t, names))
    return NodePath(start, desc, tuple(steps), t.since(begin))


def parse_field(path: str, names: dict[str, Any]) -> tuple[NodePath, Tail]:
    """A field path taken apart (Skip when outside the subset)."""
    t = _Tokens(path)
    if path.strip() == "../@id":
        return NodePath("ctx", None, (), ""), Tail("parent_id")
    if t.peek() == "ele":  # elements of the context (a segment a list selected)
        t.take()
        t.take("[")
        ids = _id_set(t)
        t.take("]")
        if t.peek() is not None:
            raise Skip(path)
        return NodePath("ctx", None, (), ""), Tail("ctx_ele", ids=ids)
    if t.peek() == "comp":
        raise Skip("component of the context")
    head = _node_path(t, names)
    t.take("/")
    last = head.steps[-1] if head.steps else head.desc
    tail = _tail(t, last)
    if tail is None or t.peek() is not None:
        raise Skip(path)
    return head, tail


def parse_select(path: str, names: dict[str, Any]) -> list[NodePath]:
    """A list select: one node path or a union of them."""
    t = _Tokens(path)
    out = [_node_path(t, names)]
    while t.peek() == "|":
        t.take()
        out.append(_node_path(t, names))
    if t.peek() is not None:
        raise Skip(path)
    return out


# --- helpers the generated code calls ---------------------------------------------------------------


def _eq1(elements: Any, i: int, value: str) -> bool:
    """``ele[i] = value`` for a non-empty literal: some ``ele`` node of element ``i`` has it."""
    if i > len(elements):
        return False
    x = elements[i - 1]
    if x.__class__ is str:
        return bool(x == value)
    return value in value_texts(x)


def _all_texts(elements: Any, positions: tuple[int, ...]) -> list[str]:
    out: list[str] = []
    for i in positions:
        if i <= len(elements):
            x = elements[i - 1]
            if x.__class__ is str:
                if x:
                    out.append(x)
            else:
                out.extend(value_texts(x))
    return out


def _eq(elements: Any, positions: tuple[int, ...], value: str) -> bool:
    return value in _all_texts(elements, positions)


def _ne(elements: Any, positions: tuple[int, ...], value: str) -> bool:
    return any(t != value for t in _all_texts(elements, positions))


def _has_desc(node: Node, test: str, ids: frozenset[str]) -> bool:
    """Whether a ``test`` node with one of ``ids`` is below ``node``. Below a transaction, every loop
    of the document is: the loops ``build_nodes`` listed answer it (a few, not the whole tree)."""
    if test == "loop" and node.kind == "transaction" and node.parent is not None:
        loops = (node.parent.cache or {}).get(LOOPS)
        if loops is not None:
            return any(n.id in ids for n in loops)
    for k in node.kids or ():
        if k.kind == test and k.id in ids:
            return True
        if k.kind in ("loop", "transaction") and _has_desc(k, test, ids):
            return True
    return False


def _has_anc(node: Node, test: str, ids: frozenset[str]) -> bool:
    up = node.parent
    while up is not None:
        if up.kind == test and up.id in ids:
            return True
        up = up.parent
    return False


def _under(node: Node, test: str, ids: frozenset[str] | None, out: list[Node]) -> list[Node]:
    """``out`` with the ``test`` nodes (with one of ``ids``, None: any) below ``node`` in document
    order: :func:`_structural` filtered, without listing what the filter drops."""
    for k in node.kids or ():
        kind = k.kind
        if kind == test and (ids is None or k.id in ids):
            out.append(k)
        if kind in {"loop", "transaction"}:
            _under(k, test, ids, out)
    return out


def _structural(node: Node) -> list[Node]:
    """The loops and segments under ``node`` in document order (what is inside segments skipped)."""
    out: list[Node] = []
    for k in node.kids or ():
        if k.kind in ("loop", "seg", "transaction"):
            out.append(k)
            if k.kind != "seg":
                out.extend(_structural(k))
    return out


def _ctx_values(ctx: Node, ids: frozenset[str], positions: dict[str, tuple[int, ...]]) -> list[str]:
    """``ele[@id=...]`` from the context: its texts when the context is a segment (a loop has no
    ``ele`` children)."""
    segment = ctx.segment
    if segment is None:
        return []
    found = positions.get(segment.tag)
    if found is None:
        found = positions[segment.tag] = tuple(element_positions(segment.tag, ids))
    return _all_texts(segment.elements, found)


def _ancestors(nodes: list[Node], self_too: bool) -> list[Node]:
    if len(nodes) == 1:  # one chain: root first is document order
        up = nodes[0] if self_too else nodes[0].parent
        chain = []
        while up is not None:
            chain.append(up)
            up = up.parent
        return chain[::-1]
    out = []
    for n in nodes:
        if self_too:
            out.append(n)
        up = n.parent
        while up is not None:
            out.append(up)
            up = up.parent
    return doc_order(out)


def _desc(doc: Node, test: str, ids: frozenset[str] | None, key: str) -> list[Node]:
    """Every ``test`` node of the document (with one of ``ids``) in document order, found once per
    document (kept in its cache under ``key``)."""
    cache = doc.cache
    if cache is None:
        cache = doc.cache = {}
    found = cache.get(key)
    if found is None:
        loops = cache.get(LOOPS) if test == "loop" else None
        if loops is not None:  # build_nodes listed the loops: a few, where the listing has every segment
            found = loops[:] if ids is None else [n for n in loops if n.id in ids]
        elif ids is None:
            found = [n for n in _structure_of(doc) if n.kind == test]
        else:  # one scan of the listing (a rule set asks one or two such per set: no index pays)
            found = [n for n in _structure_of(doc) if n.kind == test and n.id in ids]
        cache[key] = found
    return found


_INDEX = "straight:kids"  # a node's cache key for its children by id


def _ix(node: Node) -> dict[str | None, list[Node]]:
    """A node's children by id, in document order, made once per node (kept in its cache). A
    segment's index is made from the children it has then: only loops and segments are looked up
    in it, and a segment has neither."""
    cache = node.cache
    if cache is None:
        cache = node.cache = {}
    index: Any = cache.get(_INDEX)
    if index is None:
        index = {}
        for k in node.kids or ():
            same = index.get(k.id)
            if same is None:
                index[k.id] = [k]
            else:
                same.append(k)
        cache[_INDEX] = index
    return index  # type: ignore[no-any-return]


def _values(nodes: list[Node], tail: Tail) -> list[str]:
    """Every text the tail reads from ``nodes`` (segments), in document order."""
    out: list[str] = []
    for n in nodes:
        segment = n.segment
        if segment is None:
            continue
        if tail.kind == "ele":
            out.extend(_all_texts(segment.elements, tail.positions))
        elif tail.kind == "sub":
            out.extend(_components(segment.elements, tail.positions[0], tail.components))
        else:
            out.extend(_suffixed(segment.elements, tail.suffix))
    return out


def _components(elements: Any, i: int, components: tuple[int, ...]) -> Iterator[str]:
    if i > len(elements) or (value := elements[i - 1]).__class__ is str:
        return
    for occ in value if isinstance(value, Repetition) else (value,):
        if occ.__class__ is not str and len(occ) > 1:
            yield from (c for j in components if j <= len(occ) and (c := occ[j - 1]))


def _suffixed(elements: Any, suffix: int) -> Iterator[str]:
    for value in elements:
        if value.__class__ is str:
            continue
        for occ in value if isinstance(value, Repetition) else (value,):
            if occ.__class__ is not str and len(occ) > 1:
                yield from (c for j, c in enumerate(occ, 1) if c and j % 100 == suffix)


def _first_text(value: Any) -> str | None:
    texts = value_texts(value)
    return texts[0] if texts else None


def _comps(elements: Any, i: int, components: tuple[int, ...]) -> list[str]:
    return list(_components(elements, i, components))


def _comp_first(elements: Any, i: int, components: tuple[int, ...]) -> str | None:
    """The first of :func:`_comps` (None when there is none), without the list."""
    return next(_components(elements, i, components), None)


def _first(nodes: list[Node], tail: Tail) -> str | None:
    values = _values(nodes, tail)
    return values[0] if values else None


# --- code generation ----------------------------------------------------------------------------


class _Writer:
    """The source of one rule's function: lines, shared node lists by the text that finds them."""

    def __init__(self, names: dict[str, Any]) -> None:
        self.lines: list[str] = []
        self.names = names
        self.shared: dict[str, tuple[str, bool]] = {}  # key -> (variable, doc-ordered and flat)
        self.count = 0
        self.fallbacks: list[str] = []
        self.reads: dict[str, list[tuple[str, Tail, bool]]] = {}  # by the variable of the segments
        self.single: dict[str, str] = {}  # variables holding just [ctx] or [doc]
        self.indexes: set[str] = set()  # the IX_ctx / IX_doc variables made so far

    def index(self, node: str, indent: int) -> str:
        """The variable holding ``_ix`` of ``ctx`` or ``doc`` (made at the first top-level use)."""
        name = f"IX_{node}"
        if indent == 1:
            if name not in self.indexes:
                self.indexes.add(name)
                self.emit(indent, f"{name} = _ix({node})")
            return name
        return f"_ix({node})" if name not in self.indexes else name

    def var(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def name(self, value: Any) -> str:
        key = f"K{len(self.names)}"
        self.names[key] = value
        return key

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def nodes(self, path: NodePath, indent: int, shared: bool) -> str:
        """The variable holding what ``path`` finds (computed here unless already shared)."""
        key = path.start + "|" + (path.desc.text if path.desc else "")
        known = self.shared.get(key)
        if known is None:
            known = self._start(path, indent)
            if shared:
                self.shared[key] = known
        current, flat = known
        for step in path.steps:
            key += "/" + step.axis + "::" + step.text
            found = self.shared.get(key)
            if found is None:
                found = self._step(current, flat, step, indent)
                if shared:
                    self.shared[key] = found
            current, flat = found
        return current

    def _start(self, path: NodePath, indent: int) -> tuple[str, bool]:
        v = self.var("N")
        if path.start in ("ctx", "doc"):
            self.emit(indent, f"{v} = [{path.start}]")
            self.single[v] = path.start
            return v, True
        desc = path.desc
        assert desc is not None  # noqa: S101 - the desc starts have their step
        key = f"straight:{desc.test}:{sorted(desc.ids or ())}:{desc.ids is None}"
        self.emit(indent, f"{v} = _desc(doc, {desc.test!r}, {self.name(desc.ids)}, {key!r})")
        if desc.preds:
            self.emit(indent, f"{v} = [n for n in {v} if {' and '.join(desc.preds)}]")
        if path.start == "first":
            self.emit(indent, f"{v} = {v}[:1]")
            return v, True
        return v, False  # descendants of the document may nest

    def _child_by_id(self, v: str, current: str, flat: bool, step: Step, indent: int) -> None:
        """``loop[@id='X']``-like child steps: the children with that id from each node's index."""
        assert step.ids is not None  # noqa: S101 - the caller checked: one id
        (one,) = step.ids
        rest = " and ".join([f"n.kind == {step.test!r}", *step.preds])
        node = self.single.get(current)
        if node is not None:  # the context or the document: its index looked up once
            index = self.index(node, indent)
            self.emit(indent, f"{v} = [n for n in {index}.get({one!r}, ()) if {rest}]")
            return
        self.emit(indent, f"{v} = [n for p in {current} for n in _ix(p).get({one!r}, ()) if {rest}]")
        if not flat:
            self.emit(indent, f"if len({current}) > 1: {v} = doc_order({v})")

    def _step(self, current: str, flat: bool, step: Step, indent: int) -> tuple[str, bool]:
        v = self.var("N")
        tests = []
        if step.test != "node()":
            tests.append(f"n.kind == {step.test!r}")
        if step.ids is not None:
            tests.append(f"n.id in {self.name(step.ids)}")
        tests.extend(step.preds)
        cond = " and ".join(tests) or "True"
        if step.axis == "child" and step.ids is not None and len(step.ids) == 1:
            self._child_by_id(v, current, flat, step, indent)
            return v, flat
        if step.axis == "child":
            self.emit(indent, f"{v} = [n for p in {current} for n in (p.kids or ()) if {cond}]")
            if not flat:
                self.emit(indent, f"if len({current}) > 1: {v} = doc_order({v})")
            return v, flat
        if step.axis == "self":
            self.emit(indent, f"{v} = [n for n in {current} if {cond}]")
            return v, flat
        if step.axis == "parent":
            self.emit(indent, f"{v} = [n for p in {current} if (n := p.parent) is not None and {cond}]")
            self.emit(indent, f"if len({current}) > 1: {v} = doc_order({v})")
            return v, False
        if step.axis == "descendant":
            if step.test in _STRUCTURAL:  # what _structural lists, filtered as it is listed
                under = f"_under(p, {step.test!r}, {self.name(step.ids)}, [])"
                self.emit(indent, f"{v} = [n for p in {current} for n in {under} if {cond}]")
            else:
                self.emit(indent, f"{v} = [n for p in {current} for n in _structural(p) if {cond}]")
            self.emit(indent, f"if len({current}) > 1: {v} = doc_order({v})")
            return v, False
        self_too = step.axis == "ancestor-or-self"
        self.emit(indent, f"{v} = [n for n in _ancestors({current}, {self_too}) if {cond}]")
        return v, False

    def field(self, f: FieldRule) -> tuple[str, FieldRule]:
        """Code for the field's first path (a plain element read waits in ``reads``, emitted with the
        other reads of the same segment); its variable."""
        out = self.var("F")
        self._path_value(out, f.paths[0], f.many, 1, shared=True, group=True)
        return out, f

    def rest(self, out: str, f: FieldRule) -> None:
        """The field's fallback paths, each tried when the paths before it gave nothing."""
        for k, path in enumerate(f.paths[1:], 1):
            self.emit(k, f"if not {out}:" if f.many else f"if {out} is None:")
            self._path_value(out, path, f.many, k + 1, shared=False, group=False)

    def flush(self) -> None:
        """The grouped reads: one test of how many segments were found, then each field's element
        read in place (one segment) or through the general helpers (none, or several)."""
        for nodes, reads in self.reads.items():
            self.emit(1, f"if len({nodes}) == 1:")
            self.emit(2, f"E_ = {nodes}[0].segment.elements")
            self.emit(2, "L_ = len(E_)")
            for out, tail, many in reads:
                self.emit(2, f"{out} = {_inline(tail, many)}")
            self.emit(1, "else:")
            for out, tail, many in reads:
                t = self.name(tail)
                general = f"_values({nodes}, {t})" if many else f"_first({nodes}, {t})"
                self.emit(2, f"{out} = {general} if {nodes} else {'[]' if many else 'None'}")
        self.reads.clear()

    def _path_value(self, out: str, path: str, many: bool, indent: int, *, shared: bool, group: bool) -> None:
        try:
            head, tail = parse_field(path, self.names)
        except Skip:
            self.fallbacks.append(path)
            fn = self.name(_fallback_getter(path))
            if many:
                self.emit(indent, f"{out} = {fn}(ctx)")
            else:
                self.emit(indent, f"{out} = ({out}_ := {fn}(ctx)) and {out}_[0] or None")
            return
        if tail.kind == "parent_id":
            self.emit(indent, f"{out} = ctx.parent.id if ctx.parent is not None else None")
            if many:
                self.emit(indent, f"{out} = [{out}] if {out} else []")
            else:
                self.emit(indent, f"{out} = {out} or None")
            return
        if tail.kind == "ctx_ele":
            read = f"_ctx_values(ctx, {self.name(tail.ids)}, {self.name({})})"
            first = f"{out} = ({out}_ := {read}) and {out}_[0] or None"
            self.emit(indent, f"{out} = {read}" if many else first)
            return
        nodes = self.nodes(head, indent, shared)
        if group and tail.kind in ("ele", "sub") and len(tail.positions) == 1:
            self.reads.setdefault(nodes, []).append((out, tail, many))
            return
        t = self.name(tail)
        if len(tail.positions) == 1 and tail.kind in ("ele", "sub"):
            self.emit(indent, f"if len({nodes}) == 1:")
            self.emit(indent + 1, f"E_ = {nodes}[0].segment.elements")
            self.emit(indent + 1, "L_ = len(E_)")
            self.emit(indent + 1, f"{out} = {_inline(tail, many)}")
            self.emit(indent, "else:")
            indent += 1
        if many:
            self.emit(indent, f"{out} = _values({nodes}, {t}) if {nodes} else []")
        else:
            self.emit(indent, f"{out} = _first({nodes}, {t}) if {nodes} else None")

    def select(self, path: str, indent: int) -> str:
        """The variable holding the nodes a list's select finds."""
        try:
            parts = parse_select(path, self.names)
        except Skip:
            self.fallbacks.append(path)
            fn = self.name(_fallback_select(path))
            v = self.var("S")
            self.emit(indent, f"{v} = {fn}(ctx)")
            return v
        found = [self.nodes(p, indent, shared=True) for p in parts]
        if len(found) == 1:
            return found[0]
        v = self.var("S")
        self.emit(indent, f"{v} = doc_order({' + '.join(found)})")
        return v


def _inline(tail: Tail, many: bool) -> str:
    """The expression reading a one-position tail from one segment's elements ``E_`` (``L_`` long)."""
    i = tail.positions[0]
    if tail.kind == "sub":
        if many:
            return f"_comps(E_, {i}, {tail.components!r}) if L_ >= {i} else []"
        return f"_comp_first(E_, {i}, {tail.components!r}) if L_ >= {i} else None"
    x = f"(x_ := E_[{i - 1}]).__class__ is str"
    if many:
        return f"(([x_] if x_ else []) if {x} else value_texts(x_)) if L_ >= {i} else []"
    return f"((x_ or None) if {x} else _first_text(x_)) if L_ >= {i} else None"


def _fallback_getter(path: str) -> TextsFn:
    fn = _xpath(path)
    texts: TextsFn | None = getattr(fn, "texts", None)
    if texts is not None:
        return texts
    return lambda ctx: values_of(fn(ctx))


def _fallback_select(path: str) -> Callable[[Node], list[Node]]:
    fn = _xpath(path)

    def run(ctx: Node) -> list[Node]:
        found = fn(ctx)
        return found if isinstance(found, list) else []

    return run


def _xpath(path: str) -> Expr:
    fn = compile_xpath(path)
    if fn is None:  # compiled_record already refused such a rule set
        raise ValueError("a path outside xpath_lite")
    return fn


_HELPERS: dict[str, Any] = {
    f.__name__: f
    for f in (
        value_texts, _eq1, _eq, _ne, _has_desc, _has_anc, _ancestors, _desc, _structural, _ctx_values,
        _values, _first, _first_text, _comps, _comp_first, _ix, _under, doc_order,
    )
}  # fmt: skip


@dataclass(frozen=True)
class StraightRule:
    """A record rule compiled: ``extract(transaction, doc)`` gives its field dicts; ``source`` is the
    generated code; ``fallbacks`` the paths left to xpath_lite closures."""

    extract: Callable[[Node], list[dict[str, Any]]]
    source: str
    fallbacks: tuple[str, ...]


def _function(rule: ListRule | RecordRule, fname: str, names: dict[str, Any], sources: list[str],
              fallbacks: list[str]) -> None:  # fmt: skip
    w = _Writer(names)
    w.emit(1, "pass")
    firsts = [w.field(f) for f in rule.fields]
    w.flush()
    for out, f in firsts:
        w.rest(out, f)
    fields = [(f.name, out) for out, f in firsts]
    lists = []
    for k, lst in enumerate(rule.lists):
        inner = f"{fname}_{k}"
        _function(lst, inner, names, sources, fallbacks)
        sel = w.select(lst.select, 1)
        lists.append((lst.name, f"[{inner}(n, doc) for n in {sel}]"))
    items = [f"{name!r}: {var}" for name, var in fields] + [f"{name!r}: {code}" for name, code in lists]
    w.emit(1, "return {" + ", ".join(items) + "}")
    sources.append(f"def {fname}(ctx, doc):\n" + "\n".join(w.lines))
    fallbacks.extend(w.fallbacks)


def compile_rule(rule: RecordRule) -> StraightRule:
    """The rule as generated code (the rule must be one ``compiled_record`` compiles)."""
    names: dict[str, Any] = dict(_HELPERS)
    sources: list[str] = []
    fallbacks: list[str] = []
    _function(rule, "record", names, sources, fallbacks)
    w = _Writer(names)
    sel = w.select(rule.select, 1)
    body = "\n".join(w.lines)
    head = "def records(ctx):\n    doc = ctx.parent\n"
    sources.append(f"{head}{body}\n    return [record(n, doc) for n in {sel}]")
    source = "\n\n".join(sources)
    exec(compile(source, f"<mapping rule {rule.name}>", "exec"), names)  # noqa: S102 - code we generated
    fallbacks.extend(w.fallbacks)
    return StraightRule(names["records"], source, tuple(dict.fromkeys(fallbacks)))


def _straight(rule: RecordRule) -> StraightRule | None:
    return compile_rule(rule) if compiled_record(rule) is not None else None


straight_record = PerRule(_straight)
"""``rule`` compiled (None when a path needs lxml); compiled once per rule object."""


def fallbacks(rule: RecordRule) -> tuple[str, ...]:
    """The paths of ``rule`` left to xpath_lite closures (empty: all straight-line)."""
    compiled = straight_record(rule)
    return compiled.fallbacks if compiled is not None else ()
