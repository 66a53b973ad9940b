"""The part of XPath 1.0 the mapping rules use, compiled once into Python closures over
``mappings.segtree`` nodes (no lxml tree per transaction set).

Supported: location paths (absolute, relative, ``//``, ``.``, ``..``, ``@name``), the axes child, self,
parent, ancestor, ancestor-or-self, descendant, descendant-or-self and attribute, name and ``*`` tests,
predicates (numeric ones by position), unions, ``or``/``and``, ``=``/``!=``/``<``/``<=``/``>``/``>=``,
``+``/``-``, parenthesised filter expressions, string and number literals and the functions ``not``,
``substring``, ``string-length``, ``string``, ``count``, ``contains``, ``starts-with``, ``concat``,
``normalize-space``, ``boolean``, ``number``, ``true`` and ``false``. Anything else makes
:func:`compile_xpath` return None and the caller keeps lxml for that rule set, so a payer override may
use any XPath. ``tests/test_map_differential.py`` holds the lxml evaluation as the reference.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mappings.segtree import STRUCTURE, Node
from transactions.segment import Repetition, Segment

Value = list[Node] | str | float | bool
TextsFn = Callable[[Node], list[str]]
Expr = Callable[[Node], Value]
NodeFn = Callable[[Node], list[Node]]

_TOKEN = re.compile(
    r"\s*(?:(?P<lit>'[^']*'|\"[^\"]*\")|(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<op>//|::|!=|<=|>=|\.\.|[/\[\]()@|=<>,.*+-])"
    r"|(?P<name>[A-Za-z_][\w.-]*))"
)
_NUMBER = re.compile(r"[ \t\r\n]*-?([0-9]+(\.[0-9]*)?|\.[0-9]+)[ \t\r\n]*$")
_XML_WORD = re.compile(r"[^ \t\r\n]+")
_AXES = {"child", "self", "parent", "ancestor", "ancestor-or-self", "descendant", "descendant-or-self",
         "attribute"}  # fmt: skip
_REVERSE = {"parent", "ancestor", "ancestor-or-self"}


class Unsupported(Exception):  # noqa: N818 - a signal to fall back, not an error report
    """The expression uses XPath this module does not implement (the caller falls back to lxml)."""


def compile_xpath(expr: str) -> Expr | None:
    """A function of the context node giving what lxml's XPath would, or None when unsupported."""
    try:
        parser = _Parser(_tokens(expr))
        fn = parser.union_or()
        if parser.peek() is not None:
            raise Unsupported(expr)
    except Unsupported:
        return None
    return fn


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            raise Unsupported(expr)
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


# --- values -------------------------------------------------------------------------------------


def doc_order(nodes: list[Node]) -> list[Node]:
    """Nodes without duplicates, in document order."""
    if len(nodes) < 2:
        return nodes[:]
    return sorted({n.key: n for n in nodes}.values(), key=lambda n: n.key)


def _doc_key(n: Node) -> tuple[int, ...]:
    return n.key


def to_string(v: Value) -> str:
    if isinstance(v, list):
        if not v:
            return ""
        first = v[0] if len(v) == 1 else min(v, key=_doc_key)  # the first in document order
        return first.string_value()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _number_text(v)
    return v


def _number_text(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == int(x):
        return str(int(x))
    if not 1e-5 < abs(x) < 1e9:
        return repr(x)
    places = int(math.log10(abs(x)))  # as libxml2's xmlXPathFormatNumber: 15 significant digits
    text = f"{x:.{15 - places - 1 if places > 0 else 15 - places}f}"
    return text.rstrip("0").rstrip(".")


def to_number(v: Value) -> float:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, float):
        return v
    text = to_string(v)
    return float(text) if _NUMBER.match(text) else math.nan


def to_bool(v: Value) -> bool:
    if isinstance(v, list):
        return bool(v)
    if isinstance(v, float):
        return not (v == 0 or math.isnan(v))
    return bool(v)


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def compare(op: str, a: Value, b: Value) -> bool:
    """XPath 1.0 comparison, node-sets compared member by member."""
    test = _CMP[op]
    if isinstance(a, list) or isinstance(b, list):
        return _compare_sets(op, a, b)
    if op in ("=", "!="):
        if isinstance(a, bool) or isinstance(b, bool):
            return test(to_bool(a), to_bool(b))
        if isinstance(a, float) or isinstance(b, float):
            return test(to_number(a), to_number(b))
        return test(to_string(a), to_string(b))
    return test(to_number(a), to_number(b))


