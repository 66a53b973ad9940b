"""The compiled mapping paths (``mappings.xpath_lite`` over ``mappings.segtree``) against lxml's XPath
over ``transactions.document.to_xml`` (the reference): the same field values from every node, the same
field dicts and the same records, for every 271/278 sample, public and golden file, the shared public
samples when present, deterministic mutants of them and hypothesis-mutated interchanges."""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from mappings import engine
from mappings.compiled_rules import compiled_record, extract_records_fast
from mappings.compiled_rules import values_of as fast_values
from mappings.convert import d8
from mappings.engine import RecordRule, extract_records, load_rules
from mappings.mapper import (
    RECORD_FOR_MAP,
    MappingRules,
    default_rules,
    map_document,
    map_set,
    plain_by_repr,
    plain_texts,
    with_overrides,
)
from mappings.records import ControlRef
from mappings.segtree import Node, build_nodes
from mappings.xpath_lite import _substring, compile_xpath
from tests.test_engine_differential import CORPUS
from tests.test_fuzz import MUTATIONS
from tests.x12mutants import mutants
from transactions.document import build_tree, to_xml
from transactions.placed import Placed
from transactions.segment import Repetition, Segment
from transactions.validation import Options, ValidatedSet, validate_detailed

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = ROOT / "sample_edi" / "overrides" / "alternate-payers.xml"
RESPONSES = [p for p in CORPUS if b"ST*271*" in p.read_bytes() or b"ST*278*" in p.read_bytes()]


def _sets(data: bytes) -> Iterator[tuple[ValidatedSet, str, str]]:
    """Every readable 271/278 set of ``data`` with its ISA13 and GS06, whatever its verdict."""
    validation = validate_detailed(data, Options(keep_placed=True))
    by_offset = {s.report.offset: s for s in validation.sets}
    for ic in validation.report.interchanges:
        for g in ic.groups:
            for s in g.sets:
                vs = by_offset.get(s.offset)
                if vs is not None and s.map in RECORD_FOR_MAP and vs.placed:
                    yield vs, ic.control_number, g.control_number


def _both_trees(vs: ValidatedSet) -> tuple[Any, Node]:
    r = vs.report
    xml = to_xml(build_tree(vs.placed), set_id=r.set_id, control_number=r.control_number)
    return xml, build_nodes(vs.placed, set_id=r.set_id, control_number=r.control_number)


def _rule_paths(rules: dict[str, RecordRule]) -> list[str]:
    out: list[str] = []

    def walk(rule: Any) -> None:
        out.append(rule.select)
        out.extend(p for f in rule.fields for p in f.paths)
        for lst in rule.lists:
            walk(lst)

    for rule in rules.values():
        walk(rule)
    return sorted(set(out))


def _pairs(xml: Any, node: Node) -> Iterator[tuple[Any, Node]]:
    """The lxml element and the node at the same place, for every transaction, loop and segment."""
    yield xml, node
    if node.kind in ("transaction", "loop"):
        kids = node.children()
        assert [k.tag for k in xml] == [k.kind for k in kids]
        for x, n in zip(xml, kids, strict=True):
            yield from _pairs(x, n)


def _outcome(fn: Callable[[], list[Any]]) -> list[Any] | tuple[str, str]:
    """The records, or the error raised (lxml refuses control characters and lone surrogates)."""
    try:
        return fn()
    except ValueError as exc:
        return type(exc).__name__, str(exc)


def _reference(vs: ValidatedSet, isa: str, gs: str, rules: MappingRules) -> list[Any]:
    xml, _ = _both_trees(vs)
    r = vs.report
    return map_document(xml, r.map or "", ControlRef(isa, gs, r.control_number), rules)


def _assert_same_records(data: bytes, rules: MappingRules) -> None:
    for vs, isa, gs in _sets(data):
        fast = _outcome(lambda: map_set(vs, isa, gs, rules))  # noqa: B023 - called at once
        assert fast == _outcome(lambda: _reference(vs, isa, gs, rules))  # noqa: B023


