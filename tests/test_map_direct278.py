"""The shipped authorization rule read straight from placed segments (``mappings.direct278``) against
its generated code over the node tree (``mappings.straight``, the reference): the same field dicts and
records for every 278 response set of the samples, public and golden files, their deterministic
mutants and hypothesis-mutated interchanges; the direct reader stands only for the shipped rule, a set
outside its assumption (a loop inside a loop of its id) goes the general way, and a reader that got
one field wrong is caught."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from mappings import direct278
from mappings.direct271 import direct_record as direct_eligibility
from mappings.direct278 import (
    AUTHORIZATION,
    authorization_fields,
    authorization_records,
    direct_record,
    shipped_authorization,
)
from mappings.engine import load_rules
from mappings.mapper import _SetForms, default_rules, map_set, with_overrides
from mappings.mapper import direct_record as direct_any
from mappings.records import ControlRef
from tests.test_map_differential import OVERRIDES, RESPONSES, _mutated_responses, _sets
from tests.test_map_direct import reference_records
from tests.x12mutants import mutants
from transactions.findings import SetReport
from transactions.placed import Placed
from transactions.segment import Segment
from transactions.validation import ValidatedSet

RULE = default_rules().default["authorization"]
RESPONSES_278 = [p for p in RESPONSES if b"ST*278*" in p.read_bytes()]


def _assert_direct_alike(data: bytes) -> int:
    """Every mapped 278 response set of ``data``: the same dicts (placed segments as held, and as a
    tuple of :class:`Placed`) and records; how many sets were compared."""
    compared = 0
    for vs, isa, gs in _sets(data):
        if vs.report.map != "278resp" or not _SetForms(vs).plain():
            continue
        expected = _SetForms(vs).extract_straight(RULE)
        assert authorization_fields(vs.placed, vs.report.set_id) == expected
        assert authorization_fields(tuple(vs.placed), vs.report.set_id) == expected
        reference = reference_records(vs, isa, gs, "authorization")
        assert map_set(vs, isa, gs) == reference
        assert map_set(vs, isa, gs, direct=False) == reference
        control = ControlRef(isa, gs, vs.report.control_number)
        assert authorization_records(tuple(vs.placed), vs.report.set_id, control) == reference
        compared += 1
    return compared


def test_the_shipped_rule_has_a_direct_reader_and_no_other_rule_does() -> None:
    """The loaded default authorization rule is read directly; the 271 rule, an edited authorization
    rule and a payer override differing from it are not; the mapper's dispatch finds both readers."""
    assert direct_record(RULE) is AUTHORIZATION
    assert direct_any(RULE) is AUTHORIZATION
    assert direct_eligibility(RULE) is None
    assert shipped_authorization() == RULE
    assert direct_record(default_rules().default["eligibility"]) is None
    assert direct_any(default_rules().default["eligibility"]) is not None
    edited = replace(RULE, fields=RULE.fields[1:])
    assert direct_record(edited) is None
    assert direct_any(edited) is None
    overrides = with_overrides(default_rules(), [(OVERRIDES.name, OVERRIDES.read_bytes())])
    for payer in overrides.payers.values():
        rule = payer["authorization"]
        assert (direct_record(rule) is not None) == (rule == RULE)


def test_a_rule_loaded_afresh_equal_to_the_shipped_one_is_read_directly() -> None:
    """Equality, not identity, decides: the same XML loaded again gets the direct reader."""
    data = (Path(__file__).resolve().parent.parent / "mappings" / "rules" / "default.xml").read_bytes()
    again = load_rules(data, "again")["authorization"]
    assert again is not RULE
    assert direct_record(again) is AUTHORIZATION


