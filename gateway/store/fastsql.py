"""The store's hot statements run on the driver's cursor, compiled once per dialect.

Why: a real-time call runs some fifty statements, and SQLAlchemy's execution path (cache-key lookup,
execution context, ``construct_params``, result metadata) costs about 30 us of CPU per statement where
the driver itself takes 5; that machinery was a quarter of the API server's CPU. The statements the
repositories run most are built once per process (``repos.base.prebuilt``), so everything SQLAlchemy
works out per execution can be worked out once per statement, dialect and parameter shape instead:

* a **plan**: SQLAlchemy's own compilation of the statement for the parameter names given (the same
  ``column_keys``/``for_executemany`` it would use, expanding ``IN`` lists rendered for their lengths),
  its SQL text, where each driver parameter comes from (a key, an element of an ``IN`` list, a constant
  of the statement) with the bind processor SQLAlchemy would run on it (``UtcDateTime``, JSON, sealing),
  and the result columns' keys and processors;
* an **execution**: values bound in plan order, the SQL run on a cursor of the transaction's own DBAPI
  connection (inside SQLAlchemy's transaction: BEGIN/COMMIT/rollback, the writer lock and the pool are
  untouched), rows built as SQLAlchemy ``Row`` objects with the same keys and values.

What stays as it was: driver errors go through the connection's own error handling
(``Connection._handle_dbapi_exception``: disconnects invalidate the connection, ``handle_error`` events
run, the same ``DBAPIError`` subclasses reach ``store_error``); ``before_cursor_execute`` and
``after_cursor_execute`` listeners see every statement (the statement budget tests count them; the
``context`` argument is None here). Anything this path does not cover runs through
``Connection.execute`` unchanged: statements not registered (built per call), a connection outside a
transaction, echo, dialect-level execution events, a ``schema_translate_map``, Python-side column
defaults, ``literal_execute`` parameters, escaped parameter names, a required parameter not given,
executemany with RETURNING or with differing keys, a statement SQLAlchemy refuses to compile.
``tests/test_store_fastsql.py`` runs each hot statement both ways on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, CursorResult, Row
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Executable

__all__ = ["FastResult", "execute", "register", "slow_path", "stats"]

S = TypeVar("S")
AnyRow = Row[*tuple[Any, ...]]  # what ``CursorResult`` rows are typed as
AnyResult = CursorResult[*tuple[Any, ...]]

# statements that may take the fast path, by id; the strong reference keeps the id from being reused
_REGISTERED: dict[int, object] = {}
_GUARD = threading.Lock()
# per dialect (engine), kept on the dialect itself so they go with it: plan key -> _Shape, or None
# when the shape runs through SQLAlchemy
_PLANS: Final = "_x12gw_fastsql_plans"
_MAX_VARIANTS: Final = 64  # IN-list lengths planned per statement shape; other lengths go the slow way

# where a driver parameter comes from
_KEY: Final = 0  # params[key]
_ELEMENT: Final = 1  # params[key][index] (an element of an expanding IN list)
_CONSTANT: Final = 2  # a value fixed in the statement (``t.c.wraps + 1``)


class _Counters:
    """How many executions took each path (``stats``); plain ints, racy increments are harmless."""

    fast = 0
    slow = 0
    off = False  # ``slow_path``: every statement through ``Connection.execute``


@contextmanager
def slow_path() -> Iterator[None]:
    """Run every statement through ``Connection.execute`` while open (process-wide): the reference
    the differential tests compare the fast path with, and a way to measure what it saves."""
    was, _Counters.off = _Counters.off, True
    try:
        yield
    finally:
        _Counters.off = was


def stats() -> tuple[int, int]:
    """``(fast, slow)`` executions of registered statements so far in this process (for tests and
    benchmarks: a statement that silently fell back would show up as slow)."""
    return _Counters.fast, _Counters.slow


def register(stmt: S) -> S:
    """Let ``stmt`` (an ``Executable``) take the fast path. Only for statements kept for the life of
    the process (built once, values bound at execution): plans are cached and never dropped."""
    with _GUARD:
        _REGISTERED[id(stmt)] = stmt
    return stmt


class _Plan:
    """One statement compiled for one dialect and parameter shape: what to send and how to read rows."""

    __slots__ = (
        "getter",
        "keys",
        "metadata",
        "names",
        "positional",
        "procs",
        "procs_known",
        "result_procs",
        "returns",
        "sources",
        "sql",
    )

    def __init__(
        self,
        sql: str,
        *,
        positional: bool,
        names: tuple[str, ...],
        sources: tuple[tuple[int, Any, int, Any], ...],
        keys: tuple[str, ...],
        returns: tuple[Any, ...],
    ) -> None:
        self.sql = sql
        self.positional = positional
        self.names = names  # the driver's parameter names (named paramstyles), in ``sources`` order
        self.sources = sources  # (kind, key or constant, index, bind processor or None) per parameter
        self.keys = keys  # the result rows' keys
        self.returns = returns  # the result columns' SQLAlchemy types
        self.metadata = SimpleResultMetaData(keys) if keys else None
        self.result_procs: list[Any] | None = None  # found on the first execution (driver's types)
        self.procs_known = False
        # the usual plan takes every parameter from a key: one C call picks them all, and only the
        # values with a processor are touched again
        simple = bool(sources) and all(kind == _KEY for kind, _, _, _ in sources)
        self.getter = itemgetter(*(key for _, key, _, _ in sources)) if simple else None
        self.procs = tuple((i, proc) for i, (_, _, _, proc) in enumerate(sources) if proc is not None)

    def bind(self, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters for one parameter set."""
        getter = self.getter
        if getter is not None:
            picked = getter(params)
            values = list(picked) if len(self.sources) > 1 else [picked]
            for i, proc in self.procs:
                values[i] = proc(values[i])
            return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))
        values = []
        for kind, key, index, proc in self.sources:
            if kind == _KEY:
                value = params[key]
            elif kind == _ELEMENT:
                value = params[key][index]
            else:
                value = key
            values.append(value if proc is None else proc(value))
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))

    def processors(self, dialect: Dialect, description: Sequence[Any]) -> list[Any] | None:
        """The result processors SQLAlchemy would apply, for the driver's column types (None when
        there are none); worked out on the first execution, then kept."""
        if self.procs_known:
            return self.result_procs
        procs = [
            kind._cached_result_processor(dialect, column[1])
            for kind, column in zip(self.returns, description, strict=True)
        ]
        self.result_procs = procs if any(p is not None for p in procs) else None
        self.procs_known = True
        return self.result_procs


