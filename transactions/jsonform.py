"""Dataclass <-> JSON-compatible dict conversion, driven by type hints.

Request models arrive as JSON from billing systems; this converts them into frozen dataclasses with
field paths in every error (``subscriber.birth_date: not an ISO date``), so a quarantined file says
exactly which field to fix. It never echoes the offending value (it may be PHI).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from transactions.errors import RequestError

T = TypeVar("T")


Converter = Callable[[Any, str], Any]
_ABSENT = object()  # what ``dict.get`` answers for a field the document does not give


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """How to build one dataclass: its field names and, per field, a converter and whether it is required.

    Resolving type hints (``get_type_hints``) and dissecting them dominated ``from_dict`` when done on
    every call, so a plan is made once per class and kept.
    """

    names: frozenset[str]
    # (name, classes whose values pass unchanged, literal values that pass unchanged, converter for the
    # others, required)
    fields: tuple[tuple[str, tuple[type, ...], frozenset[Any], Converter, bool], ...]


@functools.cache
def _plan(cls: type) -> _Plan:
    hints = get_type_hints(cls)
    fields = dataclasses.fields(cls)
    return _Plan(
        frozenset(f.name for f in fields),
        tuple(
            (
                f.name,
                _passthrough(hints[f.name]),
                _literals(hints[f.name]),
                _converter(_strip_optional(hints[f.name])),  # None already passes unchanged
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            )
            for f in fields
        ),
    )


def from_dict(cls: type[T], data: Any, path: str = "", *, ignore: str | None = None) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are refused, missing required ones named.

    ``ignore`` names one key that is not a field and is skipped (a request's ``"type"``), which spares
    the caller a copy of the object without it.
    """
    if not isinstance(data, dict):
        raise RequestError("expected an object", field=path or cls.__name__)
    plan = _plan(cls)  # type: ignore[arg-type]  # classes are hashable; T carries no Hashable bound
    if ignore is not None and ignore in plan.names:  # a field after all: left out, not read
        data = {k: v for k, v in data.items() if k != ignore}
    if not plan.names.issuperset(data) and (ignore is None or set(data) - plan.names != {ignore}):
        unknown = sorted(set(data) - plan.names - {ignore})
        raise RequestError(f"unknown field(s) {', '.join(unknown)}", field=path or cls.__name__)
    kwargs: dict[str, Any] = {}
    get = data.get
    for name, plain, literals, convert, required in plan.fields:
        value = get(name, _ABSENT)  # one lookup; a key holding the marker itself cannot come from JSON
        if value is not _ABSENT:
            if value.__class__ in plain or (literals and _hashable_in(value, literals)):
                kwargs[name] = value
            else:
                kwargs[name] = convert(value, f"{path}.{name}" if path else name)
        elif required:
            raise RequestError("required field is missing", field=f"{path}.{name}" if path else name)
    try:
        return cls(**kwargs)
    except RequestError as exc:
        raise RequestError(
            exc.reason, field=f"{path}.{exc.field}" if path and exc.field else exc.field or path
        ) from None
    except (ValueError, TypeError) as exc:
        raise RequestError(str(exc), field=path or cls.__name__) from None


def _strip_optional(tp: Any) -> Any:
    """``X`` for ``X | None`` (a plan passes None itself), anything else unchanged."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:  # X and None only
            return args[0]
    return tp


def _literals(tp: Any) -> frozenset[Any]:
    """The values of a ``Literal`` (or optional one) that pass unchanged: the same ones
    :func:`_literal` accepts, without a converter call or a path string."""
    tp = _strip_optional(tp)
    if get_origin(tp) is typing.Literal:
        return frozenset(get_args(tp))
    return frozenset()


def _hashable_in(value: Any, values: frozenset[Any]) -> bool:
    """``value in values``, False for an unhashable value (a list where a code was expected)."""
    try:
        return value in values
    except TypeError:
        return False


def _passthrough(tp: Any) -> tuple[type, ...]:
    """Classes of JSON values that are already of type ``tp`` (str, int, bool, maybe None): the common
    case, taken without a converter call or a path string."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return (*_passthrough(args[0]), type(None)) if len(args) == 1 else ()
    return (tp,) if tp in (str, int, bool) else ()


def _converter(tp: Any) -> Converter:
    """The function that checks and converts a JSON value to type ``tp`` (an error names the path)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _optional(_converter(next(a for a in get_args(tp) if a is not type(None))))
    if origin is typing.Literal:
        return _literal(get_args(tp))
    if origin is tuple:
        return _tuple_of(_converter(get_args(tp)[0]))
    if dataclasses.is_dataclass(tp):
        return functools.partial(from_dict, tp)  # type: ignore[arg-type]  # a class, not an instance
    return _SCALARS.get(tp) or _unsupported(tp)


def _optional(inner: Converter) -> Converter:
    def convert(value: Any, path: str) -> Any:
        return None if value is None else inner(value, path)

    return convert


def _literal(allowed: tuple[Any, ...]) -> Converter:
    def convert(value: Any, path: str) -> Any:
        if value not in allowed:
            raise RequestError(f"must be one of {', '.join(str(a) for a in allowed)}", field=path)
        return value

    return convert


def _tuple_of(item: Converter) -> Converter:
    def convert(value: Any, path: str) -> Any:
        if not isinstance(value, list | tuple):
            raise RequestError("expected a list", field=path)
        if item is _to_str and _all_strings(value):  # the common list of codes, one C-level check
            return tuple(value)
        return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))

    return convert


def _all_strings(values: list[Any] | tuple[Any, ...]) -> bool:
    """Whether every item is a ``str`` (what :func:`_to_str` accepts): ``str.join`` refuses anything else."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def _unsupported(tp: Any) -> Converter:
    def convert(_value: Any, path: str) -> Any:
        raise RequestError(f"unsupported field type {tp!r}", field=path)

    return convert


def _to_date(value: Any, path: str) -> date:
    if not isinstance(value, str):
        raise RequestError("expected an ISO date string (YYYY-MM-DD)", field=path)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RequestError("not an ISO date (YYYY-MM-DD)", field=path) from None


def _to_decimal(value: Any, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RequestError("expected a number", field=path)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise RequestError("not a number", field=path) from None


def _to_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError("expected an integer", field=path)
    return value


def _to_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError("expected true or false", field=path)
    return value


def _to_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise RequestError("expected a string", field=path)
    return value


_SCALARS: dict[Any, Converter] = {
    date: _to_date,
    Decimal: _to_decimal,
    int: _to_int,
    bool: _to_bool,
    str: _to_str,
}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # a dataclass's field names, looked up once per class
_LEAVES = frozenset({str, int, bool, float, type(None)})


def to_dict(obj: Any) -> Any:
    """A dataclass (or nested values) as JSON-compatible data: dates ISO, Decimals as strings.

    Field names are found once per class (``dataclasses.fields`` per object was most of the cost of
    turning a mapped record into its JSON, once per response on the inbound path)."""
    cls = type(obj)
    if cls in _LEAVES:
        return obj
    names = _FIELD_NAMES.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
            return _plain(obj)
        names = _FIELD_NAMES.setdefault(cls, tuple(f.name for f in dataclasses.fields(obj)))
    return {name: to_dict(getattr(obj, name)) for name in names}


def _plain(obj: Any) -> Any:
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return format(obj, "f")
    return obj