def _compare_sets(op: str, a: Value, b: Value) -> bool:
    test = _CMP[op]
    if isinstance(a, list) and isinstance(b, list):
        right = [n.string_value() for n in b]
        if op in ("=", "!="):
            return any(test(n.string_value(), r) for n in a for r in right)
        return any(test(to_number(n.string_value()), to_number(r)) for n in a for r in right)
    if isinstance(b, list):
        swapped = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
        return _compare_sets(swapped, b, a)
    assert isinstance(a, list)  # noqa: S101 - one side is a node-set here
    if isinstance(b, bool):
        return test(to_bool(a), b)
    if isinstance(b, float) or op not in ("=", "!="):
        number = to_number(b)
        return any(test(to_number(n.string_value()), number) for n in a)
    return any(test(n.string_value(), b) for n in a)


# --- steps and paths ----------------------------------------------------------------------------


_STRUCTURE = frozenset({"doc", "transaction", "loop"})


def _descendants(node: Node, out: list[Node], structural: bool) -> None:
    """Descendants in document order; ``structural`` ones skip what is inside segments."""
    for k in node.children():
        out.append(k)
        if not structural or k.kind in _STRUCTURE:
            _descendants(k, out, structural)


def _axis_nodes(axis: str, node: Node, test: str) -> list[Node]:  # noqa: PLR0911 - one return per axis
    """The axis from ``node`` in proximity order (reverse axes nearest first)."""
    if axis == "child":
        return node.children()
    if axis == "attribute":
        return node.attributes()
    if axis == "self":
        return [node]
    if axis == "parent":
        return [node.parent] if node.parent is not None else []
    if axis in ("ancestor", "ancestor-or-self"):
        out = [node] if axis == "ancestor-or-self" else []
        up = node.parent
        while up is not None:
            out.append(up)
            up = up.parent
        return out
    structural = test in ("loop", "seg", "transaction")
    if structural and node.kind in ("doc", "transaction"):  # the listing starts doc, transaction
        skip = (1 if node.kind == "doc" else 2) - (axis == "descendant-or-self")
        return _structure_of(node.root())[skip:]
    out = [node] if axis == "descendant-or-self" else []
    _descendants(node, out, structural)
    return out


def _structure_of(doc: Node) -> list[Node]:
    """The document node, its transaction, loops and segments in document order, listed once."""
    cache = doc.cache
    if cache is None:
        cache = doc.cache = {}
    found = cache.get(STRUCTURE)
    if found is None:
        found = cache[STRUCTURE] = [doc]
        _descendants(doc, found, True)
    return found


def _name_test(axis: str, test: str) -> Callable[[Node], bool]:
    if test == "node()":
        return lambda _n: True
    if axis == "attribute":
        return (lambda _n: True) if test == "*" else (lambda n: n.id == test)
    if test == "*":
        return lambda n: n.kind not in ("doc", "attr")
    return lambda n: n.kind == test


Pred = Callable[[Node, int], bool]


def _step(axis: str, test: str, preds: list[Pred]) -> NodeFn:
    matches = _name_test(axis, test)
    fast = _child_by_id(axis, test, preds)
    if fast is not None:
        return fast

    def run(node: Node) -> list[Node]:
        found = [n for n in _axis_nodes(axis, node, test) if matches(n)]
        for pred in preds:
            found = [n for i, n in enumerate(found, 1) if pred(n, i)]
        return found[::-1] if axis in _REVERSE else found

    return run


