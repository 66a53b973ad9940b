"""The interpreter's thread switch interval in ``x12gw serve``: 1 ms instead of CPython's 5 ms.

Why: a real-time API call's threads (the event loop, the call threads in their slots) take turns on
the interpreter lock, and a thread that wants it back waits until the holder lets go on its own (a
blocking call) or for the switch interval to pass, whichever comes first. The thread holding
SQLite's write lock lets the interpreter lock go at every step of a statement and may then wait a
whole interval to take it back, with every other writer waiting behind it; the event loop may wait
one interval before it can read a request or send an answer. A shorter interval bounds those waits
(the writer lock's held wall time is ~1.4x its CPU) for a few more switches where threads compete.
``bench/bench_api.py`` (600 calls, 16 clients, payer 200 ms, tmpfs, a 2-core machine at load 4-6):
overhead p95 lower in 6 of 7 alternating pairs (median 122 -> 97 ms), CPU per call within the noise.
``X12GW_SWITCH_INTERVAL`` (seconds) sets another value; ``0`` or ``default`` keeps CPython's.
"""

from __future__ import annotations

import os
import sys

ENV = "X12GW_SWITCH_INTERVAL"
SERVE_INTERVAL = 0.001


def apply() -> float:
    """Set ``serve``'s switch interval (``$X12GW_SWITCH_INTERVAL`` or :data:`SERVE_INTERVAL`) and
    return the interval now in force; a value that is not a positive number keeps the current one."""
    text = os.environ.get(ENV, "").strip().lower()
    if text in ("0", "default", "off"):
        return sys.getswitchinterval()
    try:
        interval = float(text) if text else SERVE_INTERVAL
    except ValueError:
        return sys.getswitchinterval()
    if interval > 0:
        sys.setswitchinterval(interval)
    return sys.getswitchinterval()
