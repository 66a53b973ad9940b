"""``/healthz`` and ``/readyz``: what a load balancer, systemd or Kubernetes asks before sending work.

``/healthz`` answers while the process serves HTTP at all (nothing is queried: a slow database must
not get a healthy process restarted). ``/readyz`` answers 200 only when the database answers, its
schema is at this release's migration head, and not every configured partner is paused; otherwise
503 with the reasons, as plain text and JSON (no PHI, no connection strings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from gateway.errors import GatewayError
from gateway.runtime.config import GatewayConfig
from gateway.store import Store
from gateway.store.store import MIGRATIONS_DIR
from gateway.web import figures


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: tuple[str, ...]
    checks: dict[str, str]


def migration_heads() -> set[str]:
    """The head revision(s) this release ships."""
    return set(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def readiness(store: Store, config: GatewayConfig, clock: Callable[[], datetime]) -> Readiness:
    checks: dict[str, str] = {}
    reasons: list[str] = []
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(conn).get_current_heads())
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database means "not ready"
        checks["database"] = "unreachable"
        reasons.append(f"database unreachable ({type(exc).__name__})")
        return Readiness(False, tuple(reasons), checks)
    heads = migration_heads()
    if current == heads:
        checks["migrations"] = "current"
    else:
        checks["migrations"] = "outdated"
        have = ", ".join(sorted(current)) or "none"
        reasons.append(f"database schema at {have}, this release needs {', '.join(sorted(heads))}")
    names = [p.name for p in config.partners]
    if names:
        try:
            with store.read() as tx:
                states = figures.partner_states(tx, names, clock())
        except GatewayError as exc:
            checks["partners"] = "unknown"
            reasons.append(f"partner states unreadable ({type(exc).__name__})")
        else:
            paused = [p.name for p in states if p.paused]
            checks["partners"] = f"{len(names) - len(paused)} of {len(names)} active"
            if len(paused) == len(names):
                reasons.append("every partner is paused: " + ", ".join(paused))
    return Readiness(not reasons, tuple(reasons), checks)
