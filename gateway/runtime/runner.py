"""The run loop: inbox -> outbound batches -> SFTP -> inbound -> records -> outbox, again and again.

Each cycle first finishes whatever a crash interrupted (every stage keeps its progress in the store),
then runs the stages in order. SIGTERM/SIGINT ask the loop to stop; the current step finishes first.
A failing partner is paused by the exchange stage while the others go on; an unexpected error in a
stage is logged and the loop continues with the next stage instead of crash-looping. A database that
is away (refusing connections, or a full disk under SQLite) ends the cycle instead: the loop waits with
backoff and resumes by itself when it returns (``gateway.runtime.outage``).
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType

from gateway.errors import GatewayError, StoreError
from gateway.lifecycle import FileEvent, FileState, RequestEvent, RequestState
from gateway.runtime.config import GatewayConfig
from gateway.runtime.context import Context, utc_now
from gateway.runtime.fsutil import LocalIOError, remove_stale_temp_files
from gateway.runtime.logsetup import get_logger
from gateway.runtime.nodes import NodeRegistry, dead_owners, is_sqlite, single_node_guard
from gateway.runtime.outage import OutageWatch, is_outage, state_path
from gateway.runtime.sdnotify import Notifier
from gateway.runtime.storeopen import open_store
from gateway.stages import pipeline
from gateway.stages.base import RECOVER, Cycle, CycleSummary, Stage
from gateway.stages.inbox_skips import NoteSkippedInboxFiles
from gateway.stages.outbox import write_results
from gateway.store.payloads import PayloadStore
from mappings.mapper import MappingRules, default_rules, with_overrides
from transactions.errors import X12GatewayError

SWEEP_SECONDS = 600.0
TEMP_FILE_MAX_AGE_SECONDS = 600.0


def open_context(config: GatewayConfig, *, clock=utc_now, allow_upgrade: bool = False) -> Context:  # type: ignore[no-untyped-def]
    """The run loop's context: folders (0700), the store (schema and keys checked), payloads."""
    config.folders.ensure()
    store = open_store(config, role="run", allow_upgrade=allow_upgrade, clock=clock)
    return Context(
        config=config,
        store=store,
        payloads=PayloadStore(config.folders.payloads),
        member_key=config.member_hash_key(create=True),
        log=get_logger("x12gw"),
        node_id=config.gateway.node_id,
        clock=clock,
    )


