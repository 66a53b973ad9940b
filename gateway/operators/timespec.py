"""Durations (``14d``, ``2h``, ``30m``, ``1d12h``) and points in time (a duration ago, or an ISO date).

Operators type these on the command line; the parsed value keeps "ago" relative so that the command,
not the argument parser, decides what *now* is (tests pass a fixed clock).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?[smhdw])+$")


def parse_duration(text: str) -> timedelta:
    """``30m`` -> 30 minutes; parts add up (``1d12h``). Units: s, m, h, d, w. ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    if not _WHOLE.match(compact):
        raise ValueError(f"{text!r} is not a duration like 30m, 2h, 14d or 1d12h")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class TimeSpec:
    """A point in time as typed: either absolute (UTC) or ``ago`` before whatever now turns out to be."""

    absolute: datetime | None = None
    ago: timedelta | None = None
    start_of_day: bool = False  # "today": midnight UTC of now's date

    def resolve(self, now: datetime) -> datetime:
        """The aware UTC datetime this spec names, relative to ``now``."""
        if self.absolute is not None:
            return self.absolute
        if self.start_of_day:
            return datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
        return now - (self.ago or timedelta())


def parse_time(text: str) -> TimeSpec:
    """``2h`` (two hours ago), ``now``, ``today`` (00:00 UTC), ``2026-01-31`` or an ISO datetime
    (``2026-01-31T08:00``, ``...Z`` or with an offset; without one it is taken as UTC)."""
    value = text.strip()
    lowered = value.lower()
    if lowered == "now":
        return TimeSpec(ago=timedelta())
    if lowered == "today":
        return TimeSpec(start_of_day=True)
    try:
        return TimeSpec(ago=parse_duration(value))
    except ValueError:
        pass
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return TimeSpec(absolute=datetime.combine(day, time(), tzinfo=UTC))
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use a duration ago (30m, 2h, 14d), 'today', or an ISO date/datetime"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return TimeSpec(absolute=moment.astimezone(UTC))


def duration_arg(text: str) -> timedelta:
    """argparse ``type=`` for durations (a bad value is a usage error, exit 2)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def time_arg(text: str) -> TimeSpec:
    """argparse ``type=`` for points in time (a bad value is a usage error, exit 2)."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_duration(seconds: float | None) -> str:
    """``3725`` -> ``1h02m``; short, for tables (None -> ``-``)."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