DEFAULT_PATHS = _rule_paths(default_rules().default)


def test_every_default_rule_path_compiles() -> None:
    """Every path of the default rules is within the compiled subset (no set falls back to lxml)."""
    assert all(compile_xpath(p) is not None for p in DEFAULT_PATHS)
    assert all(compiled_record(r) is not None for r in default_rules().default.values())


def test_response_corpus_is_not_empty() -> None:
    """The corpus holds 271s and 278 responses from the samples and the public files."""
    names = " ".join(p.name for p in RESPONSES)
    assert len(RESPONSES) >= 30
    assert "271" in names
    assert "278" in names


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_every_rule_path_gives_the_same_values_from_every_node(path: Path) -> None:
    """Each default rule path, evaluated from every transaction, loop and segment, gives what lxml gives."""
    compiled = [(p, engine.compiled(p), compile_xpath(p)) for p in DEFAULT_PATHS]
    for vs, _, _ in _sets(path.read_bytes()):
        xml, root = _both_trees(vs)
        for x, n in _pairs(xml, root):
            for text, reference, fast in compiled:
                assert fast is not None
                expected = engine._values(reference(x))
                assert fast_values(fast(n)) == expected, text
                texts = getattr(fast, "texts", None)  # the node-free form of paths ending in ele
                assert texts is None or texts(n) == expected, text


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_every_response_gives_the_same_field_dicts_and_records(path: Path) -> None:
    """Field dicts and records of every set are those of the lxml path, with and without overrides."""
    rules = default_rules()
    for vs, _, _ in _sets(path.read_bytes()):
        xml, root = _both_trees(vs)
        for rule in rules.default.values():
            fast = compiled_record(rule)
            assert fast is not None
            assert extract_records_fast(root, fast) == extract_records(xml, rule)
    _assert_same_records(path.read_bytes(), rules)
    _assert_same_records(path.read_bytes(), with_overrides(rules, [(OVERRIDES.name, OVERRIDES.read_bytes())]))


