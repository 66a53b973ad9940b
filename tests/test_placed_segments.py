"""The compiled engine's placed segments held as segments and map nodes (``PlacedSegments``) against
the reference forms: the same placed segments as pyx12's walker gives (one ``Placed`` per segment) for
every sample, public and golden file and deterministic mutants of the responses; and, read by the
mapper, the same node tree and plain-text verdict as the tuple of ``Placed`` they stand for, there
and for hypothesis-built sets with segments left unplaced."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.mapper import plain_by_repr, plain_texts
from mappings.segtree import LOOPS, STRUCTURE, Node, build_nodes, build_nodes_by_stack, release
from mappings.straight import _has_desc, _ix, _structural, _under
from tests.test_engine_differential import CORPUS, ROOT
from tests.test_map_differential import RESPONSES
from tests.x12mutants import mutants
from transactions.placed import Placed, PlacedSegments
from transactions.segment import Repetition, Segment
from transactions.validation import Options, ValidatedSet, validate_detailed


def _shape(node: Node) -> Any:
    kids = node.kids if node.kind != "seg" else []
    return (node.kind, node.id, node.key, node.attrs, node.segment, [_shape(k) for k in kids or ()])


def _assert_mapper_reads_alike(ps: PlacedSegments, set_id: str = "271", control: str = "0001") -> None:
    """Tree and plain-text verdict from ``ps`` equal those from the tuple of Placed it stands for."""
    as_tuple = tuple(ps)
    fast = build_nodes(ps, set_id=set_id, control_number=control)
    assert _shape(fast) == _shape(build_nodes(as_tuple, set_id=set_id, control_number=control))
    assert _shape(fast) == _shape(build_nodes_by_stack(as_tuple, set_id=set_id, control_number=control))
    cache = fast.root().cache or {}
    assert cache[LOOPS] == [n for n in cache[STRUCTURE] if n.kind == "loop"]  # what //loop steps scan
    stacked = build_nodes_by_stack(as_tuple, set_id=set_id, control_number=control)  # no loops listed
    for ids in [frozenset({n.id or ""}) for n in cache[STRUCTURE][2:]] + [frozenset({"2000Z"})]:
        assert _has_desc(fast, "loop", ids) is _has_desc(stacked, "loop", ids)  # listed loops vs the walk
        for test in ("loop", "seg"):
            listed = [n for n in _structural(fast) if n.kind == test and n.id in ids]
            assert _under(fast, test, ids, []) == listed
    verdict = plain_texts(set_id, control, ps)
    assert verdict is plain_texts(set_id, control, as_tuple)
    assert verdict is plain_by_repr(set_id, control, as_tuple)
    assert list(ps.placed_segments()) == [p.segment for p in as_tuple]


def _compiled_and_reference(data: bytes) -> list[tuple[ValidatedSet, ValidatedSet]]:
    runs = [validate_detailed(data, Options(engine=e, keep_placed=True)) for e in ("compiled", "pyx12")]
    assert len(runs[0].sets) == len(runs[1].sets)
    return list(zip(runs[0].sets, runs[1].sets, strict=True))


def _inputs(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path not in RESPONSES:
        return [data]
    text = data.decode("latin-1")
    return [data, *(m.text.encode("latin-1") for m in mutants(text, seed=11, count=4))]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_placed_segments_are_the_reference_walks_placed_segments(path: Path) -> None:
    """Every set: the compiled engine's PlacedSegments read as pyx12's tuple of Placed (order, length,
    indexing, equality both ways), and the mapper reads them as it reads that tuple."""
    for data in _inputs(path):
        for compiled, reference in _compiled_and_reference(data):
            ps = compiled.placed
            if not compiled.report.map:  # no map: nothing placed by either engine
                assert tuple(ps) == reference.placed == ()
                continue
            assert isinstance(ps, PlacedSegments)
            assert ps == reference.placed
            assert reference.placed == ps
            assert tuple(ps) == tuple(reference.placed)
            assert len(ps) == len(reference.placed)
            assert bool(ps) is bool(reference.placed)
            assert [ps[i] for i in range(len(ps))] == list(reference.placed)
            assert ps[1:3] == tuple(reference.placed)[1:3]
            assert hash(ps) == hash(tuple(reference.placed))
            r = compiled.report
            _assert_mapper_reads_alike(ps, r.set_id, r.control_number)


class _Place:
    """A map node as the walk hands it over (what ``SegNode`` answers)."""

    def __init__(self, loops: tuple[str, ...], is_first: bool) -> None:
        self.loops = loops
        self.is_first = is_first
        self.name = "/".join(loops) or "header"
        self.element_names = ("first", "second")


_TEXT = st.text(alphabet=st.sampled_from("AZ09 *'\"\\\t\x00\u00e9"), max_size=4)
_ELEMENT = st.one_of(
    _TEXT, st.lists(_TEXT, min_size=2, max_size=3).map(tuple), st.lists(_TEXT, max_size=2).map(Repetition)
)
_LOOPS = st.sampled_from([(), ("2000A",), ("2000A", "2100A"), ("2000B",), ("2000B", "2100B", "2110B")])
_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["HL", "NM1", "EB"]),
        st.lists(_ELEMENT, max_size=3),
        st.none() | st.tuples(_LOOPS, st.booleans()),
    ),
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(_ROWS)
def test_placed_segments_with_unplaced_ones_read_as_placed_tuples(rows: list[Any]) -> None:
    """Segments left unplaced (None) are skipped, positions count every segment, and the mapper's tree
    and plain-text verdict are those of the equivalent tuple of Placed."""
    segments = tuple(Segment(tag, tuple(elements)) for tag, elements, _ in rows)
    nodes = [None if where is None else _Place(*where) for _, _, where in rows]
    ps = PlacedSegments(segments, nodes, sum(n is not None for n in nodes))
    expected = tuple(
        Placed(s, i, n.loops, n.name, n.element_names, n.is_first)
        for i, (s, n) in enumerate(zip(segments, nodes, strict=True), 1)
        if n is not None
    )
    assert ps == expected
    assert len(ps) == len(expected)
    _assert_mapper_reads_alike(ps)


_SHARED: dict[tuple[tuple[str, ...], bool], _Place] = {}


@settings(max_examples=300, deadline=None)
@given(_ROWS)
def test_map_nodes_shared_across_sets_build_each_tree_as_the_stack_does(rows: list[Any]) -> None:
    """Map nodes shared across sets (loop changes remembered by node pair) build the stack's tree."""
    segments = tuple(Segment(tag, tuple(elements)) for tag, elements, _ in rows)
    nodes = [None if where is None else _SHARED.setdefault(where, _Place(*where)) for _, _, where in rows]
    _assert_mapper_reads_alike(PlacedSegments(segments, nodes, sum(n is not None for n in nodes)))


@pytest.mark.parametrize("name", ["278resp-A1-certified.x12", "271-dependent-active.x12"])
def test_a_released_tree_leaves_no_cyclic_garbage_whatever_was_made_in_it(name: str) -> None:
    """Released node trees are freed by reference counting: segments whose element nodes and child
    indexes were made, and segments never read (which release leaves as they are), alike."""
    data = (ROOT / "sample_edi" / "responses" / name).read_bytes()
    sets = validate_detailed(data, Options(keep_placed=True)).sets
    gc.collect()
    gc.disable()
    try:
        for k, vs in enumerate(sets):
            tree = build_nodes(vs.placed, set_id=vs.report.set_id, control_number=vs.report.control_number)
            listing = tree.root().cache[STRUCTURE]  # type: ignore[index]
            for n in listing[k % 2 :: 2]:  # every other segment read, the others left untouched
                if n.kind == "seg":
                    n.children()
                    _ix(n)
            _ix(tree)
            release(tree)
            del tree, listing, n
        assert gc.collect() == 0
    finally:
        gc.enable()
