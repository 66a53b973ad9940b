"""The run loop: inbox -> outbound batches -> SFTP -> inbound -> records -> outbox, again and again.

Each cycle first finishes whatever a crash interrupted (every stage keeps its progress in the store),
then runs the stages in order. SIGTERM/SIGINT ask the loop to stop; the current step finishes first.
A failing partner is paused by the exchange stage while the others go on; an unexpected error in a
stage is logged and the loop continues with the next stage instead of crash-looping.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType

from gateway.errors import GatewayError
from gateway.runtime.config import GatewayConfig
from gateway.runtime.context import Context, utc_now
from gateway.runtime.fsutil import LocalIOError, remove_stale_temp_files
from gateway.runtime.logsetup import get_logger
from gateway.runtime.nodes import NodeRegistry, acquire_lease, dead_owners, is_sqlite, single_node_guard
from gateway.runtime.sdnotify import Notifier
from gateway.runtime.storeopen import open_store
from gateway.stages import batching, deadlines, exchange, inbound, intake
from gateway.stages.outbox import write_results
from gateway.store.payloads import PayloadStore
from mappings.mapper import MappingRules, default_rules, with_overrides
from transactions.errors import X12GatewayError

SWEEP_SECONDS = 600.0
TEMP_FILE_MAX_AGE_SECONDS = 600.0


@dataclass
class CycleSummary:
    taken: int = 0
    queued: int = 0
    uploaded: int = 0
    downloaded: int = 0
    processed: int = 0
    overdue: int = 0
    errors: int = 0

    @property
    def busy(self) -> bool:
        return any((self.taken, self.queued, self.uploaded, self.downloaded, self.processed))


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


class Gateway:
    """One node's run loop over a context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.rules = load_mapping_rules(ctx.config)
        self.stop = threading.Event()
        self._dead: list[str] = []  # owners found dead at the start of the current cycle
        self._next_sweep = 0.0

    def _stage(self, name: str, summary: CycleSummary, fn, *args):  # type: ignore[no-untyped-def]
        if self.stop.is_set() and name not in ("recover",):
            return 0
        try:
            return fn(*args)
        except (X12GatewayError, LocalIOError) as exc:
            summary.errors += 1
            disk_full = isinstance(exc, LocalIOError) and exc.disk_full
            self.ctx.log.error(
                "stage failed; will retry next cycle", stage=name, error=str(exc), disk_full=disk_full
            )
            return 0
        except Exception as exc:  # noqa: BLE001 - a bug in one stage must not crash-loop the whole gateway
            summary.errors += 1
            # the type only: the message of an unexpected error may quote data
            self.ctx.log.error(
                "stage failed unexpectedly; will retry next cycle", stage=name, error=type(exc).__name__
            )
            return 0

    def cycle(self) -> CycleSummary:
        s = CycleSummary()
        ctx = self.ctx
        self._stage("recover", s, intake.recover, ctx)
        self._stage("recover", s, inbound.recover, ctx)
        dead = self._stage("recover", s, self._dead_owners) or []
        self._dead = dead
        self._stage("recover", s, batching.release_expired, ctx, dead)
        self._stage("recover", s, inbound.release_expired, ctx, dead)
        self._stage("recover", s, self._sweep_temp_files)
        s.taken = self._stage("intake", s, intake.intake, ctx)
        s.queued = self._stage("batch", s, batching.batch_all, ctx)
        for partner in ctx.config.partners:
            if not self._holds_partner(partner.name):
                continue  # another node exchanges with this partner right now
            up, down = self._stage("exchange", s, exchange.exchange, ctx, partner) or (0, 0)
            s.uploaded += up
            s.downloaded += down
        s.processed = self._stage("inbound", s, inbound.process_downloaded, ctx, self.rules)
        s.overdue = self._stage("overdue", s, mark_overdue, ctx)
        s.overdue += self._stage("ack overdue", s, mark_ack_overdue, ctx)
        self._stage("alerts", s, deadlines.alert_changes, ctx)
        if s.busy or s.errors:
            ctx.log.info("cycle", **dict(vars(s)))
        return s

    def _dead_owners(self) -> list[str]:
        single = is_sqlite(self.ctx.config.database_url())
        silent = self.ctx.config.gateway.lease_seconds
        return dead_owners(
            self.ctx.store, self.ctx.node_id, self.ctx.clock(), single_node=single, silent_seconds=silent
        )

    def _holds_partner(self, name: str) -> bool:
        """One node at a time polls and uploads for a partner: take or renew its lease."""
        try:
            return acquire_lease(
                self.ctx.store,
                f"partner:{name}",
                self.ctx.node_id,
                self.ctx.config.gateway.lease_seconds,
                self.ctx.clock(),
                dead=self._dead,
            )
        except X12GatewayError as exc:
            self.ctx.log.error("partner lease failed", partner=name, error=str(exc))
            return False

    def _sweep_temp_files(self) -> int:
        """Every ``SWEEP_SECONDS``: remove temporary files a killed process left (see fsutil)."""
        if time.monotonic() < self._next_sweep:
            return 0
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        folders = self.ctx.config.folders
        now = self.ctx.clock().timestamp()
        return sum(
            remove_stale_temp_files(folder, now=now, older_than=TEMP_FILE_MAX_AGE_SECONDS)
            for folder in (folders.outbox, folders.quarantine, folders.archive, folders.payloads)
        )

    def run(self, *, once: bool = False, interval: float | None = None) -> None:
        wait = (
            interval
            if interval is not None
            else min((p.poll_seconds for p in self.ctx.config.partners), default=30.0)
        )
        single_node_guard(self.ctx.config.database_url(), self.ctx.config.folders.state)
        self._install_signals()
        registry = NodeRegistry(self.ctx.store, self.ctx.node_id, self.ctx.clock)
        registry.register()
        self.ctx.log.info(
            "gateway started", node=self.ctx.node_id, partners=[p.name for p in self.ctx.config.partners]
        )
        notifier = Notifier.from_env()
        ready = False
        try:
            while not self.stop.is_set():
                summary = self.cycle()
                registry.heartbeat()
                if not ready:
                    notifier.ready(f"node {self.ctx.node_id} running")
                    ready = True
                notifier.watchdog()
                if once:
                    break
                if not summary.busy:
                    notifier.idle_wait(self.stop, wait)
        finally:
            notifier.stopping()
            registry.stop()
        self.ctx.log.info("gateway stopped", node=self.ctx.node_id)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.ctx.log.info("stop requested", signal=signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def mark_overdue(ctx: Context) -> int:
    """Requests past their response deadline become ``overdue`` (visible to operators), once."""
    now = ctx.clock()
    count = 0
    with ctx.store.read() as tx:
        late = [
            r
            for state in ("sent", "acknowledged")
            for r in tx.list_requests(state=state, due_before=now, limit=500)
        ]
    for req in late:
        try:
            with ctx.store.begin() as tx:
                tx.set_request_state(
                    req.tracking_number,
                    "overdue",
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
    late: list[tuple[int, str]] = []
    with ctx.store.read() as tx:
        for f in tx.list_files(state="sent", direction="out", limit=1000):
            if f.updated_at >= cutoff:
                continue
            interchanges = tx.interchanges_of_file(f.id)
            groups = [g for ic in interchanges for g in tx.groups_of_interchange(ic.id)]
            if (
                interchanges
                and all(i.ack_status is None for i in interchanges)
                and all(g.ack_status is None for g in groups)
            ):
                late.append((f.id, f.name))
    for file_id, name in late:
        with ctx.store.begin() as tx:
            tx.set_file_state(
                file_id, "ack_overdue", expect="sent", reason="no 999/TA1 within the configured time"
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
