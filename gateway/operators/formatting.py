"""Output for people and for scripts: tables that fit the terminal, colours, JSON.

Tables are sized to the terminal (``COLUMNS`` when the output is piped, else 80): only flexible columns
(names, free text, never an identifier such as a file name, tracking, trace or certification number) are
shortened, widest first, with ``~`` marking a cut; a row of identifiers wider than that is left long.
Times show in the local time zone with the year (``--utc`` switches to UTC, see :func:`set_utc`).
Colours only on a terminal and never when ``NO_COLOR`` is set (https://no-color.org) or
``TERM=dumb``. JSON goes out unchanged by any of that, dates as ISO 8601.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

from gateway.lifecycle import FileState, RequestState

DEFAULT_WIDTH = 80
MIN_COLUMN = 4
CUT = "~"

_RED, _GREEN, _YELLOW, _DIM, _BOLD, _RESET = (
    "\033[31m",
    "\033[32m",
    "\033[33m",
    "\033[2m",
    "\033[1m",
    "\033[0m",
)
_PAINTER_CODES = re.compile(
    "(" + "|".join(re.escape(c) for c in (_RED, _GREEN, _YELLOW, _DIM, _BOLD, _RESET)) + ")"
)
# C0 and C1 controls, DEL, line/paragraph separators and bidirectional overrides: none may reach a
# terminal from data (a file name with a newline forges a table row; ANSI escapes rewrite the screen).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(found: re.Match[str]) -> str:
    ch = found.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def escape_controls(text: str, *, keep_colours: bool = False) -> str:
    """``text`` with every control character spelled out (``\\n``, ``\\x1b`` ...), so data shows as
    data. ``keep_colours`` spares exactly the painter's own colour codes (an injected one of those can
    only colour text; any other escape, a cursor move or a title change, is spelled out)."""
    if not keep_colours:
        return _CONTROLS.sub(_escape, text)
    parts = _PAINTER_CODES.split(text)
    return "".join(p if i % 2 else _CONTROLS.sub(_escape, p) for i, p in enumerate(parts))


# Lifecycle states (gateway.lifecycle), authorization and coverage statuses, and TA1/999 codes.
_BAD = frozenset(
    {
        RequestState.REJECTED,
        RequestState.INVALID,
        FileState.QUARANTINED,
        RequestState.OVERDUE,
        FileState.VANISHED,
        "denied",
        "R",
        "failed",
        "unmatched",
    }
)
_GOOD = frozenset(
    {
        FileState.ACCEPTED,
        RequestState.ANSWERED,
        FileState.DELIVERED,
        RequestState.SENT,
        "approved",
        "active",
        "A",
        "partially_approved",
    }
)
_WAIT = frozenset(
    {
        RequestState.PENDED,
        RequestState.QUEUED,
        RequestState.NEW,
        FileState.UPLOADING,
        FileState.CLAIMED,
        FileState.CLAIMING,
        FileState.DOWNLOADED,
        "E",
        "P",
    }
)


def wants_colour(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (to anything) or TERM is dumb."""
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def terminal_width(stream: TextIO) -> int:
    """The terminal's width; when the output is not a terminal, ``COLUMNS`` if set, else 80."""
    isatty = getattr(stream, "isatty", None)
    if isatty and isatty():
        return max(40, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)
    columns = os.environ.get("COLUMNS", "")
    return max(40, int(columns)) if columns.isdigit() else DEFAULT_WIDTH


_SHOW_UTC: ContextVar[bool] = ContextVar("show_utc", default=False)


def set_utc(flag: bool) -> None:
    """Human output shows times in UTC (``--utc``) instead of the local time zone."""
    _SHOW_UTC.set(flag)


def zone_label() -> str:
    """The zone human output shows times in (``UTC``, or the local zone's abbreviation)."""
    return "UTC" if _SHOW_UTC.get() else (datetime.now().astimezone().tzname() or "local")


