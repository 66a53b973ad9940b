"""The mapping engine: rules as data (XPath over a transaction's XML form), compiled once with lxml.

A rules file declares records, their fields and nested lists::

    <mappings>
      <record name="authorization" transaction="278resp" select="//loop[@id='2000E']">
        <field name="certification_number" path="seg[@id='HCR']/ele[@id='HCR02']">
          <fallback path="seg[@id='REF'][ele[@id='REF01']='BB']/ele[@id='REF02']"/>
        </field>
        <field name="messages" path="seg[@id='MSG']/ele[@id='MSG01']" many="true"/>
        <list name="services" select="loop[@id='2000F']"> ... </list>
      </record>
    </mappings>

Per-payer overrides (``<overrides><payer id="..."><field record="authorization" [list="services"]
name="..." path="..."/></payer></overrides>``) replace a field's paths for responses from that payer.
Files are parsed with entity resolution, DTD loading and network access off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from lxml import etree

from transactions.errors import X12GatewayError

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)


class MappingRuleError(X12GatewayError):
    """A mapping file is malformed (bad XML, a DTD/entity, a bad XPath, an unknown record or field)."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    name: str
    paths: tuple[str, ...]
    many: bool = False


@dataclass(frozen=True, slots=True)
class ListRule:
    name: str
    select: str
    fields: tuple[FieldRule, ...]
    lists: tuple[ListRule, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordRule:
    name: str
    transaction: str
    select: str
    fields: tuple[FieldRule, ...]
    lists: tuple[ListRule, ...]


def _parse(data: bytes, what: str) -> Any:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise MappingRuleError(f"{what}: DTDs and entities are not allowed in mapping files")
    try:
        return etree.fromstring(data, PARSER)
    except etree.XMLSyntaxError as exc:
        raise MappingRuleError(f"{what}: not well-formed XML (line {exc.lineno})") from None


def _field(el: Any) -> FieldRule:
    paths = [el.get("path"), *(f.get("path") for f in el.findall("fallback"))]
    if not el.get("name") or not all(paths):
        raise MappingRuleError("every field needs a name and a path")
    return FieldRule(el.get("name"), tuple(paths), el.get("many") == "true")


def _list(el: Any) -> ListRule:
    return ListRule(
        el.get("name"),
        el.get("select"),
        tuple(_field(f) for f in el.findall("field")),
        tuple(_list(x) for x in el.findall("list")),
    )


def load_rules(data: bytes, what: str = "mapping file") -> dict[str, RecordRule]:
    """Records declared in a rules file, by record name (XPaths compiled to check them early)."""
    root = _parse(data, what)
    records = {}
    for el in root.findall("record"):
        rule = RecordRule(
            el.get("name"),
            el.get("transaction"),
            el.get("select"),
            tuple(_field(f) for f in el.findall("field")),
            tuple(_list(x) for x in el.findall("list")),
        )
        _compile_all(rule.select, rule.fields, rule.lists, what)
        records[rule.name] = rule
    return records


def _compile_all(select: str, fields: Iterable[FieldRule], lists: Iterable[ListRule], what: str) -> None:
    for expr in (select, *(p for f in fields for p in f.paths)):
        compiled(expr, what)
    for lst in lists:
        _compile_all(lst.select, lst.fields, lst.lists, what)


_CACHE: dict[str, Any] = {}


def compiled(expr: str, what: str = "mapping file") -> Any:
    """An lxml XPath object for ``expr``, compiled once per process."""
    xp = _CACHE.get(expr)
    if xp is None:
        try:
            xp = etree.XPath(expr)
        except etree.XPathSyntaxError:
            raise MappingRuleError(f"{what}: invalid XPath") from None
        _CACHE[expr] = xp
    return xp


def load_overrides(
    data: bytes, base: dict[str, RecordRule], what: str = "override file"
) -> dict[str, dict[str, RecordRule]]:
    """Per-payer rule sets: ``{payer_id: {record name: RecordRule}}`` with the payer's fields replaced."""
    root = _parse(data, what)
    out: dict[str, dict[str, RecordRule]] = {}
    for payer in root.findall("payer"):
        payer_id = payer.get("id")
        if not payer_id:
            raise MappingRuleError(f"{what}: <payer> needs an id")
        rules = dict(out.get(payer_id, base))
        for el in payer.findall("field"):
            record = rules.get(el.get("record") or "")
            if record is None:
                raise MappingRuleError(f"{what}: payer {payer_id}: unknown record {el.get('record')!r}")
            rules[record.name] = _override(record, el.get("list"), _field(el), what)
        out[payer_id] = rules
    return out


def _override(record: RecordRule, list_name: str | None, new: FieldRule, what: str) -> RecordRule:
    def swap(fields: tuple[FieldRule, ...]) -> tuple[FieldRule, ...]:
        if not any(f.name == new.name for f in fields):
            raise MappingRuleError(f"{what}: unknown field {new.name!r}")
        return tuple(replace(new, many=f.many) if f.name == new.name else f for f in fields)

    _compile_all(".", (new,), (), what)
    if list_name is None:
        return replace(record, fields=swap(record.fields))
    lists = tuple(
        replace(lst, fields=swap(lst.fields)) if lst.name == list_name else lst for lst in record.lists
    )
    if lists == record.lists:
        raise MappingRuleError(f"{what}: unknown list {list_name!r}")
    return replace(record, lists=lists)


def _values(result: Any) -> list[str]:
    if isinstance(result, list):
        out = []
        for r in result:
            text = r if isinstance(r, str) else (r.text if hasattr(r, "text") else str(r))
            if text:
                out.append(str(text))
        return out
    if isinstance(result, str | float) and result not in ("", None):
        return [str(result)]
    return []


def extract(context: Any, fields: Iterable[FieldRule], lists: Iterable[ListRule]) -> dict[str, Any]:
    """Evaluate fields (first path with a value wins) and nested lists against one context node."""
    out: dict[str, Any] = {}
    for f in fields:
        values: list[str] = []
        for path in f.paths:
            values = _values(compiled(path)(context))
            if values:
                break
        out[f.name] = values if f.many else (values[0] if values else None)
    for lst in lists:
        out[lst.name] = [extract(node, lst.fields, lst.lists) for node in compiled(lst.select)(context)]
    return out


def extract_records(document: Any, rule: RecordRule) -> list[dict[str, Any]]:
    """One field dict per node the record's ``select`` finds in ``document``."""
    return [extract(node, rule.fields, rule.lists) for node in compiled(rule.select)(document)]
