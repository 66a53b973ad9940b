"""Schema revisions: where a database is, where this release is, and the explicit step between them.

Only ``x12gw db upgrade`` (and ``x12gw run --upgrade``, ``x12gw demo``, and ``x12gw run`` on a database
that has no tables yet) migrates: every other command checks the revision with :func:`require_current`
and refuses an old or newer schema with advice, so an operator's ``log list`` never changes the schema
under a running gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from gateway.errors import StoreError
from gateway.store.errors import store_error
from gateway.store.store import MIGRATIONS_DIR

Status = Literal["empty", "current", "behind", "ahead"]


@dataclass(frozen=True)
class SchemaState:
    """The database's revision (None: no gateway tables at all), this release's head, and the verdict."""

    current: str | None
    head: str
    status: Status


def script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return ScriptDirectory.from_config(config)


def history() -> list[tuple[str, str | None, str]]:
    """``(revision, down_revision, first docstring line)`` for every revision, oldest first."""
    out = []
    for rev in reversed(list(script().walk_revisions())):
        doc = (rev.doc or "").strip().splitlines()
        down = rev.down_revision if isinstance(rev.down_revision, str) or rev.down_revision is None else "+"
        out.append((rev.revision, down, doc[0] if doc else ""))
    return out


def state(engine: Engine) -> SchemaState:
    """Read the database's revision without changing anything."""
    directory = script()
    head = directory.get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise StoreError("this gateway ships no schema revisions")
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except sa_exc.SQLAlchemyError as exc:
        raise store_error(exc, "read schema revision") from None
    if current is None:  # no revision table: no gateway schema (other applications' tables may exist)
        return SchemaState(None, head, "empty")
    if current == head:
        return SchemaState(current, head, "current")
    known = {rev.revision for rev in directory.walk_revisions()}
    return SchemaState(current, head, "behind" if current in known else "ahead")


def require_current(engine: Engine) -> SchemaState:
    """The schema state if it is current; a StoreError with the advice what to do otherwise."""
    found = state(engine)
    if found.status == "current":
        return found
    if found.status == "empty":
        raise StoreError(
            "the database has no gateway schema yet: run `x12gw db upgrade` (or start `x12gw run` once)"
        )
    if found.status == "behind":
        raise StoreError(
            f"the database schema is at revision {found.current}, this gateway needs {found.head}: "
            "back up the database, then run `x12gw db upgrade` (see README: upgrades)"
        )
    raise StoreError(
        f"the database schema revision {found.current} is newer than this gateway knows ({found.head}): "
        "run the release that wrote it, or restore the matching backup"
    )
