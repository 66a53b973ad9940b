"""Map validated response transaction sets into records, with per-payer rule overrides."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from mappings.authorization import authorization_record
from mappings.compiled_rules import PerRule, compiled_record, extract_records_fast
from mappings.direct271 import DirectReader
from mappings.direct271 import direct_record as direct_eligibility
from mappings.direct278 import direct_record as direct_authorization
from mappings.eligibility import eligibility_result
from mappings.engine import RecordRule, extract_records, load_overrides, load_rules
from mappings.records import AuthorizationRecord, ControlRef, EligibilityResult
from mappings.segtree import Node, build_nodes, release
from mappings.straight import straight_record
from transactions.document import build_tree, to_xml
from transactions.findings import GroupReport, InterchangeReport, SetReport, set_validation
from transactions.placed import Placed, PlacedSegments
from transactions.segment import Element
from transactions.validation import ValidatedSet, Validation

Record = EligibilityResult | AuthorizationRecord
RECORD_FOR_MAP = {"271": "eligibility", "278resp": "authorization"}


@dataclass(frozen=True)
class MappingRules:
    """Default record rules plus per-payer replacements (by payer id)."""

    default: dict[str, RecordRule]
    payers: dict[str, dict[str, RecordRule]] = field(default_factory=dict)

    def for_payer(self, payer_id: str | None) -> dict[str, RecordRule]:
        return self.payers.get(payer_id or "", self.default)


@functools.cache
def default_rules() -> MappingRules:
    data = files("mappings").joinpath("rules", "default.xml").read_bytes()
    return MappingRules(load_rules(data, "mappings/rules/default.xml"))


def with_overrides(rules: MappingRules, documents: Iterable[tuple[str, bytes]]) -> MappingRules:
    """``rules`` plus the payer overrides in each (name, xml bytes) document."""
    payers = dict(rules.payers)
    for name, data in documents:
        payers.update(load_overrides(data, rules.default, name))
    return MappingRules(rules.default, payers)


def _build(rule_name: str, fields: dict[str, Any], control: ControlRef) -> Record:
    if rule_name == "eligibility":
        return eligibility_result(fields, control)
    return authorization_record(fields, control)


def map_document(
    document: Any, map_abbr: str, control: ControlRef, rules: MappingRules | None = None
) -> list[Record]:
    """Records of one response transaction set given its XML form (``transactions.document.to_xml``)."""
    rule_name = RECORD_FOR_MAP.get(map_abbr)
    if rule_name is None:
        return []
    rules = rules or default_rules()
    base = rules.default[rule_name]
    field_sets = extract_records(document, base)
    payer_id = field_sets[0].get("payer_id") if field_sets else None
    payer_rules = rules.for_payer(payer_id)
    if payer_rules is not rules.default:
        field_sets = extract_records(document, payer_rules[rule_name])
    return [_build(rule_name, f, control) for f in field_sets]


def _direct(rule: RecordRule) -> DirectReader | None:
    return direct_eligibility(rule) or direct_authorization(rule)


direct_record = PerRule(_direct)
"""The reader straight from placed segments standing for ``rule`` (``mappings.direct271`` for the
shipped eligibility rule, ``mappings.direct278`` for the shipped authorization rule); None for any
other rule, which goes the general way."""


class _SetForms:
    """One set's node tree and (only when a rule set needs lxml) its XML form, each built once."""

    def __init__(self, validated: ValidatedSet) -> None:
        self.validated = validated
        self._nodes: Node | None = None
        self._xml: Any = None
        self._plain: bool | None = None

    def nodes(self) -> Node:
        if self._nodes is None:
            r = self.validated.report
            self._nodes = build_nodes(self.validated.placed, set_id=r.set_id, control_number=r.control_number)
        return self._nodes

    def release(self) -> None:
        """The node tree's links broken (``mappings.segtree.release``): it is not read again."""
        if self._nodes is not None:
            release(self._nodes)
            self._nodes = None

    def xml(self) -> Any:
        if self._xml is None:
            r = self.validated.report
            tree = build_tree(self.validated.placed)
            self._xml = to_xml(tree, set_id=r.set_id, control_number=r.control_number)
        return self._xml

    def extract(self, rule: RecordRule) -> list[dict[str, Any]]:
        """The rule's field dicts: the shipped eligibility and authorization rules read straight
        from the placed segments (``mappings.direct271``, ``mappings.direct278``), else
        straight-line code over the nodes (``mappings.straight``) when the rule set compiles, else
        lxml over the XML form."""
        if self.plain() and (direct := direct_record(rule)) is not None:
            found = direct.fields(self.validated.placed, self.validated.report.set_id)
            if found is not None:
                return found
        return self.extract_straight(rule)

    def records(self, rule: RecordRule, control: ControlRef) -> Sequence[Record] | None:
        """The rule's records straight from the placed segments when a direct reader stands for it
        (``mappings.direct271``, ``mappings.direct278``), else None."""
        if not self.plain() or (direct := direct_record(rule)) is None:
            return None
        return direct.records(self.validated.placed, self.validated.report.set_id, control)

    def extract_straight(self, rule: RecordRule) -> list[dict[str, Any]]:
        """:meth:`extract` without the direct readers: the reference they are tested against."""
        fast = straight_record(rule) if self.plain() else None
        if fast is None:
            return extract_records(self.xml(), rule)
        return fast.extract(self.nodes())

    def extract_by_steps(self, rule: RecordRule) -> list[dict[str, Any]]:
        """The same through ``mappings.compiled_rules`` (XPath-like steps per field): the reference
        the straight-line code is tested against."""
        fast = compiled_record(rule) if self.plain() else None
        if fast is None:
            return extract_records(self.xml(), rule)
        return extract_records_fast(self.nodes(), fast)

    def plain(self) -> bool:
        """Whether every id and value is printable ASCII (``repr`` escapes nothing), text XML always
        holds. Other text goes the lxml way, which refuses control characters and lone surrogates
        (ValueError) as it always has. The reader answers it for most sets as it reads their window
        (``ValidatedSet.plain``, ``transactions.reader.plain_window``); only the others are joined
        here."""
        if self._plain is None:
            v = self.validated
            if v.plain and v.placed.__class__ is PlacedSegments:  # its segments are the set's, as read
                self._plain = True  # the reader found the windows they came from plain
            else:
                r = v.report
                self._plain = plain_texts(r.set_id, r.control_number, v.placed)
        return self._plain


