"""The validate + map fast paths against what they replace, kept as the reference: the reader's
plain-text hint (``reader.plain_window``, ``TransactionSet.plain``) against ``mappings.mapper``'s own
check, loop trees built from their shape against trees walked segment by segment, remembered
benefits against benefits made afresh, remembered decimals against ``Decimal``, and the generator-free
component readers against ``mappings.straight``'s; over every sample, public and golden response,
their deterministic mutants and hypothesis-built data."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import transactions.engine.elements as engine_elements
from mappings import direct271, direct278, records
from mappings.convert import decimal, read_decimal
from mappings.mapper import map_set, plain_by_repr
from mappings.straight import _components, _suffixed
from tests.test_map_differential import RESPONSES, _mutated_responses, _sets
from tests.x12mutants import mutants
from transactions.envelope_reader import TransactionSet, iter_envelope
from transactions.placed import Placed, PlacedSegments
from transactions.reader import plain_window
from transactions.segment import Repetition, Segment
from transactions.validation import Options, validate, validate_detailed


def _variants(path: Path) -> Iterator[bytes]:
    """The file, its deterministic mutants, and the file with every line break written CR LF."""
    data = path.read_bytes()
    yield data
    yield data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    text = data.decode("latin-1")
    for mutant in mutants(text, seed=len(text) + 11, count=8):
        yield mutant.text.encode("latin-1")


# --- the reader's plain-text hint -------------------------------------------------------------------


def _assert_plain_sets_are_plain(data: bytes) -> int:
    """Every set the reader marks plain passes the mapper's reference check; how many were marked."""
    marked = 0
    try:
        for event in iter_envelope(data):
            if isinstance(event, TransactionSet) and event.plain:
                marked += 1
                assert plain_by_repr(event.set_id, event.control_number, _placed(event.segments))
    except Exception:  # noqa: BLE001, S110 - an unreadable mutant: the sets before it were checked
        pass
    return marked


def _placed(segments: tuple[Segment, ...]) -> list[Placed]:
    """What ``plain_by_repr`` reads of placed segments (the segment; the rest is not read)."""
    return [Placed(s, i, (), s.tag, ()) for i, s in enumerate(segments, 1)]


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_sets_the_reader_marks_plain_pass_the_mappers_check(path: Path) -> None:
    """A set marked plain by the reader is plain by ``repr`` (mutants and CR LF line breaks included)."""
    for data in _variants(path):
        _assert_plain_sets_are_plain(data)


def test_the_plain_hint_is_given_for_most_corpus_sets() -> None:
    """Not vacuous: the response corpus's sets are mostly marked plain."""
    assert sum(_assert_plain_sets_are_plain(p.read_bytes()) for p in RESPONSES) >= 30


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(_mutated_responses())
def test_hypothesis_mutated_responses_marked_plain_are_plain(data: bytes) -> None:
    """Hypothesis-mutated interchanges: a set marked plain is plain by ``repr``."""
    _assert_plain_sets_are_plain(data)


_PIECES = [b"~", b"\n", b"\r", b"\r\n", b"~\n", b"~\r\n", b" ", b"\t", b"'", b'"', b"\\", b"A", b"1", b"*"]
_WINDOW_BYTES = st.lists(st.sampled_from([*_PIECES, b"\xc3\xa9", b"\x07", b"\x7f"]), max_size=30).map(
    b"".join
)


@settings(max_examples=400, deadline=None)
@given(_WINDOW_BYTES)
def test_a_window_found_plain_holds_only_plain_strings(block: bytes) -> None:
    """``plain_window`` True: every segment text of the window (its filler taken off as the reader
    does) is printable ASCII that ``repr`` leaves alone; False may be conservative, True never wrong."""
    if not plain_window(block, b"~"):
        return
    for piece in block.decode("utf-8", "surrogateescape").split("~"):
        text = piece.lstrip(" \t\r\n")
        assert plain_by_repr(text, "", [])