class _Shape:
    """A statement compiled for one set of parameter names: its plan, or one plan per IN-list length."""

    __slots__ = ("compiled", "expanding", "plan", "variants")

    def __init__(self, compiled: SQLCompiler, expanding: tuple[str, ...], plan: _Plan | None) -> None:
        self.compiled = compiled
        self.expanding = expanding  # the parameter keys of expanding IN lists
        self.plan = plan  # the plan when nothing expands
        self.variants: dict[tuple[int, ...], _Plan | None] = {}


class FastResult:
    """The rows of one execution, with the parts of ``CursorResult``'s interface the repositories use
    (same return values and the same exceptions for ``one``/``scalar_one``)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[AnyRow], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[AnyRow]:
        return iter(self._rows)

    def all(self) -> list[AnyRow]:
        """Every row."""
        return list(self._rows)

    def first(self) -> AnyRow | None:
        """The first row, or None."""
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> AnyRow | None:
        """The only row or None; MultipleResultsFound if there are more."""
        if len(self._rows) > 1:
            raise sa_exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        return self.first()

    def one(self) -> AnyRow:
        """The only row; NoResultFound/MultipleResultsFound otherwise."""
        if not self._rows:
            raise sa_exc.NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise sa_exc.MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def scalar(self) -> Any:
        """The first column of the first row, or None."""
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        """The first column of the only row (``one``'s exceptions)."""
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        """The first column of the only row, or None (``one_or_none``'s exceptions)."""
        row = self.one_or_none()
        return None if row is None else row[0]


def _compile(stmt: Executable, dialect: Dialect, keys: tuple[str, ...], many: bool) -> _Shape | None:
    """``stmt`` compiled as ``Connection.execute`` would for these parameter names, or None when the
    fast path cannot run it exactly as SQLAlchemy would."""
    try:
        compiled = stmt.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=sorted(keys), for_executemany=many
        )
    except sa_exc.SQLAlchemyError:
        return None  # SQLAlchemy raises it again on the slow path, as it always did
    if not isinstance(compiled, SQLCompiler):
        return None
    if (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.literal_execute_params
        or compiled.escaped_bind_names
        or (many and compiled._result_columns)
    ):
        return None
    expanding = []
    for bind in compiled.post_compile_params:
        if not bind.expanding or bind.key not in keys:
            return None
        expanding.append(bind.key)
    shape = _Shape(compiled, tuple(expanding), None)
    if not expanding:
        shape.plan = _plan(compiled, keys, None)
    return shape


