"""The shipped eligibility rule read straight from placed segments (``mappings.direct271``) against its
generated code over the node tree (``mappings.straight``, the reference): the same field dicts and
records for every 271 set of the samples, public and golden files, their deterministic mutants and
hypothesis-mutated interchanges; the direct reader stands only for the shipped rule, and a set outside
its assumption (a loop inside a loop of its id) goes the general way."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from mappings.direct271 import (
    ELIGIBILITY,
    direct_record,
    eligibility_fields,
    eligibility_records,
    shipped_eligibility,
)
from mappings.engine import load_rules
from mappings.mapper import _SetForms, default_rules, map_set, with_overrides
from mappings.records import ControlRef
from tests.test_map_differential import OVERRIDES, RESPONSES, _mutated_responses, _sets
from tests.x12mutants import mutants
from transactions.findings import SetReport
from transactions.placed import Placed
from transactions.segment import Segment
from transactions.validation import ValidatedSet

RULE = default_rules().default["eligibility"]
RESPONSES_271 = [p for p in RESPONSES if b"ST*271*" in p.read_bytes()]


def reference_records(vs: ValidatedSet, isa: str, gs: str, kind: str = "eligibility") -> list[object]:
    """What ``map_set`` gave before the direct readers: the shipped ``kind`` rule's generated code,
    its dicts made records (the 278 reader's tests use it too)."""
    from mappings.mapper import _build  # noqa: PLC0415 - the private builder, for the reference only

    forms = _SetForms(vs)
    try:
        fields = forms.extract_straight(default_rules().default[kind])
    finally:
        forms.release()
    control = ControlRef(isa, gs, vs.report.control_number)
    return [_build(kind, f, control) for f in fields]


def _assert_direct_alike(data: bytes) -> int:
    """Every mapped 271 set of ``data``: the same dicts (placed segments as held, and as a tuple of
    :class:`Placed`, as the reference engine gives them) and records; how many sets were compared."""
    compared = 0
    for vs, isa, gs in _sets(data):
        if vs.report.map != "271" or not _SetForms(vs).plain():
            continue
        expected = _SetForms(vs).extract_straight(RULE)
        assert eligibility_fields(vs.placed, vs.report.set_id) == expected
        assert eligibility_fields(tuple(vs.placed), vs.report.set_id) == expected
        reference = reference_records(vs, isa, gs)
        assert map_set(vs, isa, gs) == reference
        assert map_set(vs, isa, gs, direct=False) == reference
        control = ControlRef(isa, gs, vs.report.control_number)
        assert eligibility_records(tuple(vs.placed), vs.report.set_id, control) == reference
        compared += 1
    return compared


def test_the_shipped_rule_has_a_direct_reader_and_no_other_rule_does() -> None:
    """The loaded default eligibility rule is read directly; the 278 rule, an edited eligibility rule
    and a payer override differing from it are not."""
    assert direct_record(RULE) is ELIGIBILITY
    assert shipped_eligibility() == RULE
    assert direct_record(default_rules().default["authorization"]) is None
    edited = replace(RULE, fields=RULE.fields[1:])
    assert direct_record(edited) is None
    overrides = with_overrides(default_rules(), [(OVERRIDES.name, OVERRIDES.read_bytes())])
    for payer in overrides.payers.values():
        rule = payer["eligibility"]
        assert (direct_record(rule) is not None) == (rule == RULE)


def test_a_rule_loaded_afresh_equal_to_the_shipped_one_is_read_directly() -> None:
    """Equality, not identity, decides: the same XML loaded again gets the direct reader."""
    data = (Path(__file__).resolve().parent.parent / "mappings" / "rules" / "default.xml").read_bytes()
    again = load_rules(data, "again")["eligibility"]
    assert again is not RULE
    assert direct_record(again) is ELIGIBILITY


@pytest.mark.parametrize("path", RESPONSES_271, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_every_271_gives_the_same_fields_and_records(path: Path) -> None:
    """Every 271 set of every sample, public and golden file: the generated code's dicts and records."""
    _assert_direct_alike(path.read_bytes())


def test_the_271_corpus_reaches_the_direct_reader() -> None:
    """The comparisons above are not vacuous: the corpus's 271s give dozens of mapped sets."""
    assert sum(_assert_direct_alike(p.read_bytes()) for p in RESPONSES_271) >= 20


@pytest.mark.parametrize("path", RESPONSES_271, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_mutants_of_every_271_give_the_same_fields(path: Path) -> None:
    """Deterministic mutants (segments dropped, repeated, moved, values changed) read alike."""
    text = path.read_bytes().decode("latin-1")
    for mutant in mutants(text, seed=len(text) + 7, count=16):
        _assert_direct_alike(mutant.text.encode("latin-1"))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(_mutated_responses())
def test_hypothesis_mutated_responses_give_the_same_fields(data: bytes) -> None:
    """Hypothesis-mutated interchanges (271s among them): the same dicts and records."""
    _assert_direct_alike(data)


def _placed(rows: list[tuple[str, tuple[str, ...], tuple[str, ...], bool]]) -> tuple[Placed, ...]:
    return tuple(
        Placed(Segment(tag, elements), i, loops, tag, (), first)
        for i, (tag, elements, loops, first) in enumerate(rows, 1)
    )


NESTED = [
    ("ST", ("271", "1"), (), True),
    ("HL", ("1", "", "20", "1"), ("2000A",), True),
    ("NM1", ("PR", "2", "PAYER", "", "", "", "", "PI", "P1"), ("2000A", "2100A"), True),
    ("HL", ("3", "1", "22", "0"), ("2000A", "2000C"), True),
    ("NM1", ("IL", "1", "OUTER", "", "", "", "", "MI", "M1"), ("2000A", "2000C", "2100C"), True),
    ("HL", ("4", "3", "22", "0"), ("2000A", "2000C", "2000C"), True),
    ("NM1", ("IL", "1", "INNER", "", "", "", "", "MI", "M2"), ("2000A", "2000C", "2000C", "2100C"), True),
    ("SE", ("7", "1"), (), False),
]


def test_a_loop_inside_a_loop_of_its_id_is_left_to_the_general_way() -> None:
    """Placed segments with a 2000C inside a 2000C (no 271 map nests so): no direct answer, and
    ``_SetForms.extract`` gives the generated code's dicts."""
    placed = _placed(NESTED)
    assert eligibility_fields(placed, "271") is None
    report = SetReport("271", "1", "005010X279A1", "A", (), (), "271", 0, len(placed))
    vs = ValidatedSet(report, tuple(p.segment for p in placed), placed)
    found = _SetForms(vs).extract(RULE)
    assert found == _SetForms(vs).extract_straight(RULE)
    assert [f["member_id"] for f in found] == ["M1", "M1"]  # the first 2000C up the chain: the outer
    flat = [row for row in NESTED if len(row[2]) < 3 or row[2][2] != "2000C"]
    assert eligibility_fields(_placed(flat), "271") is not None
