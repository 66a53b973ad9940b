"""The straight-line mapping code (``mappings.straight``) against the XPath-step closures
(``mappings.compiled_rules``) and lxml (``mappings.engine``), the references: the same field dicts for
every rule (default, payer overrides, and paths chosen to reach each compiled shape and the per-path
fallback) from every 271/278 set of the samples, public and golden files, their deterministic mutants
and hypothesis-mutated interchanges; and the remembered loop transitions of ``segtree.build_nodes``
against the stack walk they replace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.compiled_rules import compiled_record, extract_records_fast
from mappings.engine import FieldRule, ListRule, RecordRule, extract_records
from mappings.mapper import default_rules, map_set, with_overrides
from mappings.segtree import Node, build_nodes, build_nodes_by_stack
from mappings.straight import fallbacks, straight_record
from tests.test_map_differential import (
    OVERRIDES,
    RESPONSES,
    _assert_same_records,
    _both_trees,
    _mutated_responses,
    _sets,
)
from tests.x12mutants import mutants
from transactions.placed import Placed
from transactions.segment import Repetition, Segment
from transactions.validation import ValidatedSet

# Paths beyond the default rules: every shape the straight code compiles, and some it leaves to
# xpath_lite (a position, an attribute test, a function) which must then give the same values.
EXTRA_FIELDS = (
    "seg[@id='HL']/ele[@id='HL01' or @id='HL03']",
    "../seg[@id='HL']/ele[@id='HL02']",
    "parent::loop/seg[@id='NM1']/ele[@id='NM103']",
    "parent::loop[@id='2000C' or @id='2000D']/loop/seg[@id='NM1']/ele[@id='NM109']",
    "ancestor::loop/seg[@id='HL']/ele[@id='HL01']",
    "ancestor-or-self::loop/loop[@id='2100C' or @id='2100D']/seg[@id='NM1']/ele[@id='NM103']",
    "descendant::seg[@id='EB']/ele[@id='EB01']",
    "self::loop/descendant::seg[@id='DTP'][ele[@id='DTP01'] != '291']/ele[@id='DTP03']",
    "loop/loop/seg[@id='EB'][ele[@id='EB01'] = '1' and not(ele[@id='EB03'] = '30')]/ele[@id='EB03']",
    "loop[seg[@id='NM1']]/seg[@id='NM1']/ele[@id='NM101']",
    "loop[not(.//loop[@id='2110C'])]/seg[@id='NM1']/ele[@id='NM103']",
    "seg[@id='TRN'][not(ancestor::loop[@id='2000D'])]/ele[@id='TRN02']",
    "(//loop[@id='2110C' or @id='2110D'])[1]/seg[@id='EB']/ele[@id='EB01']",
    "//seg[@id='NM1'][ele[@id='NM101'] = 'IL' or ele[@id='NM101'] = '03']/ele[@id='NM103']",
    "//loop[@id='2100C']/../seg[@id='HL']/ele[@id='HL01']",
    "/transaction/seg[@id='ST']/ele[@id='ST02']",
    "//seg[@id='EB']/comp[@id='EB13']/subele[@id='EB13-02' or @id='EB13-01']",
    "//seg[@id='HI']/comp/subele[substring(@id, string-length(@id) - 1) = '01']",
    "//seg[@id='SV1']/comp[@id='SV101']/subele[@id='SV101-03' or @id='SV101-04']",
    "ele[@id='HL01']",
    "../@id",
    # left to xpath_lite:
    "seg[@id='HL'][1]/ele[@id='HL01']",
    "//seg[starts-with(@id, 'N')]/ele[@id='NM103']",
    "string(//seg[@id='BHT']/ele[@id='BHT03'])",
    "//ele[@id='NM103']",
    "@id",
)
EXTRA_SELECTS = (
    "//loop",
    "//loop[@id='2000C' or @id='2000D' or @id='2000E' or @id='2000F'] | /transaction",
    "//seg[@id='NM1' or @id='EB'] | //loop[@id='2100B']",
    "/transaction/loop/loop",
    "//seg[@id='HL']/..",
    "//loop[count(seg) > 2]",  # left to xpath_lite
)
LEFT_TO_XPATH_LITE = {
    "seg[@id='HL'][1]/ele[@id='HL01']",
    "//seg[starts-with(@id, 'N')]/ele[@id='NM103']",
    "string(//seg[@id='BHT']/ele[@id='BHT03'])",
    "//ele[@id='NM103']",
    "@id",
    "//loop[count(seg) > 2]",
}


def _extra_rules() -> list[RecordRule]:
    """One record rule per extra select, every extra path as a field (alone, and as fallbacks)."""
    fields = tuple(FieldRule(f"f{i}", (p,), many=i % 2 == 0) for i, p in enumerate(EXTRA_FIELDS))
    chained = FieldRule("chained", ("seg[@id='ZZZ']/ele[@id='ZZZ01']", *EXTRA_FIELDS[::-1]))
    inner = ListRule("segs", "seg", (FieldRule("first", ("ele[@id='NM103' or @id='EB01' or @id='HL01']",)),))
    nested = ListRule("inner", "loop | seg[@id='HL']", fields[:6], (inner,))
    return [
        RecordRule(f"extra{k}", "any", select, (*fields, chained), (nested,))
        for k, select in enumerate(EXTRA_SELECTS)
    ]


EXTRA_RULES = _extra_rules()


def _rules() -> list[RecordRule]:
    rules = with_overrides(default_rules(), [(OVERRIDES.name, OVERRIDES.read_bytes())])
    payer_rules = [r for payer in rules.payers.values() for r in payer.values()]
    return [*rules.default.values(), *payer_rules, *EXTRA_RULES]


RULES = _rules()


def _trees(vs: ValidatedSet) -> Iterator[Node]:
    """A fresh node tree per call (the caches a run leaves on nodes must not change the answer)."""
    r = vs.report
    while True:
        yield build_nodes(vs.placed, set_id=r.set_id, control_number=r.control_number)


def _assert_same_fields(data: bytes, *, with_lxml: bool = False) -> None:
    for vs, _, _ in _sets(data):
        trees = _trees(vs)
        for rule in RULES:
            straight, stepped = straight_record(rule), compiled_record(rule)
            assert straight is not None
            assert stepped is not None
            expected = extract_records_fast(next(trees), stepped)
            assert straight.extract(next(trees)) == expected, rule.name
            if with_lxml:
                xml, _ = _both_trees(vs)
                assert extract_records(xml, rule) == expected, rule.name


def test_the_default_rules_compile_whole_into_straight_code() -> None:
    """No path of the default rules or the sample overrides is left to xpath_lite."""
    rules = with_overrides(default_rules(), [(OVERRIDES.name, OVERRIDES.read_bytes())])
    for rule in [*rules.default.values(), *(r for p in rules.payers.values() for r in p.values())]:
        assert straight_record(rule) is not None
        assert fallbacks(rule) == (), rule.name


def test_paths_outside_the_subset_are_left_to_xpath_lite_and_listed() -> None:
    """The extra rules' positional, function and attribute paths are the (only) ones left over."""
    left = {p for rule in EXTRA_RULES for p in fallbacks(rule)}
    assert left == LEFT_TO_XPATH_LITE


