"""The stages of the run loop as :class:`~gateway.stages.base.Stage` objects, one per step.

Each is a thin, frozen adapter: the work stays in its stage module (intake, batching, exchange,
inbound, deadlines); the object gives it the common ``(ctx, cycle)`` signature, a name for the logs
and the place in the summary its count goes to. The runner decides the order (see ``runner``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.runtime.nodes import acquire_lease
from gateway.runtime.outage import is_outage
from gateway.stages import batching, deadlines, exchange, inbound, intake
from gateway.stages.base import RECOVER, Cycle
from mappings.mapper import MappingRules
from transactions.errors import X12GatewayError


@dataclass(frozen=True, slots=True)
class RecoverIntake:
    """Finish inbox files a crash (or a node now dead) left half-claimed or processed but not moved."""

    name: str = RECOVER

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        intake.recover(ctx, cycle.dead)


@dataclass(frozen=True, slots=True)
class RecoverInbound:
    """Deliver the results of downloaded files processed before a crash."""

    name: str = RECOVER

    def __call__(self, ctx: Context, _cycle: Cycle, /) -> None:
        inbound.recover(ctx)


@dataclass(frozen=True, slots=True)
class ReleaseBatching:
    """Requests a dead node was batching go back to ``new``."""

    name: str = RECOVER

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        batching.release_expired(ctx, cycle.dead)


@dataclass(frozen=True, slots=True)
class ReleaseInbound:
    """Files a dead node was processing go back to ``downloaded``."""

    name: str = RECOVER

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        inbound.release_expired(ctx, cycle.dead)


@dataclass(frozen=True, slots=True)
class Intake:
    """Claim and process every complete inbox file."""

    name: str = "intake"

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        cycle.summary.taken += intake.intake(ctx)


@dataclass(frozen=True, slots=True)
class Batch:
    """Turn new requests into queued outbound files, per partner."""

    name: str = "batch"

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        cycle.summary.queued += batching.batch_all(ctx)


@dataclass(frozen=True)
class ExchangeReport:
    """What one partner exchange did, for the summary of the cycle that collects it."""

    uploaded: int = 0
    downloaded: int = 0
    errors: int = 0


@dataclass(slots=True)
class Exchange:
    """Upload and download for one partner, when this node holds the partner's lease (one node at a
    time exchanges with a partner). One stage per partner, so a failing partner spares the others.

    In the long-running loop (``run_in_background``) each partner exchanges in its own thread with its
    own SFTP connection, held to the partner's budget (files, bytes, seconds per cycle): the stage
    starts the exchange and returns, so a slow or hostile partner never holds up intake, inbound or
    the other partners. A later cycle collects the finished exchange's counts; meanwhile the stage only
    renews the partner's lease. Without it (``run --once``, tests) the exchange runs in the stage.
    """

    partner: PartnerConfig
    name: str = "exchange"
    _stop: threading.Event | None = field(default=None, repr=False)
    _wake: threading.Event | None = field(default=None, repr=False)
    _worker: threading.Thread | None = field(default=None, repr=False)
    _report: ExchangeReport | None = field(default=None, repr=False)
    _started: float = field(default=0.0, repr=False)
    _overrun_logged: bool = field(default=False, repr=False)

    def run_in_background(self, stop: threading.Event, wake: threading.Event) -> None:
        """Exchange in a thread from now on; ``stop`` ends it early, ``wake`` is set when it ends
        having moved files (so the loop processes them without waiting for the next poll)."""
        self._stop, self._wake = stop, wake

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        self._collect(cycle)
        if self._worker is not None and self._overran(ctx):
            return  # the lease is left to expire: another node may take the partner over
        if not holds_partner(ctx, self.partner.name, cycle.dead):
            return  # another node exchanges with this partner right now
        if self._worker is not None:
            return  # still exchanging (the lease was renewed above)
        if self._stop is None:
            self._add(cycle, self._exchange(ctx))
            return
        self._worker = threading.Thread(
            target=self._work, args=(ctx,), name=f"exchange-{self.partner.name}", daemon=True
        )
        self._started = time.monotonic()
        self._overrun_logged = False
        self._worker.start()

    def _overran(self, ctx: Context) -> bool:
        """A background exchange still running well past its budget (every transfer step is bounded
        by the budget or the partner's timeout, so only something stuck gets here): stop renewing the
        partner's lease for it, so that this node does not hold the partner for ever. Logged once."""
        limit = self.partner.max_seconds_per_cycle + 4 * self.partner.timeout_seconds
        if time.monotonic() - self._started <= limit:
            return False
        if not self._overrun_logged:
            self._overrun_logged = True
            ctx.log.error(
                "partner exchange overran its time budget; its lease is no longer renewed",
                partner=self.partner.name,
                seconds=round(time.monotonic() - self._started),
            )
        return True

    def busy(self) -> bool:
        """True while a background exchange runs."""
        return self._worker is not None and self._worker.is_alive()

    def join(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for a background exchange to end."""
        if self._worker is not None:
            self._worker.join(timeout)

    def _exchange(self, ctx: Context) -> ExchangeReport:
        failures = ctx.health.of(self.partner.name).failures
        up, down = exchange.exchange(ctx, self.partner, self._stop)
        failed = ctx.health.of(self.partner.name).failures > failures  # logged there
        return ExchangeReport(up, down, int(failed))  # a failure makes ``run --once`` exit 1

    def _work(self, ctx: Context) -> None:
        """The thread: the runner's error handling for this one stage; wakes the loop when files moved."""
        report = ExchangeReport(errors=1)
        try:
            report = self._exchange(ctx)
        except X12GatewayError as exc:
            disk_full = bool(getattr(exc, "disk_full", False))
            ctx.log.error(
                "stage failed; will retry next cycle",
                stage=self.name,
                partner=self.partner.name,
                error=str(exc),
                disk_full=disk_full,
            )
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the thread silently
            ctx.log.error(
                "stage failed unexpectedly; will retry next cycle",
                stage=self.name,
                partner=self.partner.name,
                error=type(exc).__name__,
            )
        finally:
            self._report = report
            if self._wake is not None and (report.downloaded or report.uploaded):
                self._wake.set()  # files to process now; an idle exchange waits for the next poll

    def _collect(self, cycle: Cycle) -> None:
        """Add a finished background exchange to this cycle's summary."""
        if self._worker is None or self._worker.is_alive():
            return
        self._worker.join()
        self._worker = None
        report, self._report = self._report, None
        if report is not None:
            self._add(cycle, report)

    @staticmethod
    def _add(cycle: Cycle, report: ExchangeReport) -> None:
        cycle.summary.uploaded += report.uploaded
        cycle.summary.downloaded += report.downloaded
        cycle.summary.errors += report.errors


def holds_partner(ctx: Context, partner: str, dead: list[str]) -> bool:
    """Take or renew the partner's lease; a store failure means "not this cycle" (logged)."""
    try:
        return acquire_lease(
            ctx.store,
            f"partner:{partner}",
            ctx.node_id,
            ctx.config.gateway.lease_seconds,
            ctx.clock(),
            dead=dead,
        )
    except X12GatewayError as exc:
        if is_outage(exc):
            raise  # the run loop waits the outage out
        ctx.log.error("partner lease failed", partner=partner, error=str(exc))
        return False


@dataclass(frozen=True, slots=True)
class Inbound:
    """Process downloaded files into records and deliver them to the outbox."""

    rules: MappingRules = field(repr=False)
    name: str = "inbound"

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        cycle.summary.processed += inbound.process_downloaded(ctx, self.rules)


@dataclass(frozen=True, slots=True)
class Alerts:
    """Log overdue and soon-expiring authorizations once per change."""

    name: str = "alerts"

    def __call__(self, ctx: Context, _cycle: Cycle, /) -> None:
        deadlines.alert_changes(ctx)