def _child_by_id(axis: str, test: str, preds: list[Pred]) -> NodeFn | None:
    """``loop[@id='X' or @id='Y']`` (child or descendant) and the like: one pass over the candidates,
    no per-node calls."""
    if axis not in ("child", "descendant") or test in ("*", "node()") or not preds:
        return None
    if not hasattr(preds[0], "ids"):
        return None
    ids: frozenset[str] = preds[0].ids
    rest = preds[1:]
    if test in ("ele", "comp") and axis == "child":
        return _element_by_id(test, ids, rest)
    if test == "subele" and axis == "child" and not rest:
        return _subele_by_id(ids)

    key = f"ids:{axis}:{test}:{sorted(ids)}"

    def run(node: Node) -> list[Node]:
        cache = node.cache
        if cache is None:
            cache = node.cache = {}
        found = cache.get(key)  # shared by the steps that differ only in their further predicates
        if found is None:
            candidates = node.children() if axis == "child" else _axis_nodes(axis, node, test)
            found = cache[key] = [n for n in candidates if n.kind == test and n.id in ids]
        for pred in rest:
            found = [n for i, n in enumerate(found, 1) if pred(n, i)]
        return found

    run.self_kept = not rest  # type: ignore[attr-defined]  # already kept on its node: see _kept
    return run


def _kept(axis: str, text: str, step: NodeFn, test: str) -> NodeFn:
    """A loop or segment step whose result is kept on its input node under the step's text: the
    paths of a record repeat the same steps (``loop[@id='2100C' or @id='2100D']``) from the same
    nodes. Element and attribute steps are not kept (each field reads its own)."""
    if axis == "attribute" or test in ("ele", "comp", "subele") or getattr(step, "self_kept", False):
        return step
    key = f"step:{axis}:{text}"

    def run(node: Node) -> list[Node]:
        cache = node.cache
        if cache is None:
            cache = node.cache = {}
        found = cache.get(key)
        if found is None:
            found = cache[key] = step(node)
        return found

    return run


def _element_by_id(test: str, ids: frozenset[str], rest: list[Pred]) -> NodeFn:
    """``ele[@id='NM103']`` on a segment: only that element's nodes are made (the segment's other
    elements stay unmade)."""
    by_tag: dict[str, list[int]] = {}

    def run(node: Node) -> list[Node]:
        if node.kind != "seg":
            found = [n for n in node.children() if n.kind == test and n.id in ids]
        else:
            tag = node.id or ""
            wanted = by_tag.get(tag)
            if wanted is None:
                wanted = by_tag[tag] = element_positions(tag, ids)
            found = [n for i in wanted for n in node.element(i) if n.kind == test]
        for pred in rest:
            found = [n for i, n in enumerate(found, 1) if pred(n, i)]
        return found

    if test == "comp" and not rest:
        run.comp_ids = ids  # type: ignore[attr-defined]  # for _subele_texts
    if test == "ele" and not rest:
        run.element_ids = ids  # type: ignore[attr-defined]  # for ElementPlan

        def texts(node: Node) -> list[str]:
            segment = node.segment
            if segment is None:
                return [t for n in run(node) if (t := n.text)]
            wanted = by_tag.get(segment.tag)
            if wanted is None:
                wanted = by_tag[segment.tag] = element_positions(segment.tag, ids)
            if len(wanted) != 1:
                return [t for i in wanted for t in element_texts(segment, i)]
            i = wanted[0]
            if i <= len(segment.elements) and type(value := segment.elements[i - 1]) is str:
                return [value] if value else []  # the common case, read in place
            return element_texts(segment, i)

        run.texts = texts  # type: ignore[attr-defined]
    return run


def _subele_by_id(ids: frozenset[str]) -> NodeFn:
    """``subele[@id='SV101-02']`` on a ``comp`` node: its kids are made with it, so a plain scan."""

    def run(node: Node) -> list[Node]:
        return [n for n in node.children() if n.kind == "subele" and n.id in ids]

    run.subele_ids = ids  # type: ignore[attr-defined]  # for _subele_texts
    return run