@pytest.mark.parametrize("path", RESPONSES[::3], ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_mutants_of_every_third_response_give_the_same_records(path: Path) -> None:
    """Deterministic mutants (segments dropped, repeated, moved, values changed) map alike."""
    text = path.read_bytes().decode("latin-1")
    for mutant in mutants(text, seed=len(text), count=16):
        _assert_same_records(mutant.text.encode("latin-1"), default_rules())


@st.composite
def _mutated_responses(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(RESPONSES)).read_bytes()
    for _ in range(draw(st.integers(1, 4))):
        data = draw(st.sampled_from(MUTATIONS))(draw, data)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(_mutated_responses())
def test_hypothesis_mutated_responses_give_the_same_records(data: bytes) -> None:
    """Hypothesis-mutated 271/278 interchanges: the same records from both paths."""
    _assert_same_records(data, default_rules())


EXPRESSIONS = [
    "//seg[@id='NM1'][1]/ele[@id='NM103']",
    "(//seg[@id='NM1'])[2]/ele[@id='NM103']",
    "//loop[@id='2000C']/descendant::seg[@id='EB'][ele[@id='EB01']!='1']/ele[@id='EB03']",
    "count(//seg) + 1",
    "string(//seg[@id='BHT']/ele[@id='BHT03'])",
    "concat(/transaction/@id, '-', /transaction/@control)",
    "//seg[starts-with(@id, 'N')]/@id",
    "//ele[contains(., '0')][position() = 1]",
    "//seg[@id='DTP']/ele[@id='DTP03'][string-length(.) > 8]",
    "//comp/subele[substring(@id, string-length(@id) - 1) = '01']",
    "//loop[not(seg[@id='NM1'])]/@id",
    "//seg[@id='HL'][ele[@id='HL03'] = 22 or ele[@id='HL03'] = '20']/ele[@id='HL01']",
    "normalize-space(//seg[@id='NM1']/ele[@id='NM103'])",
    "//seg[@id='EB']/ancestor::loop[1]/@id",
    "//seg[@id='EB']/ancestor-or-self::*[2]/@id",
    "//seg[@id='REF']/../seg[1]/@id",
    "//loop[@id='2110C'][2]/seg/ele[1]",
    "//seg[@id='HCR']/parent::loop/parent::loop/@id",
    "//seg[ele = 'Y']/@id",
    "//*[@id='TRN02']",
    "/transaction//loop[.//seg[@id='AAA']]/@id",
    "number(//seg[@id='HL'][last()]/ele[@id='HL01'])",
    "//seg[@id='SE']/ele[@id='SE01'] > 10",
    "-//seg[@id='HL'][1]/ele[@id='HL01']",
    "concat(0.1 + 0.2, '|', 1.5 - 3, '|', 123456.789, '|', 1 - 0.9, '|', -0.000123)",
    "string(//seg[@id='EB']/ele[@id='EB07'] + 0.25)",
]


def test_expressions_beyond_the_rules_agree_or_fall_back() -> None:
    """Other XPath: where the subset compiles it, it gives lxml's values on every sample node;
    what it does not support (``position()``, ``last()``) is refused, never guessed."""
    compiled = [(e, engine.compiled(e), compile_xpath(e)) for e in EXPRESSIONS]
    assert [e for e, _, fast in compiled if fast is None] == [
        "//ele[contains(., '0')][position() = 1]",
        "number(//seg[@id='HL'][last()]/ele[@id='HL01'])",
    ]
    for path in RESPONSES[::4]:
        for vs, _, _ in _sets(path.read_bytes()):
            xml, root = _both_trees(vs)
            for x, n in list(_pairs(xml, root))[::3]:
                for text, reference, fast in compiled:
                    if fast is not None:
                        assert fast_values(fast(n)) == engine._values(reference(x)), text


def test_a_rule_set_with_unsupported_xpath_is_mapped_with_lxml() -> None:
    """A payer override the subset cannot compile makes that rule set fall back to lxml, same records."""
    rules = default_rules()
    override = (
        b"<overrides><payer id='ALTPAYER1'><field record='authorization' name='certification_number'"
        b" path=\"seg[@id='HCR'][position() = 1]/ele[@id='HCR02']\"/></payer></overrides>"
    )
    with_payer = with_overrides(rules, [("o.xml", override)])
    assert compiled_record(with_payer.payers["ALTPAYER1"]["authorization"]) is None
    data = (ROOT / "sample_edi" / "responses" / "278resp-ALTPAYER1-auth-in-REF-BB.x12").read_bytes()
    _assert_same_records(data, with_payer)
    assert any(map_set(vs, isa, gs, with_payer) for vs, isa, gs in _sets(data))


def test_load_rules_is_unchanged_by_compilation() -> None:
    """Compiling the default rules leaves the rule objects as loaded (compilation is a cache beside them)."""
    data = (ROOT / "mappings" / "rules" / "default.xml").read_bytes()
    assert load_rules(data) == default_rules().default


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789", min_size=8, max_size=10) | st.text(min_size=8, max_size=10))
def test_d8_reads_what_strptime_reads(value: str) -> None:
    """The direct read of eight ASCII digits gives what ``strptime('%Y%m%d')`` gives (or None)."""
    try:
        expected = datetime.strptime(value[:8], "%Y%m%d").date()  # noqa: DTZ007 - calendar dates
    except ValueError:
        expected = None
    assert d8(value) == expected


def test_text_xml_cannot_hold_goes_the_lxml_way_and_fails_as_before() -> None:
    """A set with a control character in a value is mapped through lxml, which refuses it (ValueError)
    exactly as the mapping always did; the same set without it maps through the nodes."""
    data = (ROOT / "sample_edi" / "responses" / "271-subscriber-active.x12").read_bytes()
    broken = data.replace(b"NM1*IL*1*", b"NM1*IL*1*\x01", 1)
    assert broken != data
    (vs, isa, gs), *_ = _sets(broken)
    with pytest.raises(ValueError, match="XML compatible"):
        map_set(vs, isa, gs, default_rules())
    (vs, isa, gs), *_ = _sets(data)
    assert map_set(vs, isa, gs, default_rules()) == _reference(vs, isa, gs, default_rules())


def test_expressions_lxml_fails_when_run_are_left_to_lxml() -> None:
    """A union or a path over something that is not a node-set is refused by the subset (lxml
    raises its own error for it at run time, which the fallback keeps)."""
    assert compile_xpath("'a' | seg") is None
    assert compile_xpath("string(seg)[1]") is None
    assert compile_xpath("@id | seg/@id") is not None


_BOUNDS = st.sampled_from([math.nan, math.inf, -math.inf, -0.5, 0.0, 0.5, 1.5, 2.5]) | st.floats(-3, 12)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="AB-0123", max_size=9), _BOUNDS, _BOUNDS | st.none())
def test_substring_cuts_what_lxml_cuts(text: str, start: float, length: float | None) -> None:
    """``substring`` with any start and length (NaN, infinities, halves rounded) gives lxml's answer."""
    args: dict[str, str | float] = (
        {"s": text, "a": start} if length is None else {"s": text, "a": start, "b": length}
    )
    expr = "substring($s, $a)" if length is None else "substring($s, $a, $b)"
    assert _substring(text, start, length) == etree.XPath(expr)(etree.Element("x"), **args)