def plain_by_repr(set_id: str, control_number: str, placed: Sequence[Placed]) -> bool:
    """The reference form of :func:`plain_texts`: nothing in the set's ``repr`` is escaped or
    non-ASCII. Kept as the fallback and for the differential test."""
    text = repr((set_id, control_number, [(p.segment.tag, p.segment.elements) for p in placed]))
    return text.isascii() and "\\" not in text


def _add_strings(out: list[str], elements: tuple[Element, ...]) -> None:
    """Every string of ``elements`` (components and occurrences included) appended to ``out``."""
    for e in elements:
        if e.__class__ is str:
            out.append(e)  # a plain value
            continue
        for part in e:
            if part.__class__ is str:
                out.append(part)  # a component or a plain occurrence
            else:
                out.extend(part)  # a composite occurrence of a repeated element


def plain_texts(set_id: str, control_number: str, placed: Sequence[Placed]) -> bool:
    """:func:`plain_by_repr`'s answer from one joined text instead of the set's ``repr``: this runs
    for every mapped set, and ``repr`` of every segment cost as much as a tenth of building the node
    tree. ``repr`` escapes a string exactly when it holds a backslash, a character that is not
    printable, or both quote characters; the first two are properties of each character, so the
    joined text answers them; only when the joined text holds both quotes (one string may) is the
    ``repr`` itself asked. The compiled engine's placed segments are read without making a
    :class:`Placed` per segment."""
    parts = [set_id, control_number]
    segments = placed.placed_segments() if placed.__class__ is PlacedSegments else [p.segment for p in placed]
    for segment in segments:
        parts.append(segment.tag)
        try:
            parts.append("".join(segment.elements))  # type: ignore[arg-type]  # TypeError: a composite
        except TypeError:
            _add_strings(parts, segment.elements)
    text = "".join(parts)
    if not (text.isascii() and text.isprintable()) or "\\" in text:
        return False
    if "'" in text and '"' in text:
        return plain_by_repr(set_id, control_number, placed)
    return True


def map_set(
    validated: ValidatedSet,
    interchange: str,
    group: str,
    rules: MappingRules | None = None,
    *,
    direct: bool = True,
) -> list[Record]:
    """Records of a validated set (it must have been validated with ``keep_placed=True``): the same
    records as ``map_document`` over the set's XML form, read straight from the placed segments for
    the shipped eligibility and authorization rules (``mappings.direct271``,
    ``mappings.direct278``), else from light nodes with the compiled rules when every path of the
    rule set compiles (``mappings.xpath_lite``). ``direct=False`` leaves the direct readers out
    (the reference they are compared with, in tests and benches)."""
    report = validated.report
    rule_name = RECORD_FOR_MAP.get(report.map or "")
    if rule_name is None or not validated.placed:
        return []
    rules = rules or default_rules()
    control = ControlRef(interchange, group, report.control_number)
    forms = _SetForms(validated)
    try:
        made = forms.records(rules.default[rule_name], control) if direct else None
        if made is not None:
            payer_rules = rules.for_payer(made[0].payer_id if made else None)
            if payer_rules is rules.default:
                return list(made)
            field_sets = forms.extract(payer_rules[rule_name])
        else:
            extract = forms.extract if direct else forms.extract_straight
            field_sets = extract(rules.default[rule_name])
            payer_rules = rules.for_payer(field_sets[0].get("payer_id") if field_sets else None)
            if payer_rules is not rules.default:
                field_sets = extract(payer_rules[rule_name])
    finally:
        forms.release()
    return [_build(rule_name, f, control) for f in field_sets]


@dataclass(frozen=True)
class MappedSet:
    """The records read from one response set, beside its acknowledgment verdict (``validation``:
    accepted, accepted_with_errors or rejected) and the report that explains it."""

    interchange: InterchangeReport
    group: GroupReport
    report: SetReport
    validation: str
    records: tuple[Record, ...]


def map_validation(validation: Validation, rules: MappingRules | None = None) -> list[MappedSet]:
    """Every readable 271/278 response set of a validated input, mapped whatever its 999 verdict
    (a payer's approval, denial or pend is never thrown away for an IG error). Interchanges and
    groups not addressed to us are left out: nothing from them is applied."""
    out: list[MappedSet] = []
    by_offset = {s.report.offset: s for s in validation.sets}
    for ic in validation.report.interchanges:
        if ic.misaddressed:
            continue
        for g in ic.groups:
            for s in g.sets:
                vs = by_offset.get(s.offset)
                if vs is None or s.map not in RECORD_FOR_MAP:
                    continue
                records = tuple(map_set(vs, ic.control_number, g.control_number, rules))
                out.append(MappedSet(ic, g, s, set_validation(ic, g, s), records))
    return out
