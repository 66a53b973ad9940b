"""The stages of the run loop as :class:`~gateway.stages.base.Stage` objects, one per step.

Each is a thin, frozen adapter: the work stays in its stage module (intake, batching, exchange,
inbound, deadlines); the object gives it the common ``(ctx, cycle)`` signature, a name for the logs
and the place in the summary its count goes to. The runner decides the order (see ``runner``).
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class Exchange:
    """Upload and download for one partner, when this node holds the partner's lease (one node at a
    time exchanges with a partner). One stage per partner, so a failing partner spares the others."""

    partner: PartnerConfig
    name: str = "exchange"

    def __call__(self, ctx: Context, cycle: Cycle, /) -> None:
        if not holds_partner(ctx, self.partner.name, cycle.dead):
            return  # another node exchanges with this partner right now
        failures = ctx.health.of(self.partner.name).failures
        up, down = exchange.exchange(ctx, self.partner)
        if ctx.health.of(self.partner.name).failures > failures:
            cycle.summary.errors += 1  # the exchange failed (logged there): ``run --once`` exits 1
        cycle.summary.uploaded += up
        cycle.summary.downloaded += down


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
