"""An accepted API call is recorded like an inbox file, so the normal pipeline traces, batches and
answers it: the body becomes a file row (partner ``api``, ``claiming -> claimed -> accepted``) and a
payload, the request a ``new`` request row of that file, and ``api_requests`` says which client made it,
under which Idempotency-Key and with which body -- all in one transaction, so a crash leaves either
everything or nothing. For a real-time partner the same transaction also queues the request (its
interchange built and recorded, its first attempt started: ``queue``), so a call is one commit
before its POST. Otherwise the pre-certification gate runs, as for the inbox.

A retried POST with the same key finds its ``api_requests`` row: the stored response is replayed; a
different body under the same key is refused; a call still waiting for its real-time answer is
reported as in progress (and, once the budget is long past, as accepted for the batch path).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy import exc as sa_exc

from gateway.errors import GatewayError
from gateway.lifecycle import FileEvent, FileState
from gateway.realtime.dispatch import QueueNow
from gateway.realtime.exchange import Attempt
from gateway.runtime.context import Context
from gateway.runtime.logsetup import phi_scope
from gateway.stages.batching import Built, ClaimedOnInsert, seal_names_ahead
from gateway.stages.intake import phi_values
from gateway.stages.precert_gate import precert_gate
from gateway.store import DuplicateKeyError, RequestRow, Store, Tx, hash_member_id
from gateway.store import schema as s
from gateway.store.errors import store_error
from gateway.store.repos.base import prebuilt, run
from gateway.web.apiauth import ApiClient
from transactions.outbound import Request, request_kind
from transactions.requests_json import request_to_obj

API_SOURCE = "api"  # the ``partner`` of the file rows of API calls (the inbox's are ``inbox``)
IN_PROGRESS_GRACE = timedelta(seconds=30)
# the call's row, on the store's fast path (run for every API call; no ids back)
_INSERT_CALL = prebuilt(("insert_call", "api_requests"), lambda: insert(s.api_requests))


class IdempotencyMismatchError(GatewayError):
    """The Idempotency-Key was used before with a different body."""


@dataclass(frozen=True)
class Submission:
    """The outcome of recording one call: a new request, or what an earlier call with the key got."""

    tracking_number: str
    request_id: int | None = None  # set for a request recorded by this call
    partner: str | None = None
    replay: tuple[int, dict[str, Any]] | None = None  # (status, body) of the earlier response
    in_progress: bool = False  # the earlier call with this key is still waiting for its answer
    started: Attempt | None = None  # queued and its first attempt started with the call (``queue``)


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _earlier(tx: Tx, client: ApiClient, key: str, digest: str, budget: float) -> Submission | None:
    t = s.api_requests
    row = tx.conn.execute(select(t).where(t.c.client_id == client.id, t.c.idempotency_key == key)).first()
    if row is None:
        return None
    m: RowMapping = row._mapping
    if m["body_sha256"] != digest:
        raise IdempotencyMismatchError("this Idempotency-Key was used with a different request body")
    if m["response_status"] is not None:
        return Submission(m["tracking_number"], replay=(m["response_status"], m["response_body"]))
    stale = tx.now() - m["created_at"] > timedelta(seconds=budget) + IN_PROGRESS_GRACE
    return Submission(m["tracking_number"], in_progress=not stale)


def submit(
    ctx: Context,
    client: ApiClient,
    body: bytes,
    req: Request,
    partner: str,
    *,
    idempotency_key: str | None,
    budget: float,
    queue: QueueNow | None = None,
) -> Submission:
    """Record the call (or find the earlier one with the same key); see the module docstring. With
    ``queue`` (a real-time partner; not for a 278 the pre-certification gate may answer) the request
    is numbered and its interchange built and stored before the transaction, then queued with its
    first attempt started in the same transaction as the call."""
    digest = body_digest(body)
    if idempotency_key is not None:
        with ctx.store.read() as tx:
            found = _earlier(tx, client, idempotency_key, digest, budget)
        if found is not None:
            return found
    assigner = ctx.config.identity.trace_assigner
    built: Built | None = None
    final: Request | None = None
    values: _RequestValues | None = None
    body_payload = ctx.payloads.stage(body)  # kept with the call's rows (a file when large)
    sha = body_payload.sha256
    try:
        with phi_scope(phi_values(req)):
            if queue is not None:  # numbered and built before the transaction, which only records it
                taken = queue.take_numbers()
                final = replace(req, trace_number=taken.tracking, trace_assigner=assigner)
                # the call's body is kept with our interchange, in one statement
                built = queue.build(final, taken, also=(body_payload,))
                values = _request_values(ctx, final, req.trace_number)
                seal_names_ahead(ctx, call_file_name(final.trace_number))
            with ctx.store.begin() as tx:
                if idempotency_key is not None:  # a concurrent retry may have won the race (SQLite)
                    found = _earlier(tx, client, idempotency_key, digest, budget)
                    if found is not None:
                        return found
                if final is None:  # its number committed with the rows that carry it: one commit, not two
                    tracking = ctx.store.new_tracking_numbers(1, tx=tx)[0]
                    final = replace(req, trace_number=tracking, trace_assigner=assigner)
                if values is None:
                    values = _request_values(ctx, final, req.trace_number)
                claimed = queue.claimed() if queue is not None and built is not None else None
                row = _record(tx, client, (body, sha), final, values, partner, claimed)
                if built is None:
                    ctx.payloads.record(tx, body_payload)
                _insert_call(tx, client, final.trace_number, idempotency_key, digest)
                started = queue.record(tx, row, built) if queue is not None and built is not None else None
    except DuplicateKeyError:  # PostgreSQL: the concurrent retry committed first; all of ours rolled back
        if idempotency_key is None:
            raise
        with ctx.store.read() as tx:
            found = _earlier(tx, client, idempotency_key, digest, budget)
        if found is None:
            raise
        return found
    tracking = final.trace_number
    if started is None:
        precert_gate(ctx, final)  # "not required": answered here, no 278
    ctx.log.info(
        "api request accepted",
        tracking_number=tracking,
        client=client.name,
        kind=request_kind(req).set_id,
        queued=started is not None,
    )
    return Submission(tracking, request_id=row.id, partner=partner, started=started)


def _insert_call(tx: Tx, client: ApiClient, tracking: str, key: str | None, digest: str) -> None:
    """The ``api_requests`` row of a call (DuplicateKeyError when a concurrent call took the key)."""
    values = {
        "client_id": client.id,
        "tracking_number": tracking,
        "idempotency_key": key,
        "body_sha256": digest,
        "created_at": tx.now(),
        "updated_at": tx.now(),
    }
    try:
        run(tx.conn, _INSERT_CALL, values)
    except sa_exc.SQLAlchemyError as exc:
        raise store_error(exc, "record api call") from None


@dataclass(frozen=True)
class _RequestValues:
    """The request row's values that do not depend on the transaction: its JSON (sealed) and hashes."""

    payload: dict[str, Any]
    stored_payload: str | None  # ``payload`` sealed (None: the store has no key ring)
    member_id_hash: str
    client_reference_hash: str | None


