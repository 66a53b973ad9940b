"""The HTTP API for billing systems, mounted at ``/api/v1`` by :func:`gateway.web.app.create_app`.

``POST /eligibility`` and ``POST /authorizations`` take one request in the inbox's JSON form. A body
is checked completely before anything is stored (every problem in one 422, by field path, never a
value); an accepted call is recorded like an inbox file (:mod:`gateway.web.apirecord`), so the run
loop batches and answers it. When the payer's partner is real time (``transport = "core"``) the call
waits up to ``[api] realtime_budget_seconds`` for the answer and returns it (200, the outbox file's
JSON); otherwise, or past the budget, 202 with the tracking number and a ``Location`` to poll.

Errors are ``application/problem+json`` (RFC 9457). Access logs are ours: one line per call with the
route's template (never the path: it holds tracking and certification numbers), status, client and
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import GatewayError
from gateway.realtime import slots
from gateway.realtime.dispatch import OnStored, QueueNow, queue_now, send_realtime
from gateway.realtime.dispatch import is_realtime as dispatch_is_realtime
from gateway.realtime.dispatch import run_in_worker as dispatch_run
from gateway.runtime.context import Context
from gateway.runtime.logsetup import get_logger
from gateway.runtime.storeopen import verified_member_key
from gateway.stages.intake import request_problems
from gateway.stages.outbox import result_document
from gateway.store.payloads import PayloadStore
from gateway.web import apiauth, apirecord
from gateway.web.apiauth import ApiAuthError, ApiClient
from gateway.web.context import WebContext, web_context
from gateway.web.openapi import document
from transactions.errors import RequestError, X12GatewayError
from transactions.jsoncheck import Problem, problems
from transactions.outbound import request_kind
from transactions.requests_json import request_from_obj

PREFIX = "/api/v1"
PROBLEM = "application/problem+json"
IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")  # printable ASCII, as the IETF draft's examples
_log = get_logger("x12gw.api")
_access = logging.getLogger("x12gw.api")  # whether the access line is wanted (structlog's own check)
_contexts_lock = threading.Lock()
_POLL_SECONDS = 0.05  # the budget timer's next look while a call is still being recorded


class ApiProblemError(GatewayError):
    """An answer other than success, with its status, title and (for 422) the field problems."""

    def __init__(
        self,
        status: int,
        title: str,
        errors: list[Problem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status, self.title, self.errors, self.headers = status, title, errors, headers or {}


def problem(status: int, title: str, errors: list[Problem] | None = None, **headers: str) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if errors is not None:
        body["errors"] = [{"field": f, "reason": r} for f, r in errors]
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="x12gw"')
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def api_context(web: WebContext) -> Context:
    """The run-loop context the API records requests with (made on first use: the store's schema may
    have been behind when ``serve`` started)."""
    ctx: Context | None = getattr(web, "api_ctx", None)
    if ctx is None:
        with _contexts_lock:
            ctx = getattr(web, "api_ctx", None)
            if ctx is None:
                ctx = Context(
                    config=web.config,
                    store=web.store,
                    payloads=PayloadStore(web.config.folders.payloads),
                    member_key=verified_member_key(web.config, web.store),
                    log=_log,
                    node_id=web.config.gateway.node_id,
                    clock=web.clock,
                )
                web.api_ctx = ctx  # type: ignore[attr-defined]  # cached on the app's context
    return ctx


Handler = Callable[[Request, WebContext, ApiClient], Awaitable[Response]]


Renderer = Callable[[Exception], Response | None]  # an error's answer, or None: not one it knows
UNAVAILABLE = "the gateway cannot take calls now (see /readyz)"


def problem_for(exc: Exception) -> Response | None:
    """The API's answers: RFC 9457 problem documents."""
    if isinstance(exc, ApiAuthError):
        return problem(exc.status, exc.title)
    if isinstance(exc, ApiProblemError):
        return problem(exc.status, exc.title, exc.errors, **exc.headers)
    return None


