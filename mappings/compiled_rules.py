"""Mapping rules compiled into closures over ``mappings.segtree`` nodes: the same field dicts as
``mappings.engine.extract_records`` gives from the lxml tree, without building that tree.

A rule set whose every path :func:`mappings.xpath_lite.compile_xpath` understands is compiled once
(cached by identity, rules being immutable); one with any other XPath gives None and is evaluated
with lxml, so payer overrides may still use all of XPath.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mappings.engine import FieldRule, ListRule, RecordRule
from mappings.segtree import Node
from mappings.xpath_lite import Expr, TextsFn, Value, compile_xpath


@dataclass(frozen=True, slots=True)
class FastField:
    name: str
    paths: tuple[TextsFn, ...]
    many: bool


@dataclass(frozen=True, slots=True)
class FastList:
    name: str
    select: Expr
    fields: tuple[FastField, ...]
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
    return lambda ctx: _values(fn(ctx))


def _fields(fields: tuple[FieldRule, ...]) -> tuple[FastField, ...]:
    return tuple(FastField(f.name, tuple(_getter(p) for p in f.paths), f.many) for f in fields)


def _list(rule: ListRule | RecordRule) -> FastList:
    return FastList(rule.name, _expr(rule.select), _fields(rule.fields), tuple(_list(x) for x in rule.lists))


_COMPILED: dict[int, tuple[RecordRule, FastList | None]] = {}


def compiled_record(rule: RecordRule) -> FastList | None:
    """``rule`` compiled (None when a path needs lxml); compiled once per rule object."""
    hit = _COMPILED.get(id(rule))
    if hit is not None and hit[0] is rule:
        return hit[1]
    try:
        fast: FastList | None = _list(rule)
    except _NotCompiled:
        fast = None
    _COMPILED[id(rule)] = (rule, fast)  # the rule is kept, so its id is not reused while cached
    return fast


def _values(result: Value) -> list[str]:
    """What ``mappings.engine._values`` makes of lxml's answer for the same expression."""
    if isinstance(result, list):
        return [n.text for n in result if n.text]
    if isinstance(result, bool):
        return []
    if isinstance(result, float):
        return [str(result)]
    return [result] if result else []


def extract_fast(context: Node, fields: tuple[FastField, ...], lists: tuple[FastList, ...]) -> dict[str, Any]:
    """``mappings.engine.extract`` over a node: first path with a value wins, lists nest."""
    out: dict[str, Any] = {}
    for f in fields:
        values: list[str] = []
        for path in f.paths:
            values = path(context)
            if values:
                break
        out[f.name] = values if f.many else (values[0] if values else None)
    for lst in lists:
        found = lst.select(context)
        nodes = found if isinstance(found, list) else []
        out[lst.name] = [extract_fast(node, lst.fields, lst.lists) for node in nodes]
    return out


def extract_records_fast(transaction: Node, rule: FastList) -> list[dict[str, Any]]:
    """One field dict per node the record's select finds from the ``transaction`` node."""
    found = rule.select(transaction)
    nodes = found if isinstance(found, list) else []
    return [extract_fast(node, rule.fields, rule.lists) for node in nodes]