def test_a_rule_set_xpath_lite_refuses_is_not_compiled() -> None:
    """A rule with XPath outside xpath_lite (``position()``) gets no straight code: lxml maps it."""
    rule = RecordRule("r", "278resp", "//loop[position() = 1]", (), ())
    assert straight_record(rule) is None


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_every_response_gives_the_same_field_dicts(path: Path) -> None:
    """Every rule over every set of every sample, public and golden response: the field dicts of the
    XPath-step closures and of lxml."""
    _assert_same_fields(path.read_bytes(), with_lxml=True)


@pytest.mark.parametrize("path", RESPONSES[1::3], ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_mutants_give_the_same_field_dicts(path: Path) -> None:
    """Deterministic mutants (segments dropped, repeated, moved, values changed) read alike."""
    text = path.read_bytes().decode("latin-1")
    for mutant in mutants(text, seed=len(text) + 1, count=12):
        _assert_same_fields(mutant.text.encode("latin-1"))


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(_mutated_responses())
def test_hypothesis_mutated_responses_give_the_same_field_dicts_and_records(data: bytes) -> None:
    """Hypothesis-mutated interchanges: the same field dicts, and map_set's records are lxml's."""
    _assert_same_fields(data)
    _assert_same_records(data, default_rules())


def test_an_override_outside_the_subset_maps_alike_through_its_fallback() -> None:
    """A payer override with a positional predicate keeps its xpath_lite closure for that field only,
    and the records are those of lxml."""
    override = (
        b"<overrides><payer id='ALTPAYER1'><field record='authorization' name='certification_number'"
        b" path=\"seg[@id='REF'][ele[@id='REF01']='BB'][1]/ele[@id='REF02']\"/></payer></overrides>"
    )
    rules = with_overrides(default_rules(), [("o.xml", override)])
    rule = rules.payers["ALTPAYER1"]["authorization"]
    assert fallbacks(rule) == ("seg[@id='REF'][ele[@id='REF01']='BB'][1]/ele[@id='REF02']",)
    responses = Path(__file__).resolve().parent.parent / "sample_edi" / "responses"
    data = responses / "278resp-ALTPAYER1-auth-in-REF-BB.x12"
    _assert_same_records(data.read_bytes(), rules)
    records = [r for vs, isa, gs in _sets(data.read_bytes()) for r in map_set(vs, isa, gs, rules)]
    assert records
    assert all(getattr(r, "certification_number", None) for r in records)


def _shape(node: Node) -> Any:
    kids = node.kids if node.kind != "seg" else []
    return (node.kind, node.id, node.key, node.segment, [_shape(k) for k in kids or ()])


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_remembered_loop_transitions_build_the_stack_walks_tree(path: Path) -> None:
    """build_nodes (transitions worked out once) gives the tree the stack walk gives, mutants too."""
    text = path.read_bytes().decode("latin-1")
    for data in [path.read_bytes(), *(m.text.encode("latin-1") for m in mutants(text, seed=5, count=6))]:
        for vs, _, _ in _sets(data):
            r = vs.report
            fast = build_nodes(vs.placed, set_id=r.set_id, control_number=r.control_number)
            slow = build_nodes_by_stack(vs.placed, set_id=r.set_id, control_number=r.control_number)
            assert _shape(fast) == _shape(slow)


_VALUE = st.sampled_from(["", "A", "B", "BB", "1"])
_COMPOSITE = st.lists(_VALUE, min_size=1, max_size=4).map(tuple)
_ELEMENT = st.one_of(_VALUE, _COMPOSITE, st.lists(st.one_of(_VALUE, _COMPOSITE), max_size=3).map(Repetition))
_SEGMENTS = st.lists(
    st.tuples(
        st.sampled_from(["SV1", "HI", "REF"]),
        st.lists(_ELEMENT, max_size=4),
        st.sampled_from([(), ("2000E",), ("2000E", "2000F")]),
        st.booleans(),
    ),
    max_size=8,
)
ELEMENT_RULE = RecordRule(
    "elements",
    "any",
    "//loop[@id='2000E' or @id='2000F'] | /transaction",
    tuple(
        FieldRule(f"{name}{many}", (path,), many=bool(many))
        for many in (0, 1)
        for name, path in (
            ("plain", "seg[@id='SV1']/ele[@id='SV102']"),
            ("two", "seg[@id='REF']/ele[@id='REF01' or @id='REF03']"),
            ("eq", "seg[@id='REF'][ele[@id='REF01'] = 'BB']/ele[@id='REF02']"),
            ("ne", "seg[@id='REF'][ele[@id='REF02'] != 'A']/ele[@id='REF01']"),
            ("either", "seg[@id='REF'][ele[@id='REF01' or @id='REF02'] = 'B']/ele[@id='REF03']"),
            ("oneof", "seg[@id='REF'][ele[@id='REF01'] = 'A' or ele[@id='REF01'] = 'B']/ele[@id='REF02']"),
            ("mixed", "seg[@id='REF'][ele[@id='REF01'] = 'A' or ele[@id='REF02'] = 'B']/ele[@id='REF03']"),
            ("empty", "seg[@id='REF'][ele[@id='REF01'] = '']/ele[@id='REF02']"),
            ("sub", "seg[@id='SV1']/comp[@id='SV101']/subele[@id='SV101-02' or @id='SV101-03']"),
            ("suffix", "seg[@id='HI']/comp/subele[substring(@id, string-length(@id) - 1) = '02']"),
            ("deep", "loop/seg[@id='SV1']/ele[@id='SV101']"),
        )
    ),
    (ListRule("segs", "seg", (FieldRule("first", ("ele[@id='SV101' or @id='REF02']",)),)),),
)


@settings(max_examples=300, deadline=None)
@given(_SEGMENTS)
def test_element_shapes_read_alike(segments: list[Any]) -> None:
    """Plain, empty, composite and repeated elements, in any loops: the straight code reads the
    values, comparisons and components the XPath-step closures read."""
    placed = [
        Placed(Segment(tag, tuple(elements)), i, loops, "", (), starts)
        for i, (tag, elements, loops, starts) in enumerate(segments, 1)
    ]
    straight, stepped = straight_record(ELEMENT_RULE), compiled_record(ELEMENT_RULE)
    assert straight is not None
    assert stepped is not None
    trees = [build_nodes(placed, set_id="278", control_number="0001") for _ in range(2)]
    assert straight.extract(trees[0]) == extract_records_fast(trees[1], stepped)