def test_a_window_with_a_tab_in_a_value_or_a_stray_line_break_is_not_plain() -> None:
    """Filler inside a segment is a value's character, not filler: the window is not plain."""
    assert plain_window(b"NM1*A~\nNM1*B", b"~")
    assert plain_window(b"NM1*A~\r\nNM1*B", b"~")
    assert not plain_window(b"NM1*A\tB~\nNM1*B", b"~")
    assert not plain_window(b"NM1*A\n~NM1*B", b"~")
    assert not plain_window(b"NM1*'A~NM1*\"B", b"~")
    assert not plain_window(b"NM1*A\\B", b"~")


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_records_are_the_same_with_and_without_the_plain_hint(path: Path) -> None:
    """``map_set`` gives the same records whether the set carries the reader's hint or not."""
    for data in _variants(path):
        for vs, isa, gs in _sets(data):
            assert map_set(vs, isa, gs) == map_set(replace(vs, plain=False), isa, gs)


# --- loop trees from shapes ---------------------------------------------------------------------------


def _tree_form(tree: Any) -> Any:
    """A loop tree as comparable data: each loop's id, parent's order, order and segments (by identity)."""
    if tree is None:
        return None
    loops = [tree.root, *tree.loops]
    return (
        [(lp.id, lp.parent.order if lp.parent else None, lp.order, [id(s) for s in lp.segs]) for lp in loops],
        [[k.order for k in lp.loops] for lp in loops],
        [(id(s), lp.order) for s, lp in tree.aaa],
    )


def _assert_shapes_alike(data: bytes) -> int:
    compared = 0
    for vs, _, _ in _sets(data):
        if vs.placed.__class__ is not PlacedSegments:
            continue
        shaped = direct271._tree(vs.placed, vs.report.set_id)
        walked = direct271._walk_tree(vs.placed, vs.report.set_id)
        assert _tree_form(shaped) == _tree_form(walked)
        compared += 1
    return compared


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_trees_built_from_shapes_are_the_walked_trees(path: Path) -> None:
    """Every 271/278 set and mutant: the tree built from its remembered shape is the walked tree."""
    for data in _variants(path):
        _assert_shapes_alike(data)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(_mutated_responses())
def test_hypothesis_mutated_responses_build_the_walked_trees(data: bytes) -> None:
    """Hypothesis-mutated interchanges: shapes give the walked trees."""
    _assert_shapes_alike(data)


def test_shapes_are_compared_on_the_corpus() -> None:
    """Not vacuous: dozens of sets go through the shapes."""
    assert sum(_assert_shapes_alike(p.read_bytes()) for p in RESPONSES) >= 30


# --- remembered benefits ----------------------------------------------------------------------------


def _benefit_loops(data: bytes) -> Iterator[Any]:
    for vs, _, _ in _sets(data):
        if vs.report.map != "271":
            continue
        tree = direct271._tree(vs.placed, vs.report.set_id)
        if tree is not None:
            yield from (lp for lp in tree.loops if lp.id in ("2110C", "2110D"))


def test_remembered_benefits_are_the_benefits_made_afresh() -> None:
    """Over every 271 of the corpus and its mutants in one run (so later sets meet earlier sets'
    entries): each remembered benefit equals the one made from its loop, and entries are reused."""
    direct271._BENEFITS.clear()
    loops = reused = 0
    for path in RESPONSES:
        for data in _variants(path):  # each validation run empties the memo when it ends
            for loop in _benefit_loops(data):
                reused += direct271._benefit_key(loop) in direct271._BENEFITS
                assert direct271._benefit_remembered(loop) == direct271._benefit_made(loop)
                loops += 1
    assert loops >= 50
    assert 0 < reused < loops


def test_a_repetition_and_a_composite_of_the_same_texts_are_different_benefits() -> None:
    """EB03 written with the repetition separator and with the component separator are equal tuples,
    but read differently: they are remembered apart."""
    direct271._BENEFITS.clear()
    made = []
    for eb03 in (Repetition(("30", "1")), ("30", "1")):
        loop = direct271._Loop("2110C", None, 1, [Segment("EB", ("1", "", eb03))])
        made.append(direct271._benefit_remembered(loop))
        assert made[-1] == direct271._benefit_made(loop)
    assert made[0] != made[1]