@pytest.mark.parametrize("path", RESPONSES_278, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_every_278_response_gives_the_same_fields_and_records(path: Path) -> None:
    """Every 278 response set of every sample, public and golden file: the generated code's dicts
    and records."""
    _assert_direct_alike(path.read_bytes())


def test_the_278_corpus_reaches_the_direct_reader() -> None:
    """The comparisons above are not vacuous: the corpus's 278 responses give many mapped sets, with
    service lines, rejections and documentation requests among them."""
    assert sum(_assert_direct_alike(p.read_bytes()) for p in RESPONSES_278) >= 10
    seen = {"services": 0, "rejections": 0, "documentation": 0}
    for path in RESPONSES_278:
        for f in _direct_fields(path.read_bytes()):
            seen["services"] += len(f["services"])
            seen["rejections"] += len(f["rejections"]) + sum(len(s["rejections"]) for s in f["services"])
            seen["documentation"] += len(f["documentation"])
    assert all(count > 0 for count in seen.values()), seen


def _direct_fields(data: bytes) -> list[dict[str, Any]]:
    """The direct reader's dicts for every 278 response set of ``data`` (sets it declines left out)."""
    out: list[dict[str, Any]] = []
    for vs, _, _ in _sets(data):
        if vs.report.map == "278resp":
            out.extend(authorization_fields(vs.placed, vs.report.set_id) or [])
    return out


@pytest.mark.parametrize("path", RESPONSES_278, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_mutants_of_every_278_response_give_the_same_fields(path: Path) -> None:
    """Deterministic mutants (segments dropped, repeated, moved, values changed) read alike."""
    text = path.read_bytes().decode("latin-1")
    for mutant in mutants(text, seed=len(text) + 11, count=16):
        _assert_direct_alike(mutant.text.encode("latin-1"))


def test_the_mutants_reach_sets_of_several_events() -> None:
    """The mutants above are not only one-event sets: some give several records (2000E repeated)."""
    several = 0
    for path in RESPONSES_278:
        text = path.read_bytes().decode("latin-1")
        for mutant in mutants(text, seed=len(text) + 11, count=16):
            for vs, _, _ in _sets(mutant.text.encode("latin-1")):
                if vs.report.map == "278resp":
                    several += len(authorization_fields(vs.placed, vs.report.set_id) or []) > 1
    assert several > 0


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(_mutated_responses())
def test_hypothesis_mutated_responses_give_the_same_fields(data: bytes) -> None:
    """Hypothesis-mutated interchanges (278 responses among them): the same dicts and records."""
    _assert_direct_alike(data)


def test_a_reader_with_one_field_wrong_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison can fail: a service line's unit read from the wrong element (HSD02 for HSD01)
    makes some corpus set differ from the reference."""
    original = direct278._service

    def broken(loop: Any) -> dict[str, Any]:
        out = original(loop)
        out["unit"] = out["quantity"]
        return out

    monkeypatch.setattr(direct278, "_service", broken)
    failures = 0
    for path in RESPONSES_278:
        try:
            _assert_direct_alike(path.read_bytes())
        except AssertionError:
            failures += 1
    assert failures > 0


def _placed(rows: list[tuple[str, tuple[str, ...], tuple[str, ...], bool]]) -> tuple[Placed, ...]:
    return tuple(
        Placed(Segment(tag, elements), i, loops, tag, (), first)
        for i, (tag, elements, loops, first) in enumerate(rows, 1)
    )


NESTED = [
    ("ST", ("278", "1"), (), True),
    ("BHT", ("0007", "11", "REF1", "20260101", "1200", "18"), (), False),
    ("HL", ("1", "", "20", "1"), ("2000A",), True),
    ("NM1", ("X3", "2", "PAYER", "", "", "", "", "PI", "P1"), ("2000A", "2010A"), True),
    ("HL", ("4", "1", "EV", "1"), ("2000A", "2000E"), True),
    ("HCR", ("A1", "OUTER"), ("2000A", "2000E"), False),
    ("HL", ("5", "4", "EV", "0"), ("2000A", "2000E", "2000E"), True),
    ("HCR", ("A3", "INNER"), ("2000A", "2000E", "2000E"), False),
    ("SE", ("8", "1"), (), False),
]


def test_a_loop_inside_a_loop_of_its_id_is_left_to_the_general_way() -> None:
    """Placed segments with a 2000E inside a 2000E (no 278 map nests so): no direct answer, and
    ``_SetForms.extract`` and ``map_set`` give the generated code's dicts and records."""
    placed = _placed(NESTED)
    assert authorization_fields(placed, "278") is None
    report = SetReport("278", "1", "005010X217", "A", (), (), "278resp", 0, len(placed))
    vs = ValidatedSet(report, tuple(p.segment for p in placed), placed)
    found = _SetForms(vs).extract(RULE)
    assert found == _SetForms(vs).extract_straight(RULE)
    assert [f["certification_number"] for f in found] == ["OUTER", "INNER"]
    assert map_set(vs, "1", "1") == map_set(vs, "1", "1", direct=False)
    flat = [row for row in NESTED if len(row[2]) < 3 or row[2][2] != "2000E"]
    assert authorization_fields(_placed(flat), "278") is not None