def _request_values(ctx: Context, final: Request, reference: str) -> _RequestValues:
    """Worked out before the transaction when the tracking number is known already (a real-time
    call's, from the process's block): the JSON encoding and encryption of the request, and its
    HMACs, then run without the writer lock."""
    payload = {**request_to_obj(final), "client_reference": reference}
    sealed = ctx.store.sealed_doc(payload)
    return _RequestValues(
        payload=payload,
        stored_payload=sealed if isinstance(sealed, str) else None,
        member_id_hash=hash_member_id(final.subscriber.member_id or "", ctx.member_key),
        client_reference_hash=hash_member_id(reference, ctx.member_key) if reference else None,
    )


def call_file_name(tracking: str) -> str:
    """The name of the file row of the call that made request ``tracking``."""
    return f"api-{tracking}.json"


def _record(  # noqa: PLR0917 - one request's rows
    tx: Tx,
    client: ApiClient,
    body: tuple[bytes, str],
    final: Request,
    values: _RequestValues,
    partner: str,
    claimed: ClaimedOnInsert | None = None,
) -> RequestRow:
    """The file row and request row of one call (``body``: its bytes and hash), as the inbox would
    have made them; with ``claimed`` (a real-time call whose interchange is built) the request is
    inserted claimed and queued already."""
    tracking = final.trace_number
    data, sha = body
    file_row = tx.files.record(
        direction="in",
        partner=API_SOURCE,
        name=call_file_name(tracking),
        sha256=sha,
        size=len(data),
        payload_path=None,
        state=FileState.CLAIMING,
        detail={"source": API_SOURCE, "client": client.name},
        # claimed and accepted as it is inserted (the event log still gets both changes)
        then=[(FileEvent.CLAIM, None), (FileEvent.ACCEPT, {"requests": 1, "rejected": 0, "payload": sha})],
    )
    return tx.requests.insert(
        tracking_number=tracking,
        kind=request_kind(final).set_id,
        payer_id=final.payer.id,
        partner=partner,
        source_file_id=file_row.id,
        payload=values.payload,
        stored_payload=values.stored_payload,
        member_id_hash=values.member_id_hash,
        client_reference_hash=values.client_reference_hash,
        detail={"source": API_SOURCE, "client": client.name},
        then=claimed.then if claimed is not None else (),
        ahead=claimed.ahead if claimed is not None else (),
        lease=claimed.lease if claimed is not None else None,
    )


def remember_response(store: Store, tracking: str, status: int, body: dict[str, Any]) -> None:
    """Keep the response given to the call that made ``tracking``, for a retry to replay."""
    t = s.api_requests
    with store.begin() as tx:
        tx.conn.execute(
            update(t)
            .where(t.c.tracking_number == tracking)
            .values(response_status=status, response_body=body, updated_at=tx.now())
        )


def owns(store: Store, client: ApiClient, tracking: str) -> bool:
    """Whether ``client`` made the request ``tracking`` through the API (a client reads only its own)."""
    t = s.api_requests
    with store.read() as tx:
        row = tx.conn.execute(
            select(t.c.id).where(t.c.tracking_number == tracking, t.c.client_id == client.id)
        ).first()
    return row is not None
