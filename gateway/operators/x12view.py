"""A stored X12 file as operators read it: each transaction set's segments with the implementation
guide's loop ids, segment names and element names, PHI masked.

The payload is re-validated with ``keep_placed`` so every segment comes back placed in its TR3 loop by
the same maps the gateway validated it with when it was sent or received.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.operators.masking import Phi, element_text, segment_text
from transactions.errors import X12GatewayError
from transactions.findings import InterchangeReport
from transactions.segment import Segment
from transactions.validation import Options, ValidatedSet, validate_detailed

SetKey = tuple[int, int, str]  # (ISA13, GS06, ST02) as the store records them


def control_int(text: str) -> int:
    """A control number as the store keeps ISA13/GS06 (the inbound stage records 0 for non-digits)."""
    stripped = text.strip()
    return int(stripped) if stripped.isdigit() else 0


@dataclass(frozen=True)
class ParsedFile:
    """The validated sets of one file, by (ISA13, GS06, ST02), plus the envelope reports."""

    sets: dict[SetKey, ValidatedSet]
    order: tuple[tuple[SetKey, str], ...]  # every set key with its functional id, in file order
    interchanges: tuple[InterchangeReport, ...]
    fatal: str | None


def parse_payload(data: bytes) -> ParsedFile | None:
    """Validate and place the file's sets; None when the bytes are not X12 (an inbox JSON, say)."""
    if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"ISA"):
        return None
    try:
        validation = validate_detailed(data, Options(keep_placed=True))
    except X12GatewayError:
        return None
    by_offset = {s.report.offset: s for s in validation.sets}
    sets: dict[SetKey, ValidatedSet] = {}
    order: list[tuple[SetKey, str]] = []
    for ic in validation.report.interchanges:
        for g in ic.groups:
            for s in g.sets:
                key = (control_int(ic.control_number), control_int(g.control_number), s.control_number)
                vs = by_offset.get(s.offset)
                if vs is not None:
                    sets[key] = vs
                    order.append((key, g.functional_id))
    return ParsedFile(sets, tuple(order), validation.report.interchanges, validation.report.fatal)


def segment_views(vs: ValidatedSet, phi: Phi) -> list[dict[str, Any]]:
    """One dict per segment: position, loop path, segment and element names from the map, masked text."""
    if vs.placed:
        placed = [(p.segment, p.position, p.loops, p.name, p.element_names) for p in vs.placed]
    else:  # no map for this set: the segments as they are, without names
        placed = [(seg, i, (), "", ()) for i, seg in enumerate(vs.segments, 1)]
    return [_segment_view(*item, phi=phi) for item in placed]


def _segment_view(
    segment: Segment,
    position: int,
    loops: tuple[str, ...],
    name: str,
    element_names: tuple[str, ...],
    *,
    phi: Phi,
) -> dict[str, Any]:
    values = phi.elements(segment.tag, loops, segment.elements)
    elements = []
    for index, value in enumerate(values, 1):
        text = element_text(value)
        if not text:
            continue
        label = element_names[index - 1] if index <= len(element_names) else ""
        elements.append({"id": f"{segment.tag}{index:02d}", "name": label, "value": text})
    return {
        "position": position,
        "loop": loops[-1] if loops else "",
        "loops": list(loops),
        "id": segment.tag,
        "name": name,
        "text": segment_text(segment.tag, values),
        "elements": elements,
    }