@pytest.mark.parametrize("name", ["278resp-A1-certified.x12", "271-dependent-active.x12"])
def test_a_mapped_set_leaves_no_cyclic_garbage(name: str) -> None:
    """``map_set`` breaks its node tree's links when done: nothing of it waits for the cyclic collector."""
    rules = default_rules()
    sets = list(_sets((ROOT / "sample_edi" / "responses" / name).read_bytes()))
    for vs, isa, gs in sets:
        map_set(vs, isa, gs, rules)  # rules compiled (their closures) before counting
    gc.collect()
    gc.disable()
    try:
        records = [map_set(vs, isa, gs, rules) for vs, isa, gs in sets]
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert all(records)


_TEXT = st.text(alphabet=st.sampled_from("AZ09 *~:^'\"\\\t\x00\x7f\u00e9\u2028\udc80"), max_size=6)
_COMPOSITE = st.lists(_TEXT, min_size=2, max_size=3).map(tuple)
_ELEMENT = st.one_of(_TEXT, _COMPOSITE, st.lists(st.one_of(_TEXT, _COMPOSITE), max_size=3).map(Repetition))


@given(
    _TEXT,
    _TEXT,
    st.lists(st.tuples(st.sampled_from(["NM1", "EB", "X'\""]), st.lists(_ELEMENT, max_size=5)), max_size=4),
)
@example("271", "0001", [("EB", ['it\'s "quoted"'])])  # both quotes in one value: repr escapes one
@example("271", "0001", [("EB", ["it's", ("a", '"b"')])])  # both quotes, in different values: plain
@example("271", "0001", [("EB", [Repetition([("a", "b"), "c"])])])  # every string plain ASCII
def test_plain_check_by_joined_text_agrees_with_repr(set_id: str, control: str, segs: list[Any]) -> None:
    """plain_texts (one joined text) decides text XML can hold a set exactly as the repr test does."""
    placed = [
        Placed(Segment(tag, tuple(elements)), i, (), "", ()) for i, (tag, elements) in enumerate(segs, 1)
    ]
    assert plain_texts(set_id, control, placed) is plain_by_repr(set_id, control, placed)
