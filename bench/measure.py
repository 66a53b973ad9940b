"""Run one measurement in a fresh interpreter so its peak RSS is its own, and time it.

``BENCH_CLOCK=cpu`` times with the process's CPU time instead of the wall clock: on a machine shared
with other work the wall clock counts their time too, CPU time (of a single-threaded run) much less so.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from typing import TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def _child(
    fn: Callable[[*Ts], T],
    args: tuple[*Ts],
    out: Queue[tuple[float, float, T]],
    setup: Callable[[], object] | None,
) -> None:
    clock = time.process_time if os.environ.get("BENCH_CLOCK") == "cpu" else time.perf_counter
    if setup is not None:
        setup()  # what a long-running process has done before its work arrives: not timed
    start = clock()
    result = fn(*args)
    seconds = clock() - start
    out.put((seconds, peak_rss_mib(), result))


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM belongs to the address space, so it starts afresh at exec, unlike
    getrusage's ru_maxrss, which a spawned child inherits from its parent's high-water mark."""
    with open("/proc/self/status", encoding="ascii") as fh:  # noqa: PTH123
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    fn: Callable[[*Ts], T], *args: *Ts, setup: Callable[[], object] | None = None
) -> tuple[float, float, T]:
    """(seconds, peak RSS in MiB, fn's result) of ``fn(*args)`` run in a spawned process; ``setup``
    (picklable) runs in that process first, outside the timed part."""
    ctx = mp.get_context("spawn")
    queue: Queue[tuple[float, float, T]] = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue, setup))
    proc.start()
    seconds, peak, result = queue.get()
    proc.join()
    return seconds, peak, result