def load_mapping_rules(config: GatewayConfig) -> MappingRules:
    rules = default_rules()
    folder: Path | None = config.mappings.override_dir
    if folder is None:
        return rules
    return with_overrides(rules, [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.xml"))])


class _StopEvent(threading.Event):
    """The stop request; setting it also ends the loop's idle wait (``Gateway.wake``)."""

    def __init__(self, wake: threading.Event) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake.set()


class Gateway:
    """One node's run loop over a context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.rules = load_mapping_rules(ctx.config)
        self.wake = threading.Event()  # ends the idle wait: a stop, or a background exchange ending
        self.stop: threading.Event = _StopEvent(self.wake)
        ctx.stop = self.stop  # the stages see a stop request too (see intake's batches)
        self.recovery: tuple[Stage, ...] = recovery_stages()
        self.stages: tuple[Stage, ...] = work_stages(ctx, self.rules)
        self.registry = NodeRegistry(ctx.store, ctx.node_id, ctx.clock)
        self.heartbeat_every = max(ctx.config.gateway.lease_seconds / 4, 0.5)
        self.abandoned = False  # set when a cycle was cut short by a database outage

    def _stage(self, stage: Stage, cycle: Cycle) -> None:
        """Run one stage; an error is counted and logged, and the loop goes on with the next stage.
        A database outage is raised on: it ends the cycle (every later stage would fail alike)."""
        try:
            stage(self.ctx, cycle)
        except (X12GatewayError, LocalIOError) as exc:
            if is_outage(exc):
                raise
            cycle.summary.errors += 1
            disk_full = isinstance(exc, LocalIOError) and exc.disk_full
            self.ctx.log.error(
                "stage failed; will retry next cycle", stage=stage.name, error=str(exc), disk_full=disk_full
            )
        except Exception as exc:  # noqa: BLE001 - a bug in one stage must not crash-loop the whole gateway
            cycle.summary.errors += 1
            # the type only: the message of an unexpected error may quote data
            self.ctx.log.error(
                "stage failed unexpectedly; will retry next cycle", stage=stage.name, error=type(exc).__name__
            )

    def cycle(self) -> CycleSummary:
        """Recovery first (even when a stop was asked for), then the work stages in order."""
        cycle = Cycle(abandoned=self.abandoned)
        for stage in self.recovery:
            self._stage(stage, cycle)
        for stage in self.stages:
            if not self.stop.is_set():
                self._stage(stage, cycle)
                # a long cycle must not look like a dead node (its claims would be taken over)
                self.registry.heartbeat_if_due(self.heartbeat_every)
        s = cycle.summary
        if s.errors:
            self.ctx.log.warning("cycle", **dict(vars(s)))
        elif s.busy:
            self.ctx.log.info("cycle", **dict(vars(s)))
        return s

    def run(self, *, once: bool = False, interval: float | None = None) -> CycleSummary:
        """Cycle until a stop is asked for (or once); the last cycle's summary."""
        wait = (
            interval
            if interval is not None
            else min((p.poll_seconds for p in self.ctx.config.partners), default=30.0)
        )
        single_node_guard(self.ctx.config.database_url(), self.ctx.config.folders.state)
        self._install_signals()
        watch = OutageWatch(
            self.ctx.log,
            self.ctx.node_id,
            self.ctx.clock,
            state_path(self.ctx.config.folders.state, self.ctx.node_id),
        )
        watch.start()
        exchanges = self._background_exchanges(once=once)
        self.ctx.log.info(
            "gateway started", node=self.ctx.node_id, partners=[p.name for p in self.ctx.config.partners]
        )
        notifier = Notifier.from_env()
        ready = registered = False
        summary = CycleSummary()
        try:
            while not self.stop.is_set():
                try:
                    if not registered:
                        self.registry.register()
                        registered = True
                    summary = self.cycle()
                    self.registry.heartbeat()
                except StoreError as exc:
                    if not is_outage(exc):
                        raise
                    self.abandoned = True
                    summary = CycleSummary(errors=1)
                    delay = watch.failed(exc)
                    notifier.watchdog()  # alive and waiting on purpose
                    if once:
                        break
                    notifier.idle_wait(self.wake, delay)
                    self.wake.clear()
                    continue
                watch.succeeded()
                self.abandoned = False
                if not ready:
                    notifier.ready(f"node {self.ctx.node_id} running")
                    ready = True
                notifier.watchdog()
                if once:
                    break
                if not summary.busy:
                    notifier.idle_wait(self.wake, wait)
                self.wake.clear()
        finally:
            notifier.stopping()
            for stage in exchanges:  # they see the stop between files and between read chunks
                stage.join(stage.partner.timeout_seconds + 5)
            self._unregister(registered)
            watch.stopped()
        self.ctx.log.info("gateway stopped", node=self.ctx.node_id)
        return summary

    def _background_exchanges(self, *, once: bool) -> list[pipeline.Exchange]:
        """The exchange stages; outside ``--once`` each partner exchanges in its own thread from now on,
        so a slow partner holds up nothing else."""
        exchanges = [s for s in self.stages if isinstance(s, pipeline.Exchange)]
        if not once:
            for stage in exchanges:
                stage.run_in_background(self.stop, self.wake)
        return exchanges

    def _unregister(self, registered: bool) -> None:
        """Mark this node stopped (its leases end now); with the database away, other nodes find it
        silent after ``lease_seconds`` instead."""
        if not registered:
            return
        try:
            self.registry.stop()
        except StoreError as exc:
            self.ctx.log.warning("node not marked stopped; the database is unavailable", error=str(exc))

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.ctx.log.info("stop requested", signal=signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def recovery_stages() -> tuple[Stage, ...]:
    """What runs at the start of every cycle, stop or not: finish what a crash interrupted."""
    return (
        FindDeadOwners(),  # first: recovering inbox claims needs to know whose may be taken over
        pipeline.RecoverIntake(),
        pipeline.RecoverInbound(),
        pipeline.ReleaseBatching(),
        pipeline.ReleaseInbound(),
        SweepTempFiles(),
    )


def work_stages(ctx: Context, rules: MappingRules) -> tuple[Stage, ...]:
    """The work of one cycle, in order; each is skipped once a stop was asked for."""
    return (
        NoteSkippedInboxFiles(),
        pipeline.Intake(),
        pipeline.Batch(),
        *(pipeline.Exchange(partner) for partner in ctx.config.partners),
        pipeline.Inbound(rules),
        MarkOverdue(),
        MarkAckOverdue(),
        pipeline.Alerts(),
    )


@dataclass(frozen=True, slots=True)
class FindDeadOwners:
    """Owners (nodes) whose leases may be taken over: their node is known dead, or (single node on
    SQLite) any owner but this one. Stored in the cycle for the release and lease steps."""

    name: str = RECOVER

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        single = is_sqlite(ctx.config.database_url())
        silent = ctx.config.gateway.lease_seconds
        now = ctx.clock()
        cycle.dead = dead_owners(ctx.store, ctx.node_id, now, single_node=single, silent_seconds=silent)
        if cycle.abandoned:  # this node's own claims too: the cycle that held them was cut short
            cycle.dead.append(ctx.node_id)


@dataclass(slots=True)
class SweepTempFiles:
    """Every ``SWEEP_SECONDS``: remove temporary files a killed process left (see fsutil)."""

    name: str = RECOVER
    next_sweep: float = 0.0

    def __call__(self, ctx: Context, _cycle: Cycle, /) -> None:
        if time.monotonic() < self.next_sweep:
            return
        self.next_sweep = time.monotonic() + SWEEP_SECONDS
        folders = ctx.config.folders
        now = ctx.clock().timestamp()
        for folder in (folders.outbox, folders.quarantine, folders.archive, folders.payloads):
            remove_stale_temp_files(folder, now=now, older_than=TEMP_FILE_MAX_AGE_SECONDS)


@dataclass(frozen=True, slots=True)
class MarkOverdue:
    """Requests past their response deadline become ``overdue``."""

    name: str = "overdue"

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        cycle.summary.overdue += mark_overdue(ctx)


@dataclass(frozen=True, slots=True)
class MarkAckOverdue:
    """Sent files without a 999/TA1 in time become ``ack_overdue``."""

    name: str = "ack overdue"

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        cycle.summary.overdue += mark_ack_overdue(ctx)


def mark_overdue(ctx: Context) -> int:
    """Requests past their response deadline become ``overdue`` (visible to operators), once."""
    now = ctx.clock()
    count = 0
    with ctx.store.read() as tx:
        late = [
            r
            for state in (RequestState.SENT, RequestState.ACKNOWLEDGED)
            for r in tx.requests.query(state=state, due_before=now, limit=500)
        ]
    for req in late:
        try:
            with ctx.store.begin() as tx:
                tx.requests.transition(
                    req.tracking_number,
                    RequestEvent.TIME_OUT,
                    expect=req.state,
                    reason="no response within the configured time",
                )
            count += 1
        except GatewayError:
            continue
    if count:
        write_results(ctx, [r.tracking_number for r in late])
        ctx.log.warning("requests overdue", count=count)
    return count


def mark_ack_overdue(ctx: Context) -> int:
    """Sent request files with no 999/TA1 after ``timeouts.ack_overdue_minutes`` become ``ack_overdue``."""
    cutoff = ctx.clock() - timedelta(minutes=ctx.config.timeouts.ack_overdue_minutes)
    with ctx.store.read() as tx:  # the one acknowledgment-overdue query, shared with ``x12gw overdue``
        late = [(f.id, f.name) for f in tx.files.unacknowledged(sent_before=cutoff, limit=1000)]
    for file_id, name in late:
        with ctx.store.begin() as tx:
            tx.files.transition(
                file_id,
                FileEvent.ACK_OVERDUE,
                expect=FileState.SENT,
                reason="no 999/TA1 within the configured time",
            )
        ctx.log.warning("acknowledgment overdue", file_id=file_id, file=name)
    return len(late)


def wait_until(predicate, timeout: float, step: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true or ``timeout`` seconds pass (used by the demo and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
