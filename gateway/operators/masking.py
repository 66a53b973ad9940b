"""Masking of PHI for operators' screens: names, member ids and birth dates, in documents and in X12.

Operators need to recognise a patient ("the CANARYTEST one, born in 1970") without the screen, a
terminal scroll-back or a pasted ticket carrying the full identity. So masks keep the shape and a few
characters: ``C********T`` (first and last letter), ``ZZM*******01`` (first three and last two
characters), ``1970-**-**`` (the year). ``--reveal`` turns masking off for one command
and leaves an audit entry (see :mod:`gateway.operators.session`).

Documents (request payloads, mapped records) are masked by key; X12 segments by where they sit: the
subscriber/dependent loops (2100C/2100D of the 270/271, 2010C/2010D of the 278), person entities
(NM101 IL, QC, 03) anywhere, every DMG birth date, and the 999's copy of a bad element (IK404), which
may quote anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from gateway.runtime.filemask import mask_file_name
from transactions.segment import Composite, Element, Repetition

MASK = "*"
_ISO_DATE = re.compile(r"^(\d{4})-\d{2}-\d{2}$")
_D8 = re.compile(r"^(\d{4})\d{4}$")
_KEY_SPLIT = re.compile(r"[^a-z0-9]+")

PHI_LOOPS = frozenset({"2100C", "2100D", "2010C", "2010D"})
PERSON_ENTITIES = frozenset({"IL", "QC", "03"})


def mask_name(value: str) -> str:
    """``CANARYTEST`` -> ``C********T``; two characters or fewer become all stars."""
    text = value.strip()
    if len(text) <= 2:
        return MASK * len(text)
    return text[0] + MASK * (len(text) - 2) + text[-1]


def mask_id(value: str) -> str:
    """``ZZM100000001`` -> ``ZZM*******01``; five characters or fewer become all stars."""
    text = value.strip()
    if len(text) <= 5:
        return MASK * len(text)
    return text[:3] + MASK * (len(text) - 5) + text[-2:]


def mask_date(value: str | date) -> str:
    """``1970-01-01`` and X12's ``19700101`` -> ``1970-**-**``; ranges part by part."""
    text = value.isoformat() if isinstance(value, date) else value.strip()
    if "-" in text and not _ISO_DATE.match(text):
        return "-".join(mask_date(part) for part in text.split("-"))  # RD8 range CCYYMMDD-CCYYMMDD
    iso = _ISO_DATE.match(text)
    if iso:
        return f"{iso.group(1)}-**-**"
    d8 = _D8.match(text)
    if d8:
        return f"{d8.group(1)}-**-**"
    return MASK * len(text)


Masker = Callable[[str], str]

_NAME_SUFFIXES = ("last_name", "first_name", "middle_name", "name_suffix")
_ID_SUFFIXES = ("member_id", "subscriber_id", "ssn")
_DATE_SUFFIXES = ("birth_date", "birthdate", "dob", "date_of_birth")


def _key_masker(key: str) -> Masker | None:
    norm = "_".join(p for p in _KEY_SPLIT.split(key.lower()) if p)
    if norm.endswith(_NAME_SUFFIXES):
        return mask_name
    if norm.endswith(_ID_SUFFIXES):
        return mask_id
    if norm.endswith(_DATE_SUFFIXES):
        return mask_date
    return None


