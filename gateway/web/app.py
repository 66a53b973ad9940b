"""The application factory of ``x12gw serve``: one Starlette app, one mount per area.

``/healthz``, ``/readyz`` and ``/metrics`` sit at the root (probes and scrapers need no login and see
no PHI); the console is mounted at ``/console``, the HTTP API at ``/api/v1``. Later areas (FHIR) add
their mounts in :func:`create_app` and share the :class:`~gateway.web.context.WebContext` in
``app.state.gw``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.operators.session import utc_now
from gateway.runtime import gcpolicy, switching
from gateway.runtime.config import GatewayConfig, load_config
from gateway.runtime.logsetup import configure_from_settings, configure_logging
from gateway.runtime.storeopen import open_store
from gateway.store import Store
from gateway.web import api, console, fhir
from gateway.web.context import WebContext, web_context
from gateway.web.health import readiness
from gateway.web.metrics import exposition

SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """Adds the browser hardening headers to every response, and ``no-store`` to console pages
    (they may hold revealed PHI or operational detail that should not sit in a shared cache)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        console_page = str(scope.get("path", "")).startswith("/console")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if console_page and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def secured(response: Response) -> Response:
    """``response`` with the hardening headers it does not set itself (``SecurityHeaders``' rule for
    a response that does not pass through it)."""
    names = {k for k, _ in response.raw_headers}
    response.raw_headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in names)
    return response


Endpoint = Callable[[Request], Awaitable[Response]]


class GatewayApp(Starlette):
    """The app, with a short way for the API's busiest calls: ``POST /api/v1/eligibility`` and
    ``/authorizations`` go straight to their endpoints (``lean``), past the middleware stack and the
    router's walk over every route, which cost a real-time call more CPU than its own checks. The
    endpoint still does everything (authentication, scopes, limits, validation, idempotency, access
    line); this adds what the stack would: the security headers and, for an unexpected error, a
    plain 500 with the error left to the server's log (``ServerErrorMiddleware``)."""

    lean: dict[tuple[str, str], Endpoint]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            found = self.lean.get((scope["method"], scope["path"]))
            if found is not None:
                scope["app"] = self
                await _lean_call(found, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _lean_call(endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await endpoint(Request(scope, receive))
    except Exception:
        await secured(PlainTextResponse("Internal Server Error", status_code=500))(scope, receive, send)
        raise
    await secured(response)(scope, receive, send)


def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    ctx = web_context(request)
    result = await run_in_threadpool(readiness, ctx.store, ctx.config, ctx.clock)
    body = {"ready": result.ready, "reasons": list(result.reasons), "checks": result.checks}
    if "json" not in request.headers.get("accept", ""):
        text = "ready\n" if result.ready else "not ready: " + "; ".join(result.reasons) + "\n"
        return PlainTextResponse(text, status_code=200 if result.ready else 503)
    return JSONResponse(body, status_code=200 if result.ready else 503)


async def metrics(request: Request) -> Response:
    ctx = web_context(request)
    assert ctx.registry is not None  # noqa: S101 - set in WebContext.__post_init__
    data = await run_in_threadpool(exposition, ctx.registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)


def to_console(_request: Request) -> Response:
    return RedirectResponse("/console/", status_code=307)


def create_app(
    config: GatewayConfig,
    store: Store,
    *,
    clock: Callable[[], datetime] = utc_now,
    secure_cookies: bool = False,
) -> Starlette:
    """The whole HTTP side, over an open store (the caller owns it and closes it)."""
    app = GatewayApp(
        routes=[
            Route("/", to_console),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/console", to_console),
            Mount("/console", routes=console.routes()),
            Mount(api.PREFIX, routes=api.routes()),
            Mount("/fhir", routes=fhir.routes()),
        ]
    )
    app.lean = {("POST", api.PREFIX + path): call for path, call in api.lean_routes().items()}
    app.state.gw = WebContext(config=config, store=store, clock=clock, secure_cookies=secure_cookies)
    app.add_middleware(SecurityHeaders)
    return app


WORKER_SETTINGS_ENV = "X12GW_SERVE_WORKER"  # how ``serve --workers`` passes its options to each worker


def app_from_environment() -> Starlette:
    """The app of one worker process of ``x12gw serve --workers N`` (uvicorn imports it by name in each
    process): the configuration named by ``$X12GW_CONFIG``, its own store connection and logging, and
    the options ``serve`` put in ``$X12GW_SERVE_WORKER`` (``secure-cookies``, ``json-logs``)."""
    options = set(os.environ.get(WORKER_SETTINGS_ENV, "").split(","))
    configure_logging(json=True if "json-logs" in options else None)
    config = load_config(None)
    configure_from_settings(
        config.gateway.log_format, config.gateway.log_level, json_logs="json-logs" in options
    )
    app = create_app(config, open_store(config, role="serve"), secure_cookies="secure-cookies" in options)
    gcpolicy.apply()  # maps and rules first, as in `serve`: real-time answers use them all day
    switching.apply()  # as in `serve` (``gateway.runtime.switching``)
    return app