def _subele_texts(comp: NodeFn, ids_of_comp: frozenset[str], subele: NodeFn, ids: frozenset[str]) -> TextsFn:
    """The texts ``comp[@id=...]/subele[@id=...]`` gives from a node, read from a segment's composites
    in place (no ``comp`` or ``subele`` nodes made): components ``j`` of element ``i`` whose id
    ``TAGii-jj`` is wanted, for each occurrence that is a composite of more than one component."""
    by_tag: dict[str, list[tuple[int, list[int]]]] = {}

    def texts(node: Node) -> list[str]:
        segment = node.segment
        if segment is None:
            return [t for c in comp(node) for n in subele(c) if (t := n.text)]
        wanted = by_tag.get(segment.tag)
        if wanted is None:
            wanted = by_tag[segment.tag] = _subele_positions(segment.tag, ids_of_comp, ids)
        out: list[str] = []
        elements = segment.elements
        for i, components in wanted:
            if i > len(elements) or type(value := elements[i - 1]) is str:
                continue  # a plain value is an ele, never a comp
            for occ in value if isinstance(value, Repetition) else (value,):
                if type(occ) is not str and len(occ) > 1:
                    out.extend(t for j in components if j <= len(occ) and (t := occ[j - 1]))
        return out

    return texts


def _subele_positions(
    tag: str, ids_of_comp: frozenset[str], ids: frozenset[str]
) -> list[tuple[int, list[int]]]:
    """(element position, wanted component positions) of ``tag``, both ascending (document order)."""
    out = []
    for i in element_positions(tag, ids_of_comp):
        xid = f"{tag}{i:02d}-"
        found = element_positions(xid, frozenset(s for s in ids if s.startswith(xid)))
        if found:
            out.append((i, found))
    return out


def element_positions(tag: str, ids: frozenset[str]) -> list[int]:
    """Element positions of ``tag`` whose XML id (tag + at least two digits) is in ``ids``."""
    out = []
    for xid in ids:
        rest = xid[len(tag) :]
        if xid.startswith(tag) and rest.isascii() and rest.isdigit() and f"{int(rest):02d}" == rest:
            out.append(int(rest))
    return sorted(out)


def _cached(key: str, step: NodeFn) -> Callable[[Node], list[Node]]:
    """The first step of an absolute path, evaluated once per document (paths sharing it share it)."""

    def run(ctx: Node) -> list[Node]:
        doc = ctx.root()
        cache = doc.cache
        if cache is None:
            cache = doc.cache = {}
        found = cache.get(key)
        if found is None:
            found = cache[key] = step(doc)
        return found

    return run


def _apply(nodes: list[Node], steps: list[NodeFn]) -> list[Node]:
    for step in steps:
        if len(nodes) == 1:
            nodes = step(nodes[0])
        else:
            out: list[Node] = []
            for n in nodes:
                out.extend(step(n))
            nodes = doc_order(out)
    return nodes


def _path(
    start: Callable[[Node], list[Node]], steps: list[NodeFn], memo: str | None = None
) -> Callable[[Node], list[Node]]:
    @functools.partial(_mark, what="nodeset")
    def run(ctx: Node) -> list[Node]:
        return _apply(start(ctx), steps)

    last = getattr(steps[-1], "texts", None) if steps else None
    sub_ids = getattr(steps[-1], "subele_ids", None) if len(steps) > 1 else None
    comp_ids = getattr(steps[-2], "comp_ids", None) if sub_ids is not None else None
    if sub_ids is not None and comp_ids is not None:
        last_two = _subele_texts(steps[-2], comp_ids, steps[-1], sub_ids)
        run.texts = _texts_path(start, steps[:-2], last_two, memo and f"{memo} ^comp")
    if last is not None:
        run.texts = _texts_path(start, steps[:-1], last, memo)
        ids = steps[-1].element_ids  # type: ignore[attr-defined]  # every texts step has them
        head = None if start is _self and len(steps) == 1 else _prefix(start, steps[:-1])
        run.element_plan = ElementPlan(memo or "", head, ids)
    return run  # type: ignore[no-any-return]  # marked by the decorator


@dataclass(frozen=True, slots=True)
class ElementPlan:
    """A path ending in ``ele[@id=...]`` taken apart: ``head`` finds the nodes (None: the context
    itself) whose elements ``ids`` are read; paths with the same ``key`` have the same head."""

    key: str
    head: Callable[[Node], list[Node]] | None
    ids: frozenset[str]


def _prefix(start: Callable[[Node], list[Node]], steps: list[NodeFn]) -> Callable[[Node], list[Node]]:
    def head(ctx: Node) -> list[Node]:
        return _apply(start(ctx), steps)

    return head


