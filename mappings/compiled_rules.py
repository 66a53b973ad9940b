"""Mapping rules compiled into closures over ``mappings.segtree`` nodes: the same field dicts as
``mappings.engine.extract_records`` gives from the lxml tree, without building that tree.

A rule set whose every path :func:`mappings.xpath_lite.compile_xpath` understands is compiled once
(cached by identity, rules being immutable); one with any other XPath gives None and is evaluated
with lxml, so payer overrides may still use all of XPath.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mappings.engine import FieldRule, ListRule, RecordRule
from mappings.segtree import Node
from mappings.xpath_lite import (
    ElementPlan,
    Expr,
    TextsFn,
    Value,
    compile_xpath,
    element_positions,
    element_texts,
)
from transactions.segment import Segment

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FastField:
    name: str
    paths: tuple[TextsFn, ...]
    many: bool


@dataclass(frozen=True, slots=True)
class ElementField:
    """A one-path field reading elements ``ids`` of what its group's head finds."""

    name: str
    ids: frozenset[str]
    many: bool
    positions: dict[str, list[int]]  # by segment tag, filled as tags are met


@dataclass(frozen=True, slots=True)
class FieldGroup:
    """Fields whose paths share everything but the element read: the head is evaluated once."""

    head: Callable[[Node], list[Node]] | None  # None: the context node itself
    fields: tuple[ElementField, ...]
    by_tag: dict[str, tuple[tuple[str, bool, list[int]], ...]]  # (name, many, positions) per segment tag


@dataclass(frozen=True, slots=True)
class FastList:
    name: str
    select: Expr
    names: tuple[str, ...]  # every field, in rule order (the dict's key order)
    groups: tuple[FieldGroup, ...]
    fields: tuple[FastField, ...]  # the others: fallbacks, attributes, sub-elements ...
    lists: tuple[FastList, ...]


class _NotCompiled(Exception):  # noqa: N818 - a signal, caught below
    pass


def _expr(path: str) -> Expr:
    fn = compile_xpath(path)
    if fn is None:
        raise _NotCompiled(path)
    return fn


def _getter(path: str) -> TextsFn:
    """The field values a path gives from a context node (its text-only form when it has one)."""
    fn = _expr(path)
    texts: TextsFn | None = getattr(fn, "texts", None)
    if texts is not None:
        return texts
    return lambda ctx: values_of(fn(ctx))


def _split(fields: tuple[FieldRule, ...]) -> tuple[tuple[FieldGroup, ...], tuple[FastField, ...]]:
    """Group one-path fields ending in ``ele[@id=...]`` by their head; the rest stay general."""
    groups: dict[str, tuple[Callable[[Node], list[Node]] | None, list[ElementField]]] = {}
    general = []
    for f in fields:
        plan: ElementPlan | None = getattr(_expr(f.paths[0]), "element_plan", None)
        if len(f.paths) != 1 or plan is None:
            general.append(FastField(f.name, tuple(_getter(p) for p in f.paths), f.many))
            continue
        _, members = groups.setdefault(plan.key, (plan.head, []))
        members.append(ElementField(f.name, plan.ids, f.many, {}))
    grouped = tuple(FieldGroup(head, tuple(members), {}) for head, members in groups.values())
    return grouped, tuple(general)


def _list(rule: ListRule | RecordRule) -> FastList:
    groups, general = _split(rule.fields)
    names = tuple(f.name for f in rule.fields)
    return FastList(
        rule.name, _expr(rule.select), names, groups, general, tuple(_list(x) for x in rule.lists)
    )


_MAX_CACHED = 256


class PerRule(Generic[T]):
    """What ``build`` makes of each record rule, made once per rule object (rule sets are loaded once
    per process); at most ``_MAX_CACHED`` kept, so the table never grows unbounded."""

    def __init__(self, build: Callable[[RecordRule], T]) -> None:
        self._build = build
        self._made: dict[int, tuple[RecordRule, T]] = {}

    def __call__(self, rule: RecordRule) -> T:
        hit = self._made.get(id(rule))
        if hit is not None and hit[0] is rule:
            return hit[1]
        made = self._build(rule)
        if len(self._made) >= _MAX_CACHED:
            self._made.clear()
        self._made[id(rule)] = (rule, made)  # the rule is kept, so its id is not reused while cached
        return made


def _compile(rule: RecordRule) -> FastList | None:
    try:
        return _list(rule)
    except _NotCompiled:
        return None


compiled_record = PerRule(_compile)
"""``rule`` compiled (None when a path needs lxml); compiled once per rule object."""


def values_of(result: Value) -> list[str]:
    """What ``mappings.engine._values`` makes of lxml's answer for the same expression."""
    if isinstance(result, list):
        return [n.text for n in result if n.text]
    if isinstance(result, bool):
        return []
    if isinstance(result, float):
        return [str(result)]
    return [result] if result else []


def _read(nodes: list[Node], f: ElementField) -> list[str]:
    """The texts of elements ``f.ids`` of ``nodes`` (in document order), as the ``ele`` nodes give."""
    values: list[str] = []
    for n in nodes:
        segment = n.segment
        if segment is None:  # not a segment: no ele children unless made already
            values.extend(t for k in n.children() if k.kind == "ele" and k.id in f.ids and (t := k.text))
            continue
        positions = f.positions.get(segment.tag)
        if positions is None:
            positions = f.positions[segment.tag] = element_positions(segment.tag, f.ids)
        elements = segment.elements
        for i in positions:
            if i <= len(elements) and type(value := elements[i - 1]) is str:
                if value:
                    values.append(value)
            else:
                values.extend(element_texts(segment, i))
    return values


def _read_segment(segment: Segment, group: FieldGroup, out: dict[str, Any]) -> None:
    """The group's fields from one segment (the common case: its head finds one segment), plain
    values read in place, without a call per field."""
    plan = group.by_tag.get(segment.tag)
    if plan is None:
        plan = group.by_tag[segment.tag] = tuple(
            (f.name, f.many, element_positions(segment.tag, f.ids)) for f in group.fields
        )
    elements = segment.elements
    size = len(elements)
    for name, many, positions in plan:
        if len(positions) == 1 and positions[0] <= size and type(value := elements[positions[0] - 1]) is str:
            out[name] = ([value] if value else []) if many else (value or None)
            continue
        read = [t for i in positions for t in element_texts(segment, i)]
        out[name] = read if many else (read[0] if read else None)


def extract_fast(context: Node, rule: FastList) -> dict[str, Any]:
    """``mappings.engine.extract`` over a node: first path with a value wins, lists nest."""
    out: dict[str, Any] = dict.fromkeys(rule.names)
    for group in rule.groups:
        nodes = [context] if group.head is None else group.head(context)
        if len(nodes) == 1 and nodes[0].segment is not None:
            _read_segment(nodes[0].segment, group, out)
            continue
        for e in group.fields:
            read = _read(nodes, e) if nodes else []
            out[e.name] = read if e.many else (read[0] if read else None)
    for f in rule.fields:
        values: list[str] = []
        for path in f.paths:
            values = path(context)
            if values:
                break
        out[f.name] = values if f.many else (values[0] if values else None)
    for lst in rule.lists:
        found = lst.select(context)
        nodes = found if isinstance(found, list) else []
        out[lst.name] = [extract_fast(node, lst) for node in nodes]
    return out


def extract_records_fast(transaction: Node, rule: FastList) -> list[dict[str, Any]]:
    """One field dict per node the record's select finds from the ``transaction`` node."""
    found = rule.select(transaction)
    nodes = found if isinstance(found, list) else []
    return [extract_fast(node, rule) for node in nodes]
