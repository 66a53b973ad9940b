"""Store fixtures over both backends: a temporary SQLite file and a throw-away PostgreSQL schema.

``store_url`` is parametrised over ``sqlite`` and ``postgresql``. Each PostgreSQL test gets its own
schema (``x12gw_t_<pid>_<random>``, created before and dropped after, selected with ``search_path`` in
the URL), so parallel or interrupted runs never see each other's rows. The server is the one at
``X12GW_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``); when it is
unreachable the PostgreSQL variants are skipped, unless ``X12GW_REQUIRE_POSTGRES`` is set (CI sets it),
in which case they fail.

Use from a test module with ``pytest_plugins = ["tests.store_fixtures"]`` or by importing the fixtures.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from gateway.lifecycle import FileState
from gateway.store import Store, Tx, sqlite_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_base_url() -> str:
    """The server the PostgreSQL variants use."""
    return os.environ.get("X12GW_TEST_POSTGRES_URL", DEFAULT_PG_URL)


def _libpq_url(url: str) -> str:
    """The same URL in the form psycopg itself takes (no '+psycopg' driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@functools.cache
def _postgres_problem(url: str) -> str | None:
    """None if the server answers, else why not (checked once per session)."""
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return type(exc).__name__
    return None


def require_postgres() -> str:
    """The base URL, or skip (fail when X12GW_REQUIRE_POSTGRES is set) if the server is unreachable."""
    url = postgres_base_url()
    problem = _postgres_problem(url)
    if problem is not None:
        reason = f"PostgreSQL at {make_url(url).host}:{make_url(url).port} unreachable ({problem})"
        if os.environ.get("X12GW_REQUIRE_POSTGRES"):
            pytest.fail(f"{reason} and X12GW_REQUIRE_POSTGRES is set")
        pytest.skip(f"{reason}; set X12GW_REQUIRE_POSTGRES=1 to make this a failure")
    return url


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh schema for one test; yields a URL whose search_path points at it, drops it afterwards."""
    schema = f"x12gw_t_{os.getpid()}_{secrets.token_hex(4)}"
    admin = _libpq_url(base_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            make_url(base_url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class FakeClock:
    """A settable UTC clock, so tests about time windows never depend on the wall clock."""

    def __init__(self, start: datetime = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (or back, with a negative delta)."""
        self.now += delta


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a temporary SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "store.db")
        return
    with postgres_schema(require_postgres()) as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    """The store's clock in tests."""
    return FakeClock()


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[Store]:
    """An opened (migrated) store on each backend, closed after the test."""
    opened = Store.open(store_url, clock=clock)
    try:
        yield opened
    finally:
        opened.close()


def record_received(tx: Tx, name: str) -> int:
    """A minimal inbound file row (``received``): one small write for tests of the store's locking."""
    return tx.files.record(
        direction="in",
        partner="acme",
        name=name,
        sha256="e" * 64,
        size=1,
        payload_path=None,
        state=FileState.RECEIVED,
    ).id
