"""Loop-aware documents: a validated transaction set as a loop tree and as an lxml element tree.

The tree comes from the segments the IG walk placed, so loop ids are the TR3's (2000A, 2100C, 2110C,
2000E, 2000F ...). The XML vocabulary is ours and small: ``transaction > loop[@id] > seg[@id] >
ele[@id]`` with ``comp[@id] > subele[@id]`` for composites; a repeated element appears once per
occurrence. Mappings query it with XPath.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from transactions.placed import Placed
from transactions.segment import Element, Segment, components, repetitions


@dataclass
class Loop:
    """One loop instance with its own segments and child loops, in document order."""

    id: str
    segments: list[Segment] = field(default_factory=list)
    children: list[Loop] = field(default_factory=list)
    items: list[Segment | Loop] = field(default_factory=list)

    def loops(self, loop_id: str) -> Iterator[Loop]:
        """Every descendant loop instance with ``loop_id`` (depth first, document order)."""
        for child in self.children:
            if child.id == loop_id:
                yield child
            yield from child.loops(loop_id)

    def first(self, tag: str, qualifier: str | None = None) -> Segment | None:
        """This loop's first segment ``tag`` (whose element 01 equals ``qualifier`` if given)."""
        for s in self.segments:
            if s.tag == tag and (qualifier is None or s.get(1) == qualifier):
                return s
        return None

    def all(self, tag: str, qualifier: str | None = None) -> list[Segment]:
        return [s for s in self.segments if s.tag == tag and (qualifier is None or s.get(1) == qualifier)]


def build_tree(placed: Sequence[Placed]) -> Loop:
    """The loop tree of one transaction set from its placed segments."""
    root = Loop("ST")
    stack: list[Loop] = [root]
    for p in placed:
        target = p.loops
        depth = 0
        while depth < len(target) and depth + 1 < len(stack) and stack[depth + 1].id == target[depth]:
            depth += 1
        if p.starts_loop and target and depth == len(target):
            depth -= 1  # the first segment of a loop opens a new instance of it
        del stack[depth + 1 :]
        for loop_id in target[depth:]:
            node = Loop(loop_id)
            stack[-1].children.append(node)
            stack[-1].items.append(node)
            stack.append(node)
        stack[-1].segments.append(p.segment)
        stack[-1].items.append(p.segment)
    return root


def _add_element(parent: Any, xid: str, value: Element) -> None:
    for occurrence in repetitions(value) or ("",):
        comps = components(occurrence)
        if len(comps) > 1:
            comp = etree.SubElement(parent, "comp", id=xid)
            for j, sub in enumerate(comps, 1):
                if sub:
                    etree.SubElement(comp, "subele", id=f"{xid}-{j:02d}").text = sub
        elif comps and comps[0]:
            etree.SubElement(parent, "ele", id=xid).text = comps[0]


def segment_xml(parent: Any, segment: Segment) -> Any:
    node = etree.SubElement(parent, "seg", id=segment.tag)
    for i, value in enumerate(segment.elements, 1):
        _add_element(node, f"{segment.tag}{i:02d}", value)
    return node


def _loop_xml(parent: Any, loop: Loop) -> None:
    for item in loop.items:
        if isinstance(item, Loop):
            _loop_xml(etree.SubElement(parent, "loop", id=item.id), item)
        else:
            segment_xml(parent, item)


def to_xml(tree: Loop, *, set_id: str, control_number: str) -> Any:
    """The lxml element tree of a transaction set (root ``transaction``)."""
    root = etree.Element("transaction", id=set_id, control=control_number)
    _loop_xml(root, tree)
    return root
