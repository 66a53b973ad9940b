"""The compiled engine's element fast paths against its full element check: the map codes found clean
at compile time, ``clean`` (str methods in place of regexes), the type-list shortcut, and the ID/AN/N
type rules without a regex per value, over every element of the 270, 271, 278 and 837P maps."""

from __future__ import annotations

import functools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from transactions.engine.compile import compiled_map
from transactions.engine.elements import _slow_view, _typed_errors, check_element, clean, valid_type, view
from transactions.engine.tables import CompositeSpec, ElementSpec
from transactions.maps import index
from transactions.segment import Repetition, Segment

# pyx12's own patterns, the reference the str-method rules replace.
REC_N = re.compile(r"^-?[0-9]+", re.S | re.ASCII)
REC_ID_E = re.compile(r"""[^A-Z0-9!"&'()*+,\-\./:;?= a-z%~@\[\]_{}\\|<>#$]""", re.S | re.ASCII)
REC_ID_E5 = re.compile(r"""[^A-Z0-9!"&'()*+,\-\./:;?= a-z%~@\[\]_{}\\|<>^`#$]""", re.S | re.ASCII)


@functools.cache
def specs() -> tuple[tuple[ElementSpec, str], ...]:
    """Every simple element and component of the maps the benchmarks validate, with its map's ICVN."""
    out: list[tuple[ElementSpec, str]] = []
    for entry in index():
        if not any(tag in entry.file for tag in ("270", "271", "278", "837")):
            continue
        cmap = compiled_map(entry.file, entry.source)
        seen: set[int] = set()
        stack = [cmap.root]
        while stack:
            loop = stack.pop()
            for kid in loop.kids:
                if kid.is_segment():
                    for child in kid.children:  # type: ignore[union-attr]  # a SegNode here
                        parts = child.children if isinstance(child, CompositeSpec) else (child,)
                        out += [(p, cmap.icvn) for p in parts if id(p) not in seen]
                        seen.update(id(p) for p in parts)
                else:
                    stack.append(kid)  # type: ignore[arg-type]  # a LoopNode here
    return tuple(out)


ALPHABET = "AZaz09 -.:^`~*\x07\x1d\u00e9"
values = st.one_of(st.text(alphabet=ALPHABET, max_size=12), st.sampled_from(["", " ", "-", ".", "1.5", "-7"]))
type_lists = st.sampled_from([[], ["D8"], ["RD8", "D8"], ["TM"], ["DT"]])


@settings(max_examples=300, deadline=None)
@given(st.data(), values, type_lists)
def test_fast_paths_agree_with_the_full_element_check(data: st.DataObject, value: str, tl: list[str]) -> None:
    """A value clean() passes, or one of the codes found clean at compile, has no error under the full
    check; the type-list shortcut gives exactly the full check's errors."""
    spec, icvn = data.draw(st.sampled_from(specs()))
    value = data.draw(st.one_of(st.just(value), st.sampled_from(sorted(spec.ok) or [""])))
    full = check_element(spec, value, icvn)
    if clean(spec, value, icvn) or value in spec.ok:
        assert full == []
    assert _typed_errors(spec, value, icvn, tl) == check_element(spec, value, icvn, tl)


@given(st.text(alphabet="0123456789-.+ \u0661\u00b2a", max_size=6), st.sampled_from(["00401", "00501"]))
def test_type_rules_without_regexes_match_pyx12s_patterns(value: str, icvn: str) -> None:
    """N (and N0..N9) and ID/AN accept exactly what pyx12's regexes accept, Unicode digits included."""
    m = REC_N.search(value)
    assert valid_type(value, "N0", icvn) == (m is not None and m.group(0) == value)
    rec = REC_ID_E5 if icvn == "00501" else REC_ID_E
    for data_type in ("ID", "AN"):
        assert valid_type(value, data_type, icvn) == (rec.search(value) is None)


def test_every_ascii_character_follows_the_id_pattern() -> None:
    """Each single character (ASCII and a few others) is a valid ID exactly when pyx12's pattern says so."""
    for c in [*map(chr, range(128)), "\u00e9", "\u2028"]:
        assert valid_type(c, "ID", "00501") == (REC_ID_E5.search(c) is None)
        assert valid_type(c, "AN", "00401") == (REC_ID_E.search(c) is None)


class _Code(str):
    """A ``str`` subclass, as a builder's enum value would be."""

    __slots__ = ()


_plain_values = st.one_of(st.sampled_from(["", "A", "IL", " "]), st.builds(_Code, st.sampled_from(["", "B"])))
_element_values = st.one_of(
    _plain_values,
    st.lists(st.sampled_from(["", "X", "Y"]), min_size=2, max_size=3).map(tuple),
    st.lists(st.one_of(st.sampled_from(["", "R"]), st.just(("C", "D"))), max_size=3).map(Repetition),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_element_values, max_size=6))
def test_view_is_the_slow_view_and_plain_means_no_tuple(elements: list[object]) -> None:
    """``view`` gives what the element-by-element ``_slow_view`` gives, and calls a segment plain
    exactly when no element is a composite or a repetition (a ``str`` subclass is plain)."""
    segment = Segment("NM1", tuple(elements))  # type: ignore[arg-type]  # str, tuples, repetitions
    values, plain = view(segment)
    assert values == _slow_view(segment.elements)
    assert plain == all(isinstance(e, str) for e in elements)