def _plan(compiled: SQLCompiler, keys: tuple[str, ...], sample: Mapping[str, Any] | None) -> _Plan | None:
    """The plan for ``compiled``; ``sample`` gives the IN lists' lengths when some parameter expands."""
    given = set(keys)
    element_of: dict[str, tuple[str, int]] = {}
    processors: Mapping[str, Any] = compiled._bind_processors
    if sample is not None:
        state = compiled.construct_expanded_state(dict(sample))
        sql, positiontup, processors = state.statement, state.positiontup, {**processors, **state.processors}
        by_name = {compiled.bind_names[b]: b.key for b in compiled.post_compile_params}
        for name, expanded in state.parameter_expansion.items():
            element_of |= {e: (by_name[name], i) for i, e in enumerate(expanded)}
        names = tuple(positiontup) if positiontup is not None else tuple(state.parameters)
    else:
        sql, positiontup = compiled.string, compiled.positiontup
        names = tuple(positiontup) if positiontup is not None else tuple(compiled.bind_names.values())
    sources: list[tuple[int, Any, int, Any]] = []
    for name in names:
        proc = processors.get(name)
        if name in element_of:
            key, index = element_of[name]
            sources.append((_ELEMENT, key, index, proc))
            continue
        bind = compiled.binds[name]
        if bind.key in given:
            sources.append((_KEY, bind.key, 0, proc))
        elif name in given:
            sources.append((_KEY, name, 0, proc))
        elif bind.required or bind.callable is not None:
            return None  # SQLAlchemy's error, or a value computed per execution
        else:
            sources.append((_CONSTANT, bind.value, 0, proc))
    columns = compiled._result_columns or []
    result_keys = tuple(c.keyname for c in columns)
    if len(set(result_keys)) != len(result_keys):
        return None  # duplicate names: SQLAlchemy's ambiguity rules, not ours
    return _Plan(
        sql,
        positional=positiontup is not None,
        names=names,
        sources=tuple(sources),
        keys=result_keys,
        returns=tuple(c.type for c in columns),
    )