def mask_document(value: Any) -> Any:
    """A copy of a JSON-like document with PHI values (by key, at any depth) masked."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            masker = _key_masker(str(key))
            if masker is not None and isinstance(item, date):
                out[key] = masker(item.isoformat())
            elif masker is not None and isinstance(item, str) and item:
                out[key] = masker(item)
            else:
                out[key] = mask_document(item)
        return out
    if isinstance(value, list | tuple):
        return [mask_document(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------- X12

# element position (1-based) -> masker, per segment id, inside the subscriber/dependent loops
_IN_PHI_LOOP: dict[str, dict[int, Masker]] = {
    "NM1": {3: mask_name, 4: mask_name, 5: mask_name, 7: mask_name, 9: mask_id},
    "N3": {1: mask_name, 2: mask_name},
    "N4": {3: mask_id},
    "REF": {2: mask_id, 3: mask_name},
    "PER": {2: mask_name, 4: mask_id, 6: mask_id, 8: mask_id},
    "DMG": {2: mask_date},
}
# ... and wherever they occur
_ANYWHERE: dict[str, dict[int, Masker]] = {"DMG": {2: mask_date}, "IK4": {4: mask_name}}


def _mask_value(value: str | Composite, masker: Masker) -> str | Composite:
    if isinstance(value, str):
        return masker(value) if value else value
    return tuple(masker(c) if c else c for c in value)


def _mask_element(value: Element, masker: Masker) -> Element:
    if isinstance(value, Repetition):
        return Repetition(_mask_value(v, masker) for v in value)
    return _mask_value(value, masker)


def phi_positions(tag: str, loops: Sequence[str], elements: Sequence[Element]) -> dict[int, Masker]:
    """Which elements of this segment are PHI (position -> masker), given the loops it sits in."""
    rules = dict(_ANYWHERE.get(tag, {}))
    in_phi_loop = bool(loops) and loops[-1] in PHI_LOOPS
    first = elements[0] if elements else ""
    person = tag == "NM1" and isinstance(first, str) and first in PERSON_ENTITIES
    if in_phi_loop or person:
        rules.update(_IN_PHI_LOOP.get(tag, {}))
    return rules


def mask_elements(tag: str, loops: Sequence[str], elements: Sequence[Element]) -> tuple[Element, ...]:
    """The segment's elements with PHI masked (positions as in :func:`phi_positions`)."""
    rules = phi_positions(tag, loops, elements)
    return tuple(
        _mask_element(value, rules[i]) if i in rules else value for i, value in enumerate(elements, 1)
    )


def element_text(value: Element) -> str:
    """An element as X12 shows it: components joined by ``:``, repetitions by ``^``."""
    if isinstance(value, Repetition):
        return "^".join(v if isinstance(v, str) else ":".join(v) for v in value)
    if isinstance(value, tuple):
        return ":".join(str(c) for c in value)
    return value


def segment_text(tag: str, elements: Sequence[Element | Composite]) -> str:
    """``NM1*IL*1*C********T`` (trailing empty elements dropped; ``*`` separates elements)."""
    parts = [element_text(e) for e in elements]
    while parts and not parts[-1]:
        parts.pop()
    return "*".join([tag, *parts])


@dataclass(frozen=True)
class Phi:
    """Masks values unless the operator asked to reveal them (then values pass through)."""

    reveal: bool = False

    def name(self, value: str | None) -> str | None:
        return value if self.reveal or not value else mask_name(value)

    def member_id(self, value: str | None) -> str | None:
        return value if self.reveal or not value else mask_id(value)

    def birth_date(self, value: str | None) -> str | None:
        return value if self.reveal or not value else mask_date(value)

    def document(self, value: Any) -> Any:
        return value if self.reveal else mask_document(value)

    def file_name(self, value: str) -> str:
        """A file name (PHI when a billing system named it after a patient): a stable keyed mask."""
        return value if self.reveal else mask_file_name(value)

    def elements(self, tag: str, loops: Sequence[str], elements: Sequence[Element]) -> tuple[Element, ...]:
        return tuple(elements) if self.reveal else mask_elements(tag, loops, elements)

    def person(self, person: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The identifying fields of a request's subscriber or dependent, masked."""
        if not person:
            return None
        keys = ("last_name", "first_name", "middle_name", "member_id", "birth_date", "gender")
        shown: dict[str, Any] = self.document({k: person.get(k) for k in keys if person.get(k) is not None})
        return shown
