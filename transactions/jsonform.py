"""Dataclass <-> JSON-compatible dict conversion, driven by type hints.

Request models arrive as JSON from billing systems; this converts them into frozen dataclasses with
field paths in every error (``subscriber.birth_date: not an ISO date``), so a quarantined file says
exactly which field to fix. It never echoes the offending value (it may be PHI).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from transactions.errors import RequestError

T = TypeVar("T")


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are refused, missing required ones named."""
    if not isinstance(data, dict):
        raise RequestError("expected an object", field=path or cls.__name__)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(unknown)}", field=path or cls.__name__)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RequestError("required field is missing", field=sub)
    try:
        return cls(**kwargs)
    except RequestError as exc:
        raise RequestError(
            exc.reason, field=f"{path}.{exc.field}" if path and exc.field else exc.field or path
        ) from None
    except (ValueError, TypeError) as exc:
        raise RequestError(str(exc), field=path or cls.__name__) from None


def _convert(tp: Any, value: Any, path: str) -> Any:  # noqa: PLR0911, PLR0912 - one branch per supported type
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, path)
    if origin is typing.Literal:
        if value not in get_args(tp):
            allowed = ", ".join(str(a) for a in get_args(tp))
            raise RequestError(f"must be one of {allowed}", field=path)
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise RequestError("expected a list", field=path)
        item = get_args(tp)[0]
        return tuple(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)  # type: ignore[arg-type]
    if tp is date:
        if not isinstance(value, str):
            raise RequestError("expected an ISO date string (YYYY-MM-DD)", field=path)
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise RequestError("not an ISO date (YYYY-MM-DD)", field=path) from None
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RequestError("expected a number", field=path)
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise RequestError("not a number", field=path) from None
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError("expected an integer", field=path)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RequestError("expected true or false", field=path)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise RequestError("expected a string", field=path)
        return value
    raise RequestError(f"unsupported field type {tp!r}", field=path)


def to_dict(obj: Any) -> Any:
    """A dataclass (or nested values) as JSON-compatible data: dates ISO, Decimals as strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return format(obj, "f")
    return obj
