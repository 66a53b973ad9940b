"""The inbox's pre-certification gate: a 278 for services that need no pre-certification is answered
with a "not required" record instead of being sent, when ``[precert] answer_not_required`` is on.

The decision is pure (``policy.precert.decide_request`` over the configured rules and the latest
271 of the member from the same payer); this module only loads the rules and evidence and records
the answer. It runs right after the intake committed the request as ``new`` and before anything
batches it, so the 278 is either answered locally (request ``not_required``, an authorization record
with status ``not_required`` and the reason, the outbox file) or left to go out as usual. The move
from ``new`` is conditional: if another node already queued the request, the 278 simply goes out.
A crash between intake and gate leaves the request ``new``: it is then sent, the harmless direction.
"""

from __future__ import annotations

import functools
from pathlib import Path

from gateway.errors import ConfigError
from gateway.lifecycle import RequestEvent, RequestState
from gateway.runtime.config import GatewayConfig
from gateway.runtime.context import Context
from gateway.stages.outbox import write_results
from gateway.store import StaleStateError, Tx, hash_member_id
from mappings.records import AuthorizationRecord, ServiceDecision, blank_record
from policy.precert import (
    EMPTY_RULES,
    Evidence,
    PrecertRuleError,
    PrecertRules,
    RequestDecision,
    answer_locally,
    decide_request,
    evidence_from_record,
    parse_rules,
)
from transactions.jsonform import to_dict
from transactions.models import ServiceReviewRequest
from transactions.outbound import Request

NOT_REQUIRED = "not_required"


@functools.lru_cache(maxsize=8)
def _rules_at(path: Path, mtime_ns: int, size: int) -> PrecertRules:  # noqa: ARG001 - cache keys
    try:
        return parse_rules(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ConfigError(f"precert.rules_file: {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"precert.rules_file: {path} is not UTF-8") from None
    except PrecertRuleError as exc:
        raise ConfigError(f"precert.rules_file: {exc}") from None


def rules_from_file(path: Path | None) -> PrecertRules:
    """The rules in ``path`` (re-read when the file changes), or no rules at all for ``None``."""
    if path is None:
        return EMPTY_RULES
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"precert.rules_file: {path} cannot be read: {exc.strerror}") from None
    return _rules_at(path, st.st_mtime_ns, st.st_size)


def load_rules(config: GatewayConfig) -> PrecertRules:
    """The configured pre-certification rules (``[precert] rules_file``)."""
    return rules_from_file(config.precert.rules_file)


def member_evidence(tx: Tx, member_id_hash: str, payer_id: str | None) -> tuple[Evidence, ...]:
    """EB11 answers of the member's latest 271 from this payer (none when there is no such 271)."""
    row = tx.results.latest_eligibility_for_member(member_id_hash, payer_id=payer_id)
    if row is None or row.status != "active":
        return ()
    source = f"271 for {row.tracking_number} of {row.updated_at.date().isoformat()}"
    return (evidence_from_record(row.record, source),)


def gate_decision(ctx: Context, request: ServiceReviewRequest) -> RequestDecision:
    """What the rules and the member's latest 271 say about a 278 request (no side effects)."""
    member_hash = hash_member_id(request.subscriber.member_id or "", ctx.member_key)
    with ctx.store.read() as tx:
        evidence = member_evidence(tx, member_hash, request.payer.id)
    return decide_request(load_rules(ctx.config), request, evidence)


def local_record(decision: RequestDecision, request: ServiceReviewRequest) -> AuthorizationRecord:
    """The "not required" authorization record: a payer's record type, without PHI. What the rules
    said has no field of its own in a payer's record, so it goes into the messages: the bases of the
    decision on the record, each line's rule and evidence on the line."""
    return blank_record(
        AuthorizationRecord,
        status=NOT_REQUIRED,
        trace_number=request.trace_number,
        payer_id=request.payer.id,
        reason=decision.reason,
        request_category=request.request_category,
        service_type=request.service_type,
        messages=tuple(f"basis: {b}" for b in sorted({line.basis for line in decision.lines})),
        services=tuple(
            blank_record(
                ServiceDecision,
                procedure_code=line.procedure.code if line.procedure else None,
                revenue_code=line.revenue_code,
                status=NOT_REQUIRED,
                reason=d.reason,
                messages=tuple(
                    f"{label}: {text}" for label, text in (("rule", d.rule), ("evidence", d.evidence)) if text
                ),
            )
            for line, d in zip(request.lines, decision.lines, strict=False)
        ),
    )


def precert_gate(ctx: Context, request: Request) -> str | None:
    """Answer ``request`` locally when it needs no pre-certification; returns the reason, or None
    when the 278 is to be sent (gate off, not a 278, not an initial request, required or unknown).

    ``request.trace_number`` must be the tracking number the intake stored it under, in state ``new``.
    """
    if not ctx.config.precert.answer_not_required or not isinstance(request, ServiceReviewRequest):
        return None
    decision = gate_decision(ctx, request)
    if not answer_locally(decision, request):
        return None
    tracking = request.trace_number
    try:
        with ctx.store.begin() as tx:
            tx.requests.transition(
                tracking,
                RequestEvent.WAIVE,
                expect=RequestState.NEW,
                reason=f"no pre-certification needed: {decision.reason}",
                detail={"precert": sorted({line.basis for line in decision.lines})},
            )
            tx.results.upsert_authorization(
                tracking_number=tracking, status=NOT_REQUIRED, record=to_dict(local_record(decision, request))
            )
    except StaleStateError:
        return None  # already taken for sending by another node: the payer answers instead
    write_results(ctx, [tracking])
    ctx.log.info("278 answered locally: no pre-certification needed", tracking_number=tracking)
    return decision.reason
