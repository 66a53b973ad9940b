"""The console's pages under ``/console``: dashboard, transaction browser, request chains, files and
raw X12, plus the POST actions (reveal, reprocess, resend, logout).

Reading pages are GETs that show PHI masked. Showing PHI is a POST (with the CSRF token) that writes
the audit row in its own committed transaction *before* the page is built, and answers with the
revealed page directly (``Cache-Control: no-store``), so a revealed page has no URL to bookmark,
share or find in a history. Reprocess and resend are operator-only POSTs through the same idempotent
actions as ``x12gw reprocess``/``resend``, recorded as ``console:<user>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.operators import actions
from gateway.operators.queries import SearchCriteria, search
from gateway.operators.views import Subject
from gateway.store import NotFoundError
from gateway.web import auth, browse
from gateway.web.context import web_context
from gateway.web.users import WebSession

log = structlog.get_logger("x12gw.console")


def actor(session: WebSession) -> str:
    return f"console:{session.user.name}"


def _page(request: Request) -> WebSession | Response:
    session = auth.current_session(request)
    return session if session is not None else auth.login_redirect(request)


def not_found(request: Request, what: str) -> Response:
    return web_context(request).render(
        request, "message.html", status_code=404, title="Not found", message=what
    )


# ----------------------------------------------------------------------------------------- pages


def dashboard(request: Request) -> Response:
    session = _page(request)
    if isinstance(session, Response):
        return session
    ctx = web_context(request)
    ops = ctx.session(actor(session))
    with ctx.store.read() as tx:
        figures = browse.dashboard(ops, tx)
    return ctx.render(request, "dashboard.html", d=figures, page="dashboard")


def transactions(request: Request) -> Response:
    session = _page(request)
    if isinstance(session, Response):
        return session
    ctx = web_context(request)
    q, problems = browse.BrowseQuery.parse(dict(request.query_params))
    ops = ctx.session(actor(session))
    values: dict[str, Any] = {"q": q, "problems": problems, "rows": [], "more": False}
    with ctx.store.read() as tx:
        if q.number:
            values["subjects"] = browse.number_subjects(tx, q.number)
        if q.ref:
            values["requests"] = browse.reference_rows(ops, tx, q.ref)
        if not q.number and not q.ref:
            values["rows"], values["more"] = browse.log_page(ops, tx, q)
    subjects: list[Subject] = values.get("subjects", [])
    if q.number and not q.ref and len(subjects) == 1:
        return RedirectResponse(_subject_url(request, subjects[0]), status_code=303)
    return ctx.render(
        request,
        "transactions.html",
        page="transactions",
        types=browse.TYPES,
        acks=browse.ACK_CODES,
        partners=["inbox", *(p.name for p in ctx.config.partners)],
        subject_url=lambda s: _subject_url(request, s),
        **values,
    )


async def patients(request: Request) -> Response:
    """Requests by patient last name and birth date. A POST (with the CSRF token), so the name never
    sits in a URL, a browser history or an access log; matched on the keyed hash the intake stored."""
    checked = await auth.checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    last_name = str(form.get("last_name") or "").strip()
    birth = browse.day(str(form.get("birth_date") or "").strip())

    def work() -> Response:
        ctx = web_context(request)
        values: dict[str, Any] = {"q": browse.BrowseQuery(), "rows": [], "more": False, "problems": []}
        if not last_name or birth is None:
            values["problems"] = ["a patient search needs the last name and the birth date (YYYY-MM-DD)"]
        else:
            ops = ctx.session(actor(session))
            with ctx.store.read() as tx:
                rows, _more = search(
                    ops, tx, SearchCriteria(last_name=last_name, birth_date=birth), PATIENT_ROWS
                )
            values |= {"requests": rows, "requests_title": "Requests for the patient searched"}
        return ctx.render(
            request,
            "transactions.html",
            page="transactions",
            types=browse.TYPES,
            acks=browse.ACK_CODES,
            partners=["inbox", *(p.name for p in ctx.config.partners)],
            subject_url=lambda s: _subject_url(request, s),
            **values,
        )

    return await run_in_threadpool(work)


def _subject_url(request: Request, subject: Subject) -> str:
    root = request.scope.get("root_path", "")
    part = {"request": "requests", "file": "files", "set": "sets"}[subject.kind]
    return f"{root}/{part}/{subject.key}"


def _show(request: Request, session: WebSession, subject: Subject, *, reveal: bool) -> Response:
    ctx = web_context(request)
    ops = ctx.session(actor(session), reveal=reveal)
    with ctx.store.read() as tx:
        if not browse.number_subjects(tx, subject.ref):
            return not_found(request, f"nothing is recorded under {subject.ref}")
        view, _trackings = browse.subject_view(ops, tx, subject)
    response = ctx.render(
        request, "show.html", view=view, subject=subject, revealed=reveal, page="transactions"
    )
    if reveal:
        response.headers["Cache-Control"] = "no-store"
    return response


AREAS = {"requests": "request", "files": "file", "sets": "set"}
PATIENT_ROWS = 200


def _subject(request: Request) -> Subject | None:
    """The request, file or set a path names (None for an unknown area or a non-numeric id)."""
    kind = AREAS.get(request.path_params["area"])
    key = request.path_params["key"]
    if kind is None or (kind != "request" and not key.isdigit()):
        return None
    return Subject(kind, key, "")


def show(request: Request) -> Response:
    session = _page(request)
    if isinstance(session, Response):
        return session
    subject = _subject(request)
    if subject is None:
        return not_found(request, "no such page")
    return _show(request, session, subject, reveal=False)


def raw(request: Request) -> Response:
    session = _page(request)
    if isinstance(session, Response):
        return session
    return _raw(request, session, reveal=False)


def _raw(request: Request, session: WebSession, *, reveal: bool) -> Response:
    ctx = web_context(request)
    ops = ctx.session(actor(session), reveal=reveal)
    try:
        with ctx.store.read() as tx:
            shown = browse.raw_file(ops, tx, request.path_params["file_id"])
    except NotFoundError:
        return not_found(request, "no such file")
    response = ctx.render(request, "raw.html", raw=shown, revealed=reveal, page="transactions")
    response.headers["Cache-Control"] = "no-store"
    return response


# --------------------------------------------------------------------------------------- actions


def _audit(request: Request, session: WebSession, action: str, subject: str, detail: dict[str, Any]) -> None:
    """The PHI audit row, committed before anything revealed is built."""
    ctx = web_context(request)
    client = request.client.host if request.client else None
    log.info("console reveal", user=session.user.name, action=action, subject=subject[:255])
    with ctx.store.begin() as tx:
        tx.audit.record_reveal(
            os_user=actor(session), action=action, subject=subject[:255], detail={**detail, "client": client}
        )


async def reveal(request: Request) -> Response:
    checked = await auth.checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, _form = checked
    subject = _subject(request)
    if subject is None:
        return not_found(request, "no such page")

    def work() -> Response:
        ctx = web_context(request)
        with ctx.store.read() as tx:
            found = browse.number_subjects(tx, subject.ref)
        if not found:
            return not_found(request, f"nothing is recorded under {subject.ref}")
        _audit(request, session, "console reveal", subject.ref, {"subject": subject.ref})
        return _show(request, session, subject, reveal=True)

    return await run_in_threadpool(work)


async def reveal_raw(request: Request) -> Response:
    checked = await auth.checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, _form = checked
    file_id = request.path_params["file_id"]

    def work() -> Response:
        ctx = web_context(request)
        try:
            with ctx.store.read() as tx:
                tx.files.get(file_id)
        except NotFoundError:
            return not_found(request, "no such file")
        _audit(request, session, "console raw", f"file:{file_id}", {"subject": f"file:{file_id}"})
        return _raw(request, session, reveal=True)

    return await run_in_threadpool(work)


def _action_result(
    request: Request, session: WebSession, result: actions.ActionResult, back: str
) -> Response:
    (log.info if result.done else log.warning)(
        "console action" if result.done else "console action refused",
        path=request.url.path,
        user=session.user.name,
    )
    return web_context(request).render(
        request,
        "message.html",
        status_code=200 if result.done else 409,
        title="Done" if result.done else "Refused",
        message=result.message,
        back=back,
    )


def _operator_action(
    run: Callable[[Any, Any], actions.ActionResult], param: str, back: str
) -> Callable[[Request], Awaitable[Response]]:
    """An operator-only POST (CSRF checked) running one of the CLI's idempotent actions on the path
    parameter ``param``, then showing its result with a link back to ``back`` (``{}`` is the value)."""

    async def action(request: Request) -> Response:
        checked = await auth.checked_form(request, operator=True)
        if isinstance(checked, Response):
            return checked
        session, _form = checked
        value = request.path_params[param]
        ops = web_context(request).session(actor(session))
        result = await run_in_threadpool(run, ops, value)
        root = request.scope.get("root_path", "")
        return _action_result(request, session, result, root + back.format(value))

    return action


resend = _operator_action(actions.resend, "tracking", "/requests/{}")
reprocess = _operator_action(actions.reprocess, "file_id", "/files/{}")


def routes() -> list[Route | Mount]:
    return [
        Route("/", dashboard, name="dashboard"),
        Route("/login", auth.login_form, methods=["GET"]),
        Route("/login", auth.login, methods=["POST"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/transactions", transactions),
        Route("/patients", patients, methods=["POST"]),
        Route("/files/{file_id:int}/raw", raw, methods=["GET"]),
        Route("/files/{file_id:int}/raw", reveal_raw, methods=["POST"]),
        Route("/files/{file_id:int}/reprocess", reprocess, methods=["POST"]),
        Route("/requests/{tracking}/resend", resend, methods=["POST"]),
        Mount("/static", app=StaticFiles(packages=[("gateway.web", "static")]), name="static"),
        Route("/{area:str}/{key}/reveal", reveal, methods=["POST"]),
        Route("/{area:str}/{key}", show, methods=["GET"]),
    ]
