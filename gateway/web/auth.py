"""Login, logout, the session cookie and CSRF checks of the console.

* The session cookie is ``HttpOnly``, ``SameSite=Strict``, path ``/console``, and ``Secure`` when the
  request came over TLS (or ``--secure-cookies`` says a TLS proxy sits in front).
* Every POST carries a ``csrf`` form field that must equal the session's token (compared in constant
  time). The login form, which has no session yet, uses a double-submit token: a random cookie whose
  value the form echoes. A POST whose ``Origin`` names another site is refused as well.
* A failed login says only "wrong name or password", after the same scrypt work either way.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from gateway.web import users
from gateway.web.context import web_context
from gateway.web.users import WebSession

COOKIE = "x12gw_session"
LOGIN_COOKIE = "x12gw_login"
log = structlog.get_logger("x12gw.console")
COOKIE_PATH = "/console"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or web_context(request).secure_cookies


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def current_session(request: Request) -> WebSession | None:
    """The logged-in session this request's cookie names (looked up once per request)."""
    if hasattr(request.state, "web_session"):
        found: WebSession | None = request.state.web_session
        return found
    token = request.cookies.get(COOKIE)
    found = users.find_session(web_context(request).store, token) if token else None
    request.state.web_session = found
    return found


def login_redirect(request: Request) -> RedirectResponse:
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/login", status_code=303)


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another origin (absent headers pass: CSRF
    tokens are the real check)."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "")


def csrf_ok(expected: str | None, given: object) -> bool:
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(expected or "", given)


def refused(reason: str, status: int = 403) -> Response:
    return PlainTextResponse(f"refused: {reason}\n", status_code=status)


async def checked_form(
    request: Request, *, operator: bool = False
) -> tuple[WebSession, dict[str, str]] | Response:
    """The session and form of a console POST, or the response refusing it (no session: login page;
    bad or missing CSRF token, foreign origin: 403; a viewer where an operator is needed: 403)."""
    session = await run_in_threadpool(current_session, request)
    if session is None:
        return login_redirect(request)
    form = await request.form()
    if not same_origin(request) or not csrf_ok(session.csrf_token, form.get("csrf")):
        return refused("missing or wrong CSRF token")
    if operator and not session.user.operator:
        return refused("this action needs the operator role")
    return session, {k: v for k, v in form.items() if isinstance(v, str)}


def login_page(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    # keep the browser's token if it has one: a page loaded twice (prefetch, a second tab) must not
    # leave a form whose token no longer matches the cookie
    token = request.cookies.get(LOGIN_COOKIE) or ""
    if len(token) < 32:
        token = secrets.token_urlsafe(32)
    response = web_context(request).render(
        request, "login.html", status_code=status_code, csrf=token, error=error, user=None
    )
    set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


def login_form(request: Request) -> Response:
    if current_session(request) is not None:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)
    return login_page(request)


async def login(request: Request) -> Response:
    form = await request.form()
    if not same_origin(request) or not csrf_ok(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
        return refused("missing or wrong CSRF token")
    name, password = form.get("name"), form.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        return login_page(request, error="wrong name or password", status_code=401)
    store = web_context(request).store
    user = await run_in_threadpool(users.authenticate, store, name.strip(), password)
    if user is None:
        log.warning("console login failed", user=name.strip()[:64])
        return login_page(request, error="wrong name or password", status_code=401)
    log.info("console login", user=user.name, role=user.role)
    token, session = await run_in_threadpool(users.start_session, store, user)
    response = RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)
    max_age = int((session.expires_at - web_context(request).clock()).total_seconds())
    set_cookie(request, response, COOKIE, token, max_age=max_age)
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


async def logout(request: Request) -> Response:
    checked = await checked_form(request)
    if isinstance(checked, Response):
        return checked
    token = request.cookies.get(COOKIE, "")
    await run_in_threadpool(users.end_session, web_context(request).store, token)
    response = login_redirect(request)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response
