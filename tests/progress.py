"""Waiting on progress, not on the clock: a slow, busy machine must not fail a test that is fine.

:func:`wait_progressing` polls ``done`` and gives up only when ``progress`` (any value that changes
while the system under test works: counts per state, a log file's size) has not changed for
``quiet_seconds``; the failure then says what it was waiting for and the last progress seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

QUIET_SECONDS = 300.0


def wait_progressing(
    done: Callable[[], bool],
    progress: Callable[[], Any],
    what: str | Callable[[], str],
    *,
    quiet_seconds: float = QUIET_SECONDS,
    step: float = 0.5,
    check: Callable[[], None] | None = None,
) -> None:
    """Return once ``done()``; fail when ``progress()`` stays the same for ``quiet_seconds``.
    ``what`` (or what it returns, at the time of failure) names the awaited outcome; ``check`` runs
    every step (e.g. asserting that a process is still alive)."""
    last = progress()
    changed = time.monotonic()
    while not done():
        if check is not None:
            check()
        now = progress()
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed > quiet_seconds:
            said = what() if callable(what) else what
            raise AssertionError(
                f"gave up waiting for {said}: nothing progressed for {quiet_seconds:.0f} s (last: {last})"
            )
        time.sleep(step)
