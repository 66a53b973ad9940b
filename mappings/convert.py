"""Field-dict (from the engine) to typed values: dates, ranges, decimals, code texts."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from mappings.codes import FOLLOW_UP, REJECT_REASONS, text
from mappings.records import Rejection

_D8: dict[str, date | None] = {}
"""Dates read, by their text: a response repeats a few dates (plan, eligibility and service dates,
birth dates) across its sets, and a ``date`` is immutable. Bounded: cleared when full."""
_D8_LIMIT = 4096


def d8(value: str | None) -> date | None:
    """``YYYYMMDD`` (what follows is ignored) as a date, None when it is not one (remembered per
    text, :data:`_D8`)."""
    if not value:
        return None
    try:
        return _D8[value]
    except KeyError:
        pass
    if len(_D8) >= _D8_LIMIT:
        _D8.clear()
    found = _D8[value] = read_d8(value)
    return found


def read_d8(value: str) -> date | None:
    """:func:`d8` without the memo. Eight ASCII digits are read directly (what ``strptime`` would
    make of them); anything else goes to ``strptime``."""
    if len(value) < 8:
        return None
    head = value[:8]
    try:
        if head.isascii() and head.isdigit():
            return date(int(head[:4]), int(head[4:6]), int(head[6:]))
        return datetime.strptime(head, "%Y%m%d").date()  # noqa: DTZ007 - calendar dates
    except ValueError:
        return None


def date_range(value: str | None) -> tuple[date | None, date | None]:
    """``YYYYMMDD`` -> (d, None); ``YYYYMMDD-YYYYMMDD`` -> (start, end)."""
    if not value:
        return None, None
    if "-" in value:
        start, end = value.split("-", 1)
        return d8(start), d8(end)
    return d8(value), None


_DECIMALS: dict[str, Decimal | None] = {}
"""Decimals read, by their text, as :data:`_D8` (amounts, percents, quantities repeat; a ``Decimal``
is immutable). Bounded: cleared when full."""
_DECIMALS_LIMIT = 4096


def decimal(value: str | None) -> Decimal | None:
    """``value`` as a Decimal, None when empty or not a number (remembered per text, :data:`_DECIMALS`)."""
    if value is None or value == "":
        return None
    try:
        return _DECIMALS[value]
    except KeyError:
        pass
    if len(_DECIMALS) >= _DECIMALS_LIMIT:
        _DECIMALS.clear()
    found = _DECIMALS[value] = read_decimal(value)
    return found


def read_decimal(value: str) -> Decimal | None:
    """:func:`decimal` without the memo."""
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def integer(value: str | None) -> int | None:
    number = decimal(value)
    return int(number) if number is not None and number == number.to_integral_value() else None


def rejection(f: dict[str, Any]) -> Rejection:
    valid = f.get("valid_request")
    return Rejection(
        f.get("level"),  # level
        f.get("reason_code"),  # reason_code
        text(REJECT_REASONS, f.get("reason_code")),  # reason
        f.get("follow_up"),  # follow_up_code
        text(FOLLOW_UP, f.get("follow_up")),  # follow_up
        None if valid is None else valid == "Y",  # valid_request
    )


def rejections(items: list[dict[str, Any]]) -> tuple[Rejection, ...]:
    seen: list[Rejection] = []
    for item in items:
        r = rejection(item)
        if r not in seen:
            seen.append(r)
    return tuple(seen)