def _plan_for(conn: Connection, stmt: Executable, first: Mapping[str, Any], many: bool) -> _Plan | None:
    dialect = conn.dialect
    plans: dict[tuple[Any, ...], _Shape | None] | None = getattr(dialect, _PLANS, None)
    if plans is None:
        with _GUARD:
            plans = getattr(dialect, _PLANS, None)
            if plans is None:
                plans = {}
                setattr(dialect, _PLANS, plans)
    keys = tuple(first)
    key = (id(stmt), many, keys)
    try:
        shape = plans[key]  # one lookup: the key's hash is not cached
    except KeyError:
        shape = plans.setdefault(key, _compile(stmt, dialect, keys, many))
    if shape is None:
        return None
    if not shape.expanding:
        return shape.plan
    try:
        lengths = tuple(len(first[k]) for k in shape.expanding)
    except TypeError:
        return None
    if lengths in shape.variants:
        return shape.variants[lengths]
    if len(shape.variants) >= _MAX_VARIANTS or min(lengths) == 0:
        return None  # an empty IN list: SQLAlchemy's own rendering ("never true" expression)
    return shape.variants.setdefault(lengths, _plan(shape.compiled, keys, first))


def _runnable(conn: Connection) -> bool:
    """The connection is in a usable transaction with nothing that would act on each execution."""
    return (
        conn.in_transaction()
        and not conn.invalidated
        and conn._nested_transaction is None
        and not conn._echo
        and not conn.dialect._has_events
        and "schema_translate_map" not in conn._execution_options
    )


def execute(
    conn: Connection, stmt: Executable, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
) -> FastResult | AnyResult:
    """``conn.execute(stmt, params)`` for a registered statement, on the driver's cursor when it can
    (see the module's docstring); anything else goes to ``conn.execute`` itself. The result is a
    ``FastResult`` or SQLAlchemy's own ``CursorResult``: use only what both offer."""
    if _REGISTERED.get(id(stmt)) is not stmt or _Counters.off or not _runnable(conn):
        return conn.execute(stmt, params)
    sets: Sequence[Mapping[str, Any]]
    if params is None:
        sets = ({},)
    elif type(params) is dict or isinstance(params, Mapping):
        sets = (params,)
    else:
        sets = params
    many = len(sets) > 1
    plan = _plan_for(conn, stmt, sets[0], many) if sets else None
    if plan is None or (many and any(len(p) != len(sets[0]) or p.keys() != sets[0].keys() for p in sets)):
        _Counters.slow += 1
        return conn.execute(stmt, params)
    _Counters.fast += 1
    return _run(conn, plan, sets, many)


def _run(conn: Connection, plan: _Plan, sets: Sequence[Mapping[str, Any]], many: bool) -> FastResult:
    sql = plan.sql
    values: Any = None
    try:  # binding fails as SQLAlchemy's execution context would (a StatementError)
        values = [plan.bind(p) for p in sets] if many else plan.bind(sets[0])
        driver = conn.connection.driver_connection
        assert driver is not None  # noqa: S101 - in a transaction: a live connection
        cursor = driver.cursor()
    except BaseException as exc:  # noqa: BLE001 - wrapped or re-raised by SQLAlchemy's handler
        conn._handle_dbapi_exception(exc, sql, values, None, None)
    dispatch = conn.dispatch if conn._has_events or conn.engine._has_events else None
    try:
        if dispatch is not None and dispatch.before_cursor_execute:
            for fn in dispatch.before_cursor_execute:
                sql, values = fn(conn, cursor, sql, values, None, many)
        if many:
            cursor.executemany(sql, values)
        else:
            cursor.execute(sql, values)
        if dispatch is not None and dispatch.after_cursor_execute:
            dispatch.after_cursor_execute(conn, cursor, sql, values, None, many)
        description = cursor.description
        rows = cursor.fetchall() if description is not None else []
        rowcount = cursor.rowcount
        cursor.close()
    except BaseException as exc:
        if isinstance(exc, conn.dialect.loaded_dbapi.Error) or not isinstance(exc, Exception):
            conn._handle_dbapi_exception(exc, sql, values, cursor, None)
        cursor.close()
        raise  # as SQLAlchemy: an error that is not the driver's passes unwrapped
    metadata = plan.metadata
    if metadata is None or description is None:
        return FastResult([], rowcount)
    procs = plan.processors(conn.dialect, description)
    index = metadata._key_to_index
    return FastResult([Row(metadata, procs, index, r) for r in rows], rowcount)