def _texts_path(
    start: Callable[[Node], list[Node]], steps: list[NodeFn], last: TextsFn, memo: str | None
) -> TextsFn:
    """The non-empty texts of a path ending in ``ele[@id=...]``, without making its nodes (each
    segment's elements come in document order, segments too). What the steps before the last find
    is kept on the context node under ``memo`` (the text of those steps): the fields of a record
    read many elements of the same segments."""
    if start is _self and not steps:
        return last

    def texts(ctx: Node) -> list[str]:
        if memo is None:
            nodes = _apply(start(ctx), steps)
        else:
            cache = ctx.cache
            if cache is None:
                cache = ctx.cache = {}
            found = cache.get(memo)
            if found is None:
                found = cache[memo] = _apply(start(ctx), steps)
            nodes = found
        if len(nodes) == 1:
            return last(nodes[0])
        return [t for n in nodes for t in last(n)]

    return texts


def element_texts(segment: Segment, position: int) -> list[str]:
    """The texts of the ``ele`` nodes element ``position`` gives (one per plain occurrence)."""
    if not 0 < position <= len(segment.elements):
        return []
    value = segment.elements[position - 1]
    if type(value) is str:
        return [value] if value else []
    return value_texts(value)


def value_texts(value: Any) -> list[str]:
    """The texts of the ``ele`` nodes an element value that is not a plain string gives: one per
    occurrence that is a non-empty string or a one-part composite."""
    out = []
    for occ in value if isinstance(value, Repetition) else (value,):
        if isinstance(occ, str):
            if occ:
                out.append(occ)
        elif len(occ) == 1 and occ[0]:
            out.append(occ[0])
    return out


def _root(ctx: Node) -> list[Node]:
    return [ctx.root()]


def _self(ctx: Node) -> list[Node]:
    return [ctx]


def _id_set(expr: Expr) -> frozenset[str] | None:
    return getattr(expr, "ids", None)


def _mark(fn: Any, what: str) -> Any:
    """Tag a closure with what it is known to give (``boolean`` or ``nodeset``): such a predicate
    does not depend on position, so ``//x[p]`` can be read as ``descendant::x[p]``."""
    setattr(fn, what, True)
    return fn


def _is_nodeset(expr: Expr) -> bool:
    return bool(getattr(expr, "nodeset", False))


def _position_free(expr: Expr) -> bool:
    return bool(getattr(expr, "boolean", False) or getattr(expr, "nodeset", False))


def _predicate(expr: Expr, numeric: float | None) -> Pred:
    if numeric is not None:
        return lambda _n, i: i == numeric
    ids = _id_set(expr)
    if ids is not None:

        def by_id(n: Node, _i: int) -> bool:
            return n.id in ids and n.kind != "attr"

        by_id.ids = ids  # type: ignore[attr-defined]
        return _mark(by_id, "free")  # type: ignore[no-any-return]

    direct: Callable[[Node], bool] | None = getattr(expr, "node_test", None)
    if direct is not None:  # a boolean test of the node alone, called as it is
        return _mark(lambda n, _i: direct(n), "free")  # type: ignore[no-any-return]

    def test(n: Node, i: int) -> bool:
        v = expr(n)
        return i == v if isinstance(v, float) else to_bool(v)

    return _mark(test, "free") if _position_free(expr) else test