def shown_time(value: datetime | str | None, *, seconds: bool = True) -> str:
    """A timestamp for people: ``2026-11-26 12:13:05 EST`` in the local zone (or UTC with ``--utc``),
    always with the year. Accepts what the store hands back and the ISO strings of the views; naive
    values are UTC (the store keeps UTC)."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC) if _SHOW_UTC.get() else moment.astimezone()
    text = moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text} {moment.tzname()}" if seconds else text


def json_default(value: Any) -> Any:
    """JSON for what the store hands back: datetimes and dates as ISO 8601, decimals as numbers."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(doc: Any, out: TextIO) -> None:
    json.dump(doc, out, indent=2, default=json_default)
    out.write("\n")


def json_line(doc: Any) -> str:
    return json.dumps(doc, default=json_default, separators=(",", ":"))


def short_time(value: datetime | None) -> str:
    """``2026-11-26 12:13`` in the shown zone (the column header names it): what a table has room for."""
    return shown_time(value, seconds=False)


def iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the cut marked with ``~``."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    return text[: width - 1] + CUT


@dataclass(frozen=True)
class Column:
    """A table column: header, the row key it shows, whether it may be shortened, right alignment.
    Only free text is ``flexible``; identifiers never are (an operator copies them into commands).
    ``{tz}`` in a header is replaced by the zone times are shown in."""

    header: str
    key: str
    flexible: bool = False
    right: bool = False
    colour: bool = False  # colour the value by what it says (state or acknowledgment code)


class Painter:
    """ANSI colours when enabled; plain text otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.enabled and text else text

    def state(self, text: str) -> str:
        """``text`` coloured by what it says: red for rejections, green for success, yellow for waiting."""
        key = text.strip()
        if key in _BAD:
            return self._wrap(text, _RED)
        if key in _GOOD:
            return self._wrap(text, _GREEN)
        if key in _WAIT:
            return self._wrap(text, _YELLOW)
        return text

    def bold(self, text: str) -> str:
        return self._wrap(text, _BOLD)

    def dim(self, text: str) -> str:
        return self._wrap(text, _DIM)


def _cell(value: Any) -> str:
    """A value as table text, controls spelled out here so that the column widths count them."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return short_time(value)
    if isinstance(value, list | tuple):
        return escape_controls(",".join(str(v) for v in value))
    return escape_controls(str(value))


def fit_widths(natural: list[int], columns: Sequence[Column], width: int) -> list[int]:
    """Shrink the flexible columns (widest first) until the row fits ``width``; the others keep their
    natural width, so an identifier is never cut (a row that still does not fit stays long)."""
    widths = list(natural)
    gaps = 2 * (len(widths) - 1)
    while sum(widths) + gaps > width:
        candidates = [i for i, c in enumerate(columns) if c.flexible and widths[i] > MIN_COLUMN]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def render_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, width: int, painter: Painter
) -> list[str]:
    """The table as lines: header, rule, one line per row, fitted to ``width``."""
    cells = [[_cell(row.get(c.key)) for c in columns] for row in rows]
    headers = [c.header.replace("{tz}", zone_label()) for c in columns]
    natural = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    widths = fit_widths(natural, columns, width)
    lines = [
        "  ".join(clip(h, w).ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for row in cells:
        parts = []
        for value, column, w in zip(row, columns, widths, strict=True):
            text = clip(value, w)
            pad = " " * (w - len(text))
            shown = painter.state(text) if column.colour else text
            parts.append(pad + shown if column.right else shown + pad)
        lines.append("  ".join(parts).rstrip())
    return lines


def render_pairs(pairs: Iterable[tuple[str, Any]], *, width: int, indent: int = 2) -> list[str]:
    """``key: value`` lines, keys aligned, empty values left out. Values are never cut (they hold
    identifiers); a long one wraps on the terminal. ``width`` is kept for the callers' symmetry."""
    del width
    shown = [(k, _cell(v)) for k, v in pairs if v not in (None, "", [], ())]
    if not shown:
        return []
    key_width = max(len(k) for k, _ in shown)
    return [f"{' ' * indent}{k.ljust(key_width)}  {v}" for k, v in shown]