def test_benefits_are_forgotten_when_a_run_ends_and_not_kept_with_memos_off() -> None:
    """Like the engine's memos: emptied when a validation run ends; nothing written with memos off."""
    loop = direct271._Loop("2110C", None, 1, [Segment("EB", ("1", "", "30"))])
    direct271._benefit_remembered(loop)
    assert direct271._BENEFITS
    validate(RESPONSES[0].read_bytes())
    assert not direct271._BENEFITS
    saved = engine_elements.MEMO_LIMIT
    engine_elements.MEMO_LIMIT = 0
    try:
        assert direct271._benefit_remembered(loop) == direct271._benefit_made(loop)
        assert not direct271._BENEFITS
    finally:
        engine_elements.MEMO_LIMIT = saved


def test_records_are_the_same_with_benefits_remembered_or_not() -> None:
    """Mapping every 271 of the corpus twice in one run (the second time from remembered benefits)
    gives the records mapped with memos off."""
    validations = [validate_detailed(p.read_bytes(), Options(keep_placed=True)) for p in RESPONSES]
    saved = engine_elements.MEMO_LIMIT
    engine_elements.MEMO_LIMIT = 0
    try:
        fresh = [[map_set(s, "1", "1") for s in v.sets] for v in validations]
    finally:
        engine_elements.MEMO_LIMIT = saved
    for _ in range(2):
        assert [[map_set(s, "1", "1") for s in v.sets] for v in validations] == fresh


# --- decimals and components ------------------------------------------------------------------------


@given(st.one_of(st.text(max_size=8), st.from_regex(r"-?[0-9]{0,4}(\.[0-9]{0,3})?", fullmatch=True)))
def test_remembered_decimals_are_the_decimals_read(text: str) -> None:
    """``decimal`` (remembered per text) gives what ``Decimal`` gives, twice over, NaN as NaN."""
    for _ in range(2):
        got, expected = decimal(text), read_decimal(text) if text else None
        if isinstance(expected, Decimal) and expected.is_nan():
            assert isinstance(got, Decimal)
            assert got.is_nan()
        else:
            assert got == expected
    if text:
        try:
            Decimal(text)
        except InvalidOperation:
            assert decimal(text) is None


_TEXT = st.sampled_from(["", "A", "HC", "72148", "26"])
_COMPOSITE = st.lists(_TEXT, min_size=1, max_size=7).map(tuple)
_VALUE = st.one_of(_TEXT, _COMPOSITE, st.lists(st.one_of(_TEXT, _COMPOSITE), max_size=3).map(Repetition))
_SEGMENTS = st.lists(st.lists(_VALUE, max_size=4).map(lambda e: Segment("SV1", tuple(e))), max_size=3)


@given(_SEGMENTS, st.integers(1, 5), st.integers(1, 7))
def test_component_readers_read_what_the_generated_code_reads(segs: list[Segment], i: int, j: int) -> None:
    """``_component``, ``_comps`` and ``_suffix02`` give what ``straight._components`` and
    ``straight._suffixed`` give, over plain values, composites and repetitions of either."""
    first = next((c for s in segs for c in _components(s.elements, i, (j,))), None)
    assert direct271._component(segs, i, j) == first
    assert direct278._comps(segs, i) == [
        c for s in segs for c in _components(s.elements, i, direct278._MODIFIERS)
    ]
    assert direct278._suffix02(segs) == [c for s in segs for c in _suffixed(s.elements, 2)]


# --- records built positionally ---------------------------------------------------------------------

_POSITIONAL = {
    "mappings/authorization.py": ("AuthorizationRecord", "ServiceDecision"),
    "mappings/eligibility.py": ("EligibilityResult", "Benefit"),
    "mappings/convert.py": ("Rejection",),
}


@pytest.mark.parametrize("path", sorted(_POSITIONAL))
def test_records_built_positionally_pass_each_value_to_the_field_its_comment_names(path: str) -> None:
    """The record builders pass every field positionally (keyword binding of 44 fields cost as much
    as the record itself), one argument per line named by its comment: each comment is the field at
    that position, and every field is passed."""
    source = (Path(__file__).resolve().parent.parent / path).read_text()
    lines = source.splitlines()
    calls = 0
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in _POSITIONAL[path]:
            continue
        names = [f.name for f in fields(getattr(records, node.func.id))]
        assert not node.keywords
        assert len(node.args) == len(names)
        for arg, name in zip(node.args, names, strict=True):
            assert arg.lineno == arg.end_lineno
            assert lines[arg.lineno - 1].rstrip().endswith(f",  # {name}")
        calls += 1
    assert calls == len(_POSITIONAL[path])