# --- the parser ---------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the tokens, building closures as it goes (XPath 1.0 precedence)."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.last_begin = -1  # token index of the last "/" or "//" between steps

    def peek(self, ahead: int = 0) -> tuple[str, str] | None:
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else None

    def at(self, *values: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] in ("op", "name") and tok[1] in values

    def take(self, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise Unsupported(value or "end")
        self.pos += 1
        return tok[1]

    def union_or(self) -> Expr:
        return self.binary(0)

    LEVELS = (("or",), ("and",), ("=", "!="), ("<", "<=", ">", ">="), ("+", "-"))

    def binary(self, level: int) -> Expr:
        if level == len(self.LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.at(*self.LEVELS[level]):
            op = self.take()
            left = _combine(op, left, self.binary(level + 1))
        return left

    def unary(self) -> Expr:
        if self.at("-"):
            self.take()
            inner = self.unary()
            return lambda n: -to_number(inner(n))
        return self.union()

    def union(self) -> Expr:
        first = self.path()
        if not self.at("|"):
            return first
        parts = [first]
        while self.at("|"):
            self.take()
            parts.append(self.path())
        if not all(_is_nodeset(p) for p in parts):
            raise Unsupported("union of a non-node-set")  # lxml fails such a union when it runs

        @functools.partial(_mark, what="nodeset")
        def run(ctx: Node) -> Value:
            out: list[Node] = []
            for part in parts:
                v = part(ctx)
                if not isinstance(v, list):
                    raise TypeError("union of a non-node-set")
                out.extend(v)
            return doc_order(out)

        return run  # type: ignore[no-any-return]  # marked by the decorator

    def path(self) -> Expr:
        tok = self.peek()
        if tok is None:
            raise Unsupported("empty path")
        if tok in (("op", "/"), ("op", "//")):
            self.take()
            if tok[1] == "/" and not self._step_starts():
                raise Unsupported("bare /")
            begin = self.pos
            first = self.step(descend=tok[1] == "//")
            key = tok[1] + " ".join(t for _, t in self.tokens[begin : self.pos])
            start = _cached(key, first[0]) if len(first) == 1 else _root
            steps = first[len(first) == 1 :] + (self.more_steps() if self.at("/", "//") else [])
            return _path(start, steps, self.memo_key(begin - 1))
        if tok[0] in ("lit", "num") or tok == ("op", "(") or self._function_call():
            return self.filter_path()
        if tok == ("op", "@") and self.peek(1) == ("name", "id") and not self._continues(2):
            self.pos += 2
            return _id_attribute
        begin = self.pos
        return _path(_self, self.steps(), self.memo_key(begin))

    def _continues(self, ahead: int) -> bool:
        tok = self.peek(ahead)
        return tok is not None and tok[1] in ("[", "/", "//")

    def _step_starts(self) -> bool:
        tok = self.peek()
        return tok is not None and (tok[0] == "name" or tok[1] in (".", "..", "@", "*"))

    def _function_call(self) -> bool:
        tok, nxt = self.peek(), self.peek(1)
        return (
            tok is not None
            and tok[0] == "name"
            and nxt == ("op", "(")
            and tok[1] not in ("node", "text", "comment", "processing-instruction")
        )

    def filter_path(self) -> Expr:
        begin = self.pos
        primary = self.primary()
        preds = self.predicates()
        if not preds and not self.at("/", "//"):
            return primary
        if not _is_nodeset(primary):
            raise Unsupported("a predicate or path after a non-node-set")

        def start(ctx: Node) -> list[Node]:
            v = primary(ctx)
            if not isinstance(v, list):
                raise TypeError("a predicate or path after a non-node-set")
            found = doc_order(v)
            for pred in preds:
                found = [n for i, n in enumerate(found, 1) if pred(n, i)]
            return found

        steps: list[NodeFn] = []
        if self.at("/", "//"):
            steps = self.more_steps()
        return _path(start, steps, self.memo_key(begin))

    def steps(self, *, descend: bool = False) -> list[NodeFn]:
        out = self.step(descend=descend)
        if self.at("/", "//"):
            out.extend(self.more_steps())
        return out

    def more_steps(self) -> list[NodeFn]:
        out: list[NodeFn] = []
        while self.at("/", "//"):
            self.last_begin = self.pos
            out.extend(self.step(descend=self.take() == "//"))
        return out

    def memo_key(self, begin: int) -> str | None:
        """The text of a path's steps but the last (from token ``begin``), naming what the path reads
        before its last step; None for a one-step path."""
        if self.last_begin <= begin:
            return None
        return "memo:" + " ".join(t for _, t in self.tokens[begin : self.last_begin])

    def _next_axis(self) -> str:
        tok, nxt = self.peek(), self.peek(1)
        if tok == ("op", "@"):
            return "attribute"
        if tok is not None and tok[0] == "name" and nxt == ("op", "::"):
            return tok[1]
        return "child" if tok is not None and tok[1] not in (".", "..") else "self"

    def step(self, *, descend: bool = False) -> list[NodeFn]:
        """One step; after ``//`` (``descend``) the implied ``descendant-or-self::node()`` too, folded
        into a ``descendant`` step when the predicates do not depend on position."""
        if descend and not (self._step_starts() and self._next_axis() in ("child", "attribute")):
            raise Unsupported("// before a step on another axis")  # text nodes are not modelled
        if self.at("."):
            self.take()
            return [_step("self", "node()", [])]
        if self.at(".."):
            self.take()
            return [_step("parent", "node()", [])]
        axis, begin = "child", self.pos
        if self.at("@"):
            self.take()
            axis = "attribute"
        elif self.peek(1) == ("op", "::"):
            axis = self.take()
            self.take("::")
            if axis not in _AXES:
                raise Unsupported(axis)
        test = self.node_test(axis)
        preds = self.predicates()
        text = " ".join(t for _, t in self.tokens[begin : self.pos])
        if not descend:
            return [_kept(axis, text, _step(axis, test, preds), test)]
        if axis == "child" and all(getattr(p, "free", False) for p in preds):
            return [_kept("descendant", text, _step("descendant", test, preds), test)]
        return [_step("descendant-or-self", "node()", []), _kept(axis, text, _step(axis, test, preds), test)]

    def node_test(self, axis: str) -> str:
        if self.at("*"):
            self.take()
            return "*"
        tok = self.peek()
        if tok is None or tok[0] != "name":
            raise Unsupported("node test")
        name = self.take()
        if self.at("("):
            if name != "node" or axis in ("child", "descendant", "descendant-or-self"):
                raise Unsupported(f"{name}() test")  # text nodes are not modelled
            self.take("(")
            self.take(")")
            return "node()"
        return name

    def predicates(self) -> list[Pred]:
        out = []
        while self.at("["):
            self.take()
            tok = self.peek()
            numeric = (
                float(tok[1]) if tok is not None and tok[0] == "num" and self.peek(1) == ("op", "]") else None
            )
            expr = self.union_or()
            self.take("]")
            out.append(_predicate(expr, numeric))
        return out

    def primary(self) -> Expr:
        kind, text = self.peek() or ("", "")
        if kind == "lit":
            self.take()
            value = text[1:-1]

            def literal(_n: Node) -> Value:
                return value

            literal.literal = True  # type: ignore[attr-defined]
            return literal
        if kind == "num":
            self.take()
            number = float(text)
            return lambda _n: number
        if text == "(":
            self.take()
            inner = self.union_or()
            self.take(")")
            return inner
        name = self.take()
        self.take("(")
        args: list[Expr] = []
        while not self.at(")"):
            args.append(self.union_or())
            if not self.at(")"):
                self.take(",")
        self.take(")")
        return _function(name, args)


def _id_attribute(ctx: Node) -> Value:
    return [ctx.id_attribute()] if ctx.id is not None and ctx.kind != "attr" else []


_id_attribute.nodeset = True  # type: ignore[attr-defined]


def _combine(op: str, left: Expr, right: Expr) -> Expr:  # noqa: PLR0911 - one return per operator kind
    """The closure of ``left op right``; ``@id='X' or @id='Y'`` becomes a set test, node-set against
    literal a direct scan."""
    if op in ("or", "and"):
        ids_l, ids_r = _id_set(left), _id_set(right)
        if op == "or" and ids_l is not None and ids_r is not None:
            return _ids_test(ids_l | ids_r)
        if op == "or":
            return _mark(lambda n: to_bool(left(n)) or to_bool(right(n)), "boolean")  # type: ignore[no-any-return]
        return _mark(lambda n: to_bool(left(n)) and to_bool(right(n)), "boolean")  # type: ignore[no-any-return]
    if op in ("+", "-"):
        sign = 1.0 if op == "+" else -1.0
        return lambda n: to_number(left(n)) + sign * to_number(right(n))
    if op == "=" and left is _id_attribute:
        value = right(Node("doc", None, None, (0,)))
        if isinstance(value, str) and _is_literal(right):
            return _ids_test(frozenset({value}))
    if op in ("=", "!=") and getattr(left, "nodeset", False) and _is_literal(right):
        return _set_against_literal(op == "=", left, right(Node("doc", None, None, (0,))))
    return _mark(lambda n: compare(op, left(n), right(n)), "boolean")  # type: ignore[no-any-return]


def _set_against_literal(equal: bool, left: Expr, literal: Any) -> Expr:
    """``ele[@id='REF01']='BB'`` (or ``!=``): some node of the set has (or has not) that string-value."""

    texts: TextsFn | None = getattr(left, "texts", None)
    if texts is not None:  # ele nodes: their string-values are exactly these texts

        def by_text(n: Node) -> bool:
            if equal:
                return literal in texts(n)
            return any(t != literal for t in texts(n))

        by_text.node_test = by_text  # type: ignore[attr-defined]  # see _predicate
        return _mark(by_text, "boolean")  # type: ignore[no-any-return]

    def test(n: Node) -> Value:
        found = left(n)
        assert isinstance(found, list)  # noqa: S101 - a node-set path by construction
        if equal:
            return any(m.string_value() == literal for m in found)
        return any(m.string_value() != literal for m in found)

    return _mark(test, "boolean")  # type: ignore[no-any-return]


def _is_literal(fn: Expr) -> bool:
    return getattr(fn, "literal", False)


def _ids_test(ids: frozenset[str]) -> Expr:
    def test(n: Node) -> Value:
        return n.id in ids and n.kind not in ("attr", "doc")

    test.ids = ids  # type: ignore[attr-defined]
    return _mark(test, "boolean")  # type: ignore[no-any-return]


def _xround(x: float) -> float:
    return x if math.isnan(x) or math.isinf(x) else float(math.floor(x + 0.5))


def _substring(s: str, start: float, length: float | None) -> str:
    """XPath's substring: the characters at positions ``p`` (from 1) with ``first <= p < end``, cut
    as one slice (NaN bounds, as ``-inf + inf``, take nothing)."""
    first = _xround(start)
    end = math.inf if length is None else first + _xround(length)
    if math.isnan(first) or math.isnan(end):
        return ""
    low, high = max(first, 1.0), min(end, len(s) + 1.0)
    return s[int(low) - 1 : int(high) - 1] if low < high else ""


def _context_or(args: list[Expr]) -> Expr:
    return args[0] if args else (lambda n: [n])


_FUNCTIONS: dict[str, tuple[int, int]] = {
    "not": (1, 1), "true": (0, 0), "false": (0, 0), "boolean": (1, 1), "string": (0, 1),
    "number": (0, 1), "string-length": (0, 1), "normalize-space": (0, 1), "count": (1, 1),
    "substring": (2, 3), "contains": (2, 2), "starts-with": (2, 2), "concat": (2, 99),
}  # fmt: skip


def _function(name: str, args: list[Expr]) -> Expr:  # noqa: PLR0911 - one return per function
    low, high = _FUNCTIONS.get(name, (-1, -1))
    if not low <= len(args) <= high:
        raise Unsupported(name)
    if name in ("true", "false"):
        constant = name == "true"
        return lambda _n: constant
    if name in ("not", "boolean"):
        inner, negate = args[0], name == "not"
        return _mark(lambda n: to_bool(inner(n)) is not negate, "boolean")  # type: ignore[no-any-return]
    if name == "count":
        inner = args[0]
        return lambda n: float(len(_nodes(inner(n))))
    if name in ("string", "number", "string-length", "normalize-space"):
        return _string_function(name, _context_or(args))
    if name == "substring":
        s, start = args[0], args[1]
        length = args[2] if len(args) == 3 else None
        return lambda n: _substring(
            to_string(s(n)), to_number(start(n)), None if length is None else to_number(length(n))
        )
    if name == "concat":
        return lambda n: "".join(to_string(a(n)) for a in args)
    a, b = args
    if name == "contains":
        return lambda n: to_string(b(n)) in to_string(a(n))
    return lambda n: to_string(a(n)).startswith(to_string(b(n)))


def _string_function(name: str, arg: Expr) -> Expr:
    if name == "string":
        return lambda n: to_string(arg(n))
    if name == "number":
        return lambda n: to_number(arg(n))
    if name == "string-length":
        return lambda n: float(len(to_string(arg(n))))
    return lambda n: " ".join(_XML_WORD.findall(to_string(arg(n))))


def _nodes(v: Value) -> list[Node]:
    if not isinstance(v, list):
        raise TypeError("count() of a non-node-set")
    return v
