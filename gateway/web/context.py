"""What every request handler of ``x12gw serve`` shares: configuration, store, clock, templates."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import HTMLResponse

from gateway.operators.session import Session
from gateway.runtime.config import GatewayConfig
from gateway.store import Store
from gateway.web.metrics import make_registry


def _when(value: datetime | date | str | None) -> str:
    """Timestamps as ``2026-11-26 17:24:28 UTC``; dates as they are; nothing as an empty string."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return _when(parsed)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value.isoformat()


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def make_templates() -> Environment:
    env = Environment(
        loader=PackageLoader("gateway.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["seconds"] = _seconds
    return env


@dataclass
class WebContext:
    """The serving process's state (one per application)."""

    config: GatewayConfig
    store: Store
    clock: Callable[[], datetime]
    secure_cookies: bool = False  # also mark cookies Secure on plain HTTP (behind a TLS proxy)
    templates: Environment = field(default_factory=make_templates)
    registry: CollectorRegistry | None = None

    def __post_init__(self) -> None:
        if self.registry is None:
            self.registry = make_registry(self.store, self.config, self.clock)

    def session(self, actor: str, *, reveal: bool = False) -> Session:
        """An operators' session for one page (never closed: the store belongs to the process)."""
        return Session(
            self.config, self.store, reveal=reveal, out=io.StringIO(), clock=self.clock, actor=actor
        )

    def render(self, request: Request, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        values.setdefault("user", getattr(request.state, "web_session", None))
        values["root"] = request.scope.get("root_path", "")
        html = self.templates.get_template(name).render(request=request, **values)
        return HTMLResponse(html, status_code=status_code)


def web_context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.gw
    return ctx
