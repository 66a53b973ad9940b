"""Segments, elements and delimiters: the value types of the syntax core.

An element value is a plain ``str``, a ``Composite`` (tuple of component strings) or a ``Repetition``
(tuple of plain/composite values). The reader produces the most compact form (a plain string when no
component separator occurs), so consumers use :func:`components` and :func:`repetitions` to read
values without caring how the sender wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass

from transactions.errors import DelimiterError

Composite = tuple[str, ...]


class Repetition(tuple[str | Composite, ...]):
    """Repeated occurrences of one element, written with the repetition separator (ISA11)."""

    __slots__ = ()


Element = str | Composite | Repetition


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The four X12 delimiters; each one character and all distinct."""

    element: str = "*"
    repetition: str = "^"
    component: str = ":"
    segment: str = "~"

    def __post_init__(self) -> None:
        chars = (self.element, self.repetition, self.component, self.segment)
        if any(len(c) != 1 for c in chars):
            raise DelimiterError("every delimiter must be exactly one character")
        if len(set(chars)) != 4:
            raise DelimiterError("element, repetition, component and segment delimiters must differ")
        if any(c.isalnum() or c == " " for c in chars):
            raise DelimiterError("delimiters may not be letters, digits or space")

    def all(self) -> frozenset[str]:
        """The delimiter characters, for checking that data does not contain them."""
        return frozenset((self.element, self.repetition, self.component, self.segment))


@dataclass(frozen=True, slots=True, init=False)
class Segment:
    """One X12 segment: its id and its elements (``elements[0]`` is element 01)."""

    tag: str
    elements: tuple[Element, ...] = ()

    def __init__(self, tag: str, elements: tuple[Element, ...] = ()) -> None:
        """Fills the two slots through their descriptors: a frozen dataclass's own ``__init__`` goes
        through ``object.__setattr__`` per field, a third of the cost of building a 270 body."""
        _set_tag(self, tag)
        _set_elements(self, elements)

    def get(self, position: int, component: int = 0) -> str:
        """Element ``position`` (1-based); with ``component`` (1-based) one component of a composite.

        Missing elements read as ``""``; a repeated element reads as its first occurrence.
        """
        if position < 1 or position > len(self.elements):
            return ""
        value = self.elements[position - 1]
        if isinstance(value, Repetition):
            value = value[0] if value else ""
        if component:
            comps = (value,) if isinstance(value, str) else value
            return comps[component - 1] if component <= len(comps) else ""
        if isinstance(value, str):
            return value
        return value[0] if value else ""

    def composite(self, position: int) -> Composite:
        """Element ``position`` as a tuple of components (a plain value is a 1-tuple)."""
        if position < 1 or position > len(self.elements):
            return ()
        value = self.elements[position - 1]
        if isinstance(value, Repetition):
            value = value[0] if value else ""
        return components(value)

    def repeats(self, position: int) -> tuple[str | Composite, ...]:
        """Every occurrence of a repeatable element (empty tuple when absent)."""
        if position < 1 or position > len(self.elements):
            return ()
        return repetitions(self.elements[position - 1])

    def __len__(self) -> int:
        return len(self.elements)


_set_tag = Segment.__dict__["tag"].__set__
_set_elements = Segment.__dict__["elements"].__set__


def components(value: Element) -> Composite:
    """A value as its components: ``"HC"`` -> ``("HC",)``; ``("HC", "99213")`` unchanged."""
    if isinstance(value, Repetition):
        value = value[0] if value else ""
    if isinstance(value, str):
        return (value,) if value else ()
    return value


def repetitions(value: Element) -> tuple[str | Composite, ...]:
    """A value as its occurrences: ``"30"`` -> ``("30",)``; a Repetition unchanged; ``""`` -> ``()``."""
    if isinstance(value, Repetition):
        return tuple(value)
    if value in ("", ()):
        return ()
    return (value,)


def seg(tag: str, *elements: Element | None) -> Segment:
    """Build a segment; ``None`` stands for an empty element (trailing ones are trimmed on write)."""
    if None not in elements:  # the common case, without a per-element generator
        return Segment(tag, elements)  # type: ignore[arg-type]  # no None in it, checked just above
    return Segment(tag, tuple(["" if e is None else e for e in elements]))  # a list: no generator frames