def endpoint(
    scope: str, template: str, handler: Handler, *, render: Renderer = problem_for, area: str = "api"
) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` behind authentication, the scope check, error answers (``render``: problem
    documents for the API, OperationOutcomes for the FHIR door) and our access line."""

    async def call(request: Request) -> Response:
        started = time.perf_counter()
        web = web_context(request)
        client: ApiClient | None = None
        try:
            client = apiauth.remembered(
                web.store, request, scope
            )  # a remembered client needs no worker thread
            if client is None:
                client = await run_in_threadpool(apiauth.authorize, web.store, request, scope)
            response = await handler(request, web, client)
        except Exception as exc:
            answer = render(exc)
            if answer is None and isinstance(exc, X12GatewayError):  # store or key unusable: no trace
                _log.error(f"{area} call failed", route=template, error=type(exc).__name__)
                answer = render(ApiProblemError(503, UNAVAILABLE, headers={"Retry-After": "5"}))
            if answer is None:
                raise
            response = answer
        response.headers.setdefault("cache-control", "no-store")
        if _access.isEnabledFor(logging.INFO):  # the check structlog's chain makes, without a bind
            _log.info(
                f"{area} call",
                method=request.method,
                route=template,
                status=response.status_code,
                client=client.name if client else None,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
        return response

    return call


async def _json_body(request: Request, limit: int) -> tuple[bytes, Any]:
    if "json" not in request.headers.get("content-type", ""):
        raise ApiProblemError(415, "the body must be application/json")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiProblemError(413, f"the body is larger than {limit} bytes")
    try:
        return body, json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiProblemError(422, "the request is invalid", [("document", "not valid JSON")]) from None


def _request(obj: Any, kind: str, web: WebContext) -> tuple[Any, str]:
    """The checked request and its partner, or a 422 listing every problem."""
    found = problems(obj, kind=kind)
    if found:
        raise ApiProblemError(422, "the request is invalid", found)
    try:
        req = request_from_obj({**obj, "type": kind})
    except RequestError as exc:  # jsoncheck found none, so this is a rule only the whole request has
        raise ApiProblemError(422, "the request is invalid", [(exc.field or "request", exc.reason)]) from None
    more = request_problems(req)
    if more:
        raise ApiProblemError(422, "the request is invalid", [(p["field"], p["reason"]) for p in more])
    partner = web.config.partner_for_payer(req.payer.id)
    if partner is None:
        raise ApiProblemError(
            422, "the request is invalid", [("payer.id", "no trading partner is configured for this payer")]
        )
    return req, partner.name


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise ApiProblemError(400, "Idempotency-Key must be 1-255 printable ASCII characters")
    return key


def is_realtime(web: WebContext, partner: str) -> bool:
    """Whether ``partner`` answers in real time (a CAQH CORE partner in real-time mode, not batch), so
    a call waits for its answer."""
    return dispatch_is_realtime(web.config.partner(partner))


def realtime_answer(
    ctx: Context, sub: apirecord.Submission, budget: float, on_stored: OnStored, *, inline: bool = False
) -> bool:
    """Send the request just recorded to its real-time partner and wait for the answer, at most
    ``budget`` seconds (``on_stored`` and ``inline`` as ``send_realtime`` takes them)."""
    assert sub.request_id is not None  # noqa: S101 - a new request
    return send_realtime(
        ctx,
        sub.request_id,
        budget_seconds=budget,
        on_stored=on_stored,
        new_for=sub.partner,
        tracking=sub.tracking_number,
        started=sub.started,
        inline=inline,
    )


def _answered(
    ctx: Context, sub: apirecord.Submission, budget: float, on_stored: OnStored, *, inline: bool
) -> bool:
    """Whether the real-time answer came in time; a transport failure leaves the request to the run
    loop (it is stored; the caller gets a 202) and is logged without PHI."""
    try:
        return realtime_answer(ctx, sub, budget, on_stored, inline=inline)
    except X12GatewayError as exc:
        _log.warning("real-time call failed; left to the run loop", request_id=sub.request_id, error=str(exc))
        return False


def _accepted(tracking: str) -> tuple[int, dict[str, Any]]:
    location = f"{PREFIX}/requests/{tracking}"
    return 202, {"tracking_number": tracking, "state": "accepted", "location": location}


def _reply(status: int, body: dict[str, Any], *, replayed: bool = False) -> Response:
    headers = {"Location": body["location"]} if status == 202 else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=status, headers=headers)


def submit_handler(kind: str) -> Handler:
    async def submit(request: Request, web: WebContext, client: ApiClient) -> Response:
        key = _idempotency_key(request)
        body, obj = await _json_body(request, web.config.api.max_body_bytes)
        req, partner = _request(obj, kind, web)
        return await _in_one_thread(web, client, (body, req, partner), key)

    return submit


class _Call:
    """One call's answer, decided once, under ``lock``: by its thread (the result, a replay, 202 after
    a failure) or by the event loop when the budget passes first (then the thread, still storing the
    late answer, adds nothing). ``deadline`` is set once the call is recorded (the budget starts
    there, as in ``send_realtime``), with the tracking number the loop's 202 names."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deadline: float | None = None
        self.tracking = ""
        self.by = ""  # who decided the answer: "thread" or "loop"

    def decide(self, by: str) -> bool:
        """Whether ``by`` decides the answer (nobody did before, or ``by`` itself did)."""
        with self.lock:
            self.by = self.by or by
            return self.by == by


Outcome = Response | BaseException | tuple[int, dict[str, Any]]  # a tuple: the budget passed


async def _in_one_thread(
    web: WebContext, client: ApiClient, call: tuple[bytes, Any, str], key: str | None
) -> Response:
    """The call's synchronous part in one delivery thread, end to end: recorded, sent to a real-time
    partner and its answer stored (``send_realtime(inline=True)``), answered. The event loop waits
    for that thread without a worker of its own; a timer answers 202 at the budget while the thread
    goes on storing the late answer (a hand-off less per call than a worker thread waiting for a
    delivery thread)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Outcome] = loop.create_future()
    state = _Call()
    budget = web.config.api.realtime_budget_seconds

    def settle(outcome: Outcome) -> None:
        if not future.done():
            future.set_result(outcome)

    def job() -> None:
        outcome: Outcome | None
        try:
            outcome = _submitted(web, client, call, key, state)
        except BaseException as exc:  # noqa: BLE001 - answered by the endpoint (problem, 503, 500), never lost
            # the pool thread goes on; an exit request is the event loop's to honour, not this call's
            failed = (
                exc
                if isinstance(exc, Exception)
                else RuntimeError(f"api call stopped ({type(exc).__name__})")
            )
            outcome = failed if state.decide("thread") else None
            if outcome is None:
                _log.error("api call failed after its budget", error=type(exc).__name__)
        if outcome is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (serve stopped): nobody waits
                loop.call_soon_threadsafe(settle, outcome)

    def expire() -> None:
        with state.lock:
            if state.by:
                return
            if state.deadline is None or time.monotonic() < state.deadline:  # not recorded yet, or later
                timer[0] = loop.call_at(state.deadline or loop.time() + _POLL_SECONDS, expire)
                return
            state.by = "loop"
        settle(_accepted(state.tracking))

    timer = [loop.call_later(budget, expire)]
    dispatch_run(job)
    try:
        outcome = await future
    finally:
        timer[0].cancel()
    if isinstance(outcome, BaseException):
        raise outcome
    if isinstance(outcome, tuple):  # the budget passed: remembered as the thread would have
        if key is not None:
            await run_in_threadpool(
                apirecord.remember_response, web.store, outcome[1]["tracking_number"], *outcome
            )
        return _reply(*outcome)
    return outcome


def _submitted(
    web: WebContext, client: ApiClient, call: tuple[bytes, Any, str], key: str | None, state: _Call
) -> Response | None:
    """Record the call (``body``, the checked request, its partner) and answer it: a replay, a
    conflict, 202, or the real-time result; None when the event loop answered first (the budget
    passed while the answer was being fetched: it is stored all the same)."""
    body, req, partner = call
    ctx = api_context(web)
    budget = web.config.api.realtime_budget_seconds
    queue = _queue_with_call(ctx, web, req, partner)
    try:
        with slots.CALLS.ahead():  # recording: store-and-compute work, in the line served first (``slots``)
            sub = apirecord.submit(
                ctx, client, body, req, partner, idempotency_key=key, budget=budget, queue=queue
            )
    except apirecord.IdempotencyMismatchError as exc:
        raise ApiProblemError(422, str(exc)) from None
    if sub.replay is not None:
        return _reply(*sub.replay, replayed=True)
    if sub.in_progress:
        raise ApiProblemError(
            409, "a call with this Idempotency-Key is still in progress", headers={"Retry-After": "1"}
        )
    if sub.request_id is None:  # an earlier call with this key never finished: answer as accepted
        return _reply(*_accepted(sub.tracking_number), replayed=True)
    with state.lock:  # the budget starts now (the loop's timer waits for this)
        state.deadline, state.tracking = time.monotonic() + budget, sub.tracking_number
    status, out = _outcome(ctx, web, sub, budget, inline=True)
    if not state.decide("thread"):
        return None  # answered 202 at the budget by the event loop
    if key is not None:  # only a retry with the key replays it
        apirecord.remember_response(web.store, sub.tracking_number, status, out)
    return _reply(status, out)


def _queue_with_call(ctx: Context, web: WebContext, req: Any, partner: str) -> QueueNow | None:
    """What queues a real-time call's request in the transaction recording it: for a real-time
    partner, unless the request is one the pre-certification gate may answer instead (a 278 with
    ``[precert] answer_not_required``: the gate runs after the call is recorded, on a ``new`` request)."""
    if not is_realtime(web, partner):
        return None
    if web.config.precert.answer_not_required and request_kind(req).set_id == "278":
        return None
    return queue_now(ctx, web.config.partner(partner))


def _outcome(
    ctx: Context, web: WebContext, sub: apirecord.Submission, budget: float, *, inline: bool = False
) -> tuple[int, dict[str, Any]]:
    """200 with the result when a real-time partner answered in time, else 202 (``inline``: the
    delivery in this thread, see ``send_realtime``)."""
    assert sub.request_id is not None  # noqa: S101 - a new request
    assert sub.partner is not None  # noqa: S101 - a new request
    results: list[dict[str, Any]] = []  # the result document of the stored request
    failed: list[X12GatewayError] = []  # a store failure reading it: the call's, not the payer's

    def read_result(document: Callable[[], dict[str, Any]]) -> None:
        try:
            results.append(document())
        except X12GatewayError as exc:
            failed.append(exc)

    if is_realtime(web, sub.partner) and _answered(ctx, sub, budget, read_result, inline=inline):
        if failed:
            raise failed[0]
        return 200, results[0]
    return _accepted(sub.tracking_number)


def _result(web: WebContext, client: ApiClient, tracking: str) -> dict[str, Any] | None:
    if not apirecord.owns(web.store, client, tracking):
        return None
    with web.store.read() as tx:
        row = tx.requests.get_by_tracking(tracking)
        return None if row is None else result_document(tx, row)


async def get_request(request: Request, web: WebContext, client: ApiClient) -> Response:
    doc = await run_in_threadpool(_result, web, client, request.path_params["tracking"])
    if doc is None:
        raise ApiProblemError(404, "no request of this client has that tracking number")
    return JSONResponse(doc)


def _authorization(web: WebContext, client: ApiClient, number: str) -> dict[str, Any] | None:
    """By tracking number, else by certification number (the newest of this client's requests)."""
    doc = _result(web, client, number)
    if doc is not None:
        return doc if doc["kind"] == "278" else None
    with web.store.read() as tx:
        found = tx.results.find_authorizations(certification_number=number, limit=50)
    for auth in sorted(found, key=lambda a: a.id, reverse=True):
        doc = _result(web, client, auth.tracking_number)
        if doc is not None:
            return doc
    return None


async def get_authorization(request: Request, web: WebContext, client: ApiClient) -> Response:
    doc = await run_in_threadpool(_authorization, web, client, request.path_params["number"])
    if doc is None:
        raise ApiProblemError(
            404, "no authorization of this client has that tracking or certification number"
        )
    return JSONResponse(doc)


async def openapi(_request: Request) -> Response:
    return JSONResponse(document())


def lean_routes() -> dict[str, Callable[[Request], Awaitable[Response]]]:
    """The POST endpoints, relative to ``/api/v1``, that ``gateway.web.app.GatewayApp`` calls
    directly (the same endpoints ``routes`` has)."""
    return {
        "/eligibility": endpoint("eligibility:write", "POST /eligibility", submit_handler("270")),
        "/authorizations": endpoint("authorizations:write", "POST /authorizations", submit_handler("278")),
    }


def routes() -> list[Route]:
    """The API's routes, relative to ``/api/v1`` (the OpenAPI document describes each one)."""
    lean = lean_routes()
    return [
        Route("/eligibility", lean["/eligibility"], methods=["POST"]),
        Route("/authorizations", lean["/authorizations"], methods=["POST"]),
        Route(
            "/requests/{tracking}",
            endpoint("requests:read", "GET /requests/{tracking}", get_request),
            methods=["GET"],
        ),
        Route(
            "/authorizations/{number}",
            endpoint("authorizations:read", "GET /authorizations/{number}", get_authorization),
            methods=["GET"],
        ),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]


# The FHIR front door (gateway/web/fhir.py) answers in FHIR but takes requests through the same steps.
json_body = _json_body
checked_request = _request
idempotency_key = _idempotency_key
call_outcome = _outcome
own_result = _result
