"""Validate one large input across worker processes, transaction set by transaction set.

The parent reads the envelopes (cheap) and hands runs of transaction sets to workers for the IG walk
(the expensive part); the verdicts come back in order and are fed to the same envelope bookkeeping the
single-process validator uses, so the report is identical to ``transactions.validation.validate``'s,
whatever the number of workers. The only verdict that depends on earlier sets, a duplicate ST02 in
its group (IK502 23), is decided by the parent and passed along. Work in flight is bounded (a few
chunks per worker), so memory does not grow with the input.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from gateway.runtime import gcpolicy
from transactions import envelope_reader as env
from transactions.errors import X12SyntaxError
from transactions.findings import SetReport, ValidationReport
from transactions.segment import Delimiters, Segment

# the single-process validator's envelope bookkeeping and recovery are reused: only the IG walk moves
from transactions.validation import Options, _recover, _Validator, validate_set

CHUNK_SETS = 64  # sets per task: large enough that pickling is small beside the walk
IN_FLIGHT_PER_WORKER = 3


@dataclass(frozen=True, slots=True)
class _Job:
    """One set to walk, with what its verdict depends on besides its own segments."""

    tset: env.TransactionSet
    gs: Segment
    delimiters: Delimiters
    duplicate: bool  # its ST02 was already seen in its group


def _walk(jobs: list[_Job], opts: Options) -> list[SetReport]:
    """Worker side: the verdicts of a run of sets, in order."""
    out = []
    for job in jobs:
        seen = (job.tset.control_number,) if job.duplicate else ()
        out.append(validate_set(job.tset, job.gs, job.delimiters, seen, opts).report)
    return out


class _Fed(_Validator):
    """The validator's envelope bookkeeping, fed verdicts computed elsewhere (in order)."""

    def __init__(self, opts: Options) -> None:
        super().__init__(opts, keep_sets=False)
        self.ready: deque[SetReport] = deque()

    def _set(self, tset: env.TransactionSet) -> None:
        if self.group is None or self.start is None:
            return
        self.group.sets.append(self.ready.popleft())
        self.group.control_numbers.add(tset.control_number)


class _Tracker:
    """Follows the envelope as the validator will, to know each set's group, delimiters and whether
    its ST02 repeats; sets outside an interchange or group get no job (the validator skips them)."""

    def __init__(self) -> None:
        self.delimiters: Delimiters | None = None
        self.gs: Segment | None = None
        self.seen: set[str] = set()

    def job(self, event: env.Event) -> _Job | None:
        if isinstance(event, env.InterchangeStart):
            self.delimiters, self.gs = event.delimiters, None
        elif isinstance(event, env.GroupStart):
            self.gs, self.seen = event.gs, set()
        elif isinstance(event, env.GroupEnd):
            self.gs = None
        elif isinstance(event, env.InterchangeEnd):
            self.delimiters, self.gs = None, None
        elif isinstance(event, env.TransactionSet) and self.gs is not None and self.delimiters is not None:
            job = _Job(event, self.gs, self.delimiters, event.control_number in self.seen)
            self.seen.add(event.control_number)
            return job
        return None


class _Pipeline:
    """Events wait here until the verdicts of the sets among them are back, then are fed in order."""

    def __init__(self, pool: ProcessPoolExecutor, opts: Options, workers: int) -> None:
        self.pool, self.opts = pool, opts
        self.limit = workers * IN_FLIGHT_PER_WORKER
        self.validator = _Fed(opts)
        self.events: deque[tuple[env.Event, bool]] = deque()  # (event, waits for a verdict)
        self.chunk: list[_Job] = []
        self.futures: deque[Future[list[SetReport]]] = deque()

    def add(self, event: env.Event, job: _Job | None) -> None:
        self.events.append((event, job is not None))
        if job is not None:
            self.chunk.append(job)
            if len(self.chunk) >= CHUNK_SETS:
                self._submit()
        while len(self.futures) > self.limit:
            self._collect()
        self._feed()

    def finish(self) -> None:
        self._submit()
        while self.futures:
            self._collect()
        self._feed()

    def _submit(self) -> None:
        if self.chunk:
            self.futures.append(self.pool.submit(_walk, self.chunk, self.opts))
            self.chunk = []

    def _collect(self) -> None:
        self.validator.ready.extend(self.futures.popleft().result())
        self._feed()

    def _feed(self) -> None:
        ready = self.validator.ready
        while self.events and (not self.events[0][1] or ready):
            self.validator.feed(self.events.popleft()[0])


def validate_parallel(source: bytes | Iterable[bytes], opts: Options, workers: int) -> ValidationReport:
    """The report ``validate(source, opts)`` gives, computed with ``workers`` processes."""
    tracker = _Tracker()
    # spawn: workers start clean (no copy of a parent's threads or open store), the maps load once each
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=gcpolicy.apply_unwarmed) as pool:
        pipeline = _Pipeline(pool, opts, workers)
        fatal = None
        try:
            for event in env.iter_envelope(source):
                pipeline.add(event, tracker.job(event))
        except X12SyntaxError as exc:
            pipeline.finish()
            fatal = _recover(pipeline.validator, exc)
        else:
            pipeline.finish()
    return ValidationReport(tuple(pipeline.validator.reports), fatal)


def default_jobs() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
