"""Retention periods as operators write them: ``7y``, ``18m``, ``90d``, ``12w``, ``36h`` or ``never``.

A year is 365 days and a month 30 days: retention rules are stated in whole periods and erring by a day
or two towards keeping data longer is the safe side, so no calendar arithmetic is needed.
"""

from __future__ import annotations

import re
from datetime import timedelta

from gateway.errors import ConfigError

_PATTERN = re.compile(r"^\s*(\d{1,5})\s*([ymwdh])\s*$", re.IGNORECASE)
_UNIT_DAYS = {"y": 365.0, "m": 30.0, "w": 7.0, "d": 1.0, "h": 1 / 24}
NEVER = "never"


def parse_period(text: str, what: str = "period") -> timedelta | None:
    """``text`` as a timedelta, None for ``never``; ConfigError naming ``what`` otherwise."""
    if text.strip().lower() == NEVER:
        return None
    match = _PATTERN.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"{what}: {text!r} is not a period such as 7y, 18m, 90d, 12w, 36h or never")
    return timedelta(days=int(match.group(1)) * _UNIT_DAYS[match.group(2).lower()])
