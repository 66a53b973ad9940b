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

    A well-formed document is built by the class's compiled builder (:func:`_builder`); anything it does
    not take plainly (a bad value, a missing field, an unusual type) is built, or refused with its field
    path, by the generic walk :func:`from_dict_generic`, so both give the same objects and errors.
    """
    built = (_BUILDERS.get(cls) or _builder(cls))(data, ignore)
    if built is not _SLOW:
        return built  # type: ignore[no-any-return]  # the builder of cls builds a cls
    return from_dict_generic(cls, data, path, ignore=ignore)


def from_dict_generic(cls: type[T], data: Any, path: str = "", *, ignore: str | None = None) -> T:
    """The reference walk of :func:`from_dict`, field by field through the class's plan: every error
    names its path. Nested dataclasses are built by this walk too."""
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


# --- the compiled builders: one generated function per class for the well-formed case ---------------

Builder = Callable[[Any, "str | None"], Any]
_SLOW = object()  # what a compiled builder answers for anything it does not take plainly
_BUILDERS: dict[type, Builder] = {}


def _builder(cls: type) -> Builder:
    """The compiled builder of ``cls``: ``(data, ignore) -> instance`` or ``_SLOW``.

    A generic walk spends most of its time deciding, per value, what to do with it; the builder has
    those decisions made once per class, as straight-line code over the fields (generated source, as
    ``dataclasses`` makes ``__init__``). It answers ``_SLOW`` instead of raising, for the generic walk to
    say what is wrong, and never calls the class with a value the walk would not pass to it.
    """
    _BUILDERS[cls] = _generic_only  # a class that refers to itself builds its inner part generically
    if not dataclasses.is_dataclass(cls):
        return _generic_only
    fields = dataclasses.fields(cls)
    if any(not f.init or f.kw_only for f in fields):
        return _generic_only
    try:
        hints = get_type_hints(cls)
    except Exception:  # noqa: BLE001 - the generic walk meets the same error, where it always did
        return _generic_only
    env: dict[str, Any] = {"cls": cls, "SLOW": _SLOW, "ABSENT": _ABSENT, "RequestError": RequestError}
    env["NAMES"] = frozenset(f.name for f in fields)
    lines = ["def build(data, ignore):", "    if data.__class__ is not dict:", "        return SLOW"]
    lines += _every_field_lines(fields, hints, env)
    lines += ["    else:", "        get = data.get", "        n = 0"]
    for i, f in enumerate(fields):
        lines += ["    " + line for line in _field_lines(i, f, hints[f.name], env)]
    lines += [  # a key that is no field (or an ignored key that is one) leaves the builder
        "        if n != len(data) and (",
        "            ignore is None or ignore in NAMES or n + 1 != len(data) or ignore not in data",
        "        ):",
        "            return SLOW",
    ]
    values = ", ".join(f"v{i}" for i in range(len(fields)))
    make = _maker(cls, fields, hints, env) or f"cls({values})"
    if _shareable(cls, hints):
        env["SHARED"] = {}
        lines += _shared_lines(values, make)
    else:
        lines += ["    try:", f"        return {make}"]
        lines += ["    except (RequestError, ValueError, TypeError):", "        return SLOW"]
    exec("\n".join(lines), env)  # noqa: S102 - source made here from field names and indexes only
    built: Builder = env["build"]
    _BUILDERS[cls] = built
    return built


SHARED_LIMIT = 1024  # distinct instances kept per shared class; the table starts afresh when full


def _shareable(cls: type, hints: dict[str, Any]) -> bool:
    """Whether equal field values may give the very same instance: the class says so (``SHARED_FROM_JSON``,
    for what a batch repeats and identifies no one: payers, providers, codes, dates of service) and every
    field is a plain value whose equality means sameness (strings, dates, codes, tuples of strings, shared
    classes; an int or bool field holds only its own class, so ``1 == True`` cannot mix them)."""
    return bool(getattr(cls, "SHARED_FROM_JSON", False)) and all(
        _same_when_equal(_strip_optional(hints[f.name])) for f in dataclasses.fields(cls)
    )


def _same_when_equal(tp: Any) -> bool:
    if tp in (str, int, bool, date) or tp == tuple[str, ...]:
        return True
    if get_origin(tp) is typing.Literal:
        return all(type(a) is str for a in get_args(tp))
    return dataclasses.is_dataclass(tp) and _shareable(tp, get_type_hints(tp))  # type: ignore[arg-type]


def _maker(
    cls: type, fields: tuple[dataclasses.Field[Any], ...], hints: dict[str, Any], env: dict[str, Any]
) -> str | None:
    """A call that makes the instance as the class's own ``__init__`` would, for a frozen slots
    dataclass whose ``__init__`` is the one ``dataclasses`` wrote: each slot filled through its
    descriptor, then ``__post_init__``. That ``__init__`` goes through ``object.__setattr__`` per field,
    most of the cost of reading a 278 from JSON. None (call the class) for any other kind of class."""
    init = getattr(cls.__init__, "__code__", None)  # type: ignore[misc]  # read, not called
    slots = [cls.__dict__.get(f.name) for f in fields]
    if (
        init is None
        or init.co_filename != "<string>"  # a hand-written __init__
        or not getattr(cls, "__dataclass_params__").frozen  # noqa: B009 - not in typeshed's type
        or getattr(cls, "__new__", None) is not object.__new__
        or not all(isinstance(slot, types.MemberDescriptorType) for slot in slots)
        or any(isinstance(tp, dataclasses.InitVar) for tp in hints.values())
    ):
        return None
    names = [f"v{i}" for i in range(len(fields))]
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls, "post": getattr(cls, "__post_init__", None)}
    lines = [f"def make({', '.join(names)}):", "    built = new(cls)"]
    for i, slot in enumerate(slots):
        scope[f"S{i}"] = slot.__set__  # type: ignore[union-attr]  # a member descriptor, checked above
        lines.append(f"    S{i}(built, v{i})")
    lines += ["    post(built)"] if scope["post"] is not None else []
    exec("\n".join([*lines, "    return built"]), scope)  # noqa: S102 - made here from indexes only
    env["make"] = scope["make"]
    return f"make({', '.join(names)})"


def _shared_lines(values: str, make: str) -> list[str]:
    """Generated lines that answer the instance already built from equal values, or build and keep it.

    Only what the class accepted is kept, so a value it refuses is refused (by the generic walk) every
    time; equal values build equal instances, and frozen instances can be shared.
    """
    return [
        f"    key = ({values},)",
        "    built = SHARED.get(key)",
        "    if built is not None:",
        "        return built",
        "    try:",
        f"        built = {make}",
        "    except (RequestError, ValueError, TypeError):",
        "        return SLOW",
        f"    if len(SHARED) >= {SHARED_LIMIT}:",
        "        SHARED.clear()",
        "    SHARED[key] = built",
        "    return built",
    ]


def _generic_only(_data: Any, _ignore: str | None) -> Any:
    return _SLOW


def _every_field_lines(
    fields: tuple[dataclasses.Field[Any], ...], hints: dict[str, Any], env: dict[str, Any]
) -> list[str]:
    """The generated lane for an object that gives every field (as :func:`to_dict` writes them): one
    subscript per field, no absent-or-present test and no key count. The object has exactly the fields
    as keys (with ``ignore`` beside them, when that is no field) when it has that many keys and every
    field's is among them; a missing one sends it to the field-by-field lane (the ``else`` after
    these lines), which gives defaults and finds unknown keys."""
    count = len(fields)
    if not count:
        return ["    if False:", "        pass"]  # nothing to read: the other lane counts the keys
    lines = [
        "    size = len(data)",
        f"    if (size == {count} and (ignore is None or ignore not in NAMES)) or (",
        f"        size == {count + 1} and ignore is not None and ignore not in NAMES and ignore in data",
        "    ):",
        "        try:",
    ]
    lines += [f"            v{i} = data[{f.name!r}]" for i, f in enumerate(fields)]
    lines += ["        except KeyError:", "            every = False"]
    lines += ["        else:", "            every = True"]
    lines += ["    else:", "        every = False", "    if every:"]
    for i, f in enumerate(fields):
        lines += ["        " + line for line in _present_lines(i, hints[f.name], env)]
    return lines


def _field_lines(i: int, f: dataclasses.Field[Any], tp: Any, env: dict[str, Any]) -> list[str]:
    """The generated lines that read field ``f`` into ``v{i}`` (its default when absent)."""
    v = f"v{i}"
    lines = [f"    {v} = get({f.name!r}, ABSENT)", f"    if {v} is ABSENT:"]
    if f.default is not dataclasses.MISSING:
        env[f"D{i}"] = f.default
        lines.append(f"        {v} = D{i}")
    elif f.default_factory is not dataclasses.MISSING:
        env[f"D{i}"] = f.default_factory
        lines.append(f"        {v} = D{i}()")
    else:
        lines.append("        return SLOW")
    lines += ["    else:", "        n += 1"]
    return lines + ["        " + line for line in _present_lines(i, tp, env)]


def _present_lines(i: int, tp: Any, env: dict[str, Any]) -> list[str]:
    """The generated lines (unindented) that check and convert the value ``v{i}`` of a field of type
    ``tp`` that the object gives; None passes unchanged where the field is optional."""
    inner = _strip_optional(tp)
    if inner is not tp:  # X | None: None passes unchanged
        return [f"if v{i} is not None:", *("    " + line for line in _value_lines(f"v{i}", i, inner, env))]
    return _value_lines(f"v{i}", i, inner, env)


def _value_lines(v: str, i: int, tp: Any, env: dict[str, Any]) -> list[str]:
    """Generated lines that check (and convert) the present, non-None value ``v`` of type ``tp``."""
    origin = get_origin(tp)
    if tp in (str, int, bool):
        env[f"C{i}"] = tp
        return [f"if {v}.__class__ is not C{i}:", "    return SLOW"]
    if origin is typing.Literal and all(type(a) is str for a in get_args(tp)):
        env[f"L{i}"] = frozenset(get_args(tp))
        return [f"if {v}.__class__ is not str or {v} not in L{i}:", "    return SLOW"]
    if tp is date:
        env["fromisoformat"] = date.fromisoformat
        return [
            f"if {v}.__class__ is not str:",
            "    return SLOW",
            "try:",
            f"    {v} = fromisoformat({v})",
            "except ValueError:",
            "    return SLOW",
        ]
    if dataclasses.is_dataclass(tp):
        env[f"B{i}"] = _BUILDERS.get(tp) or _builder(tp)  # type: ignore[arg-type]  # a class
        return [f"{v} = B{i}({v}, None)", f"if {v} is SLOW:", "    return SLOW"]
    if origin is tuple and get_args(tp)[1:] == (...,):
        return _tuple_lines(v, i, get_args(tp)[0], env)
    env[f"K{i}"] = _converter(tp)  # anything else: the generic converter, its error meaning "slow"
    convert = ["try:", f"    {v} = K{i}({v}, '')", "except RequestError:", "    return SLOW"]
    return _decimal_lines(v, convert, env) if tp is Decimal else convert


def _decimal_lines(v: str, convert: list[str], env: dict[str, Any]) -> list[str]:
    """A Decimal given as a string (the usual ``"quantity": "1"``) read in place, as :func:`_to_decimal`
    reads it (``str()`` of a str is the str itself), without the converter's call and type tests (a
    visible share of a 278's reading); any other value through the converter lines ``convert``."""
    env.update(Decimal=Decimal, InvalidOperation=InvalidOperation)
    lines = [f"if {v}.__class__ is str:", "    try:", f"        {v} = Decimal({v})"]
    lines += ["    except InvalidOperation:", "        return SLOW", "else:"]
    return lines + ["    " + line for line in convert]


def _tuple_lines(v: str, i: int, item: Any, env: dict[str, Any]) -> list[str]:
    """Generated lines for ``tuple[item, ...]`` from a list: strings checked at once, dataclasses one
    by one through their builder, anything else through the generic converter."""
    lines = [f"if {v}.__class__ is not list and {v}.__class__ is not tuple:", "    return SLOW"]
    if item is str:
        env["all_strings"] = _all_strings
        return [*lines, f"if not all_strings({v}):", "    return SLOW", f"{v} = tuple({v})"]
    if dataclasses.is_dataclass(item):
        env[f"B{i}"] = _BUILDERS.get(item) or _builder(item)  # type: ignore[arg-type]  # a class
        lines += [
            f"items = [B{i}(x, None) for x in {v}]",
            "for x in items:",
            "    if x is SLOW:",
            "        return SLOW",
            f"{v} = tuple(items)",
        ]
        if not _shareable(item, get_type_hints(item)):  # type: ignore[arg-type]  # a class
            return lines
        env[f"T{i}"] = {}  # a tuple of shared instances is shared too (the same diagnoses ...)
        return [
            *lines,
            f"if len(T{i}) >= {SHARED_LIMIT}:",
            f"    T{i}.clear()",
            f"{v} = T{i}.setdefault({v}, {v})",
        ]
    env[f"K{i}"] = _converter(tuple[item, ...])
    return ["try:", f"    {v} = K{i}({v}, '')", "except RequestError:", "    return SLOW"]


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
        return functools.partial(from_dict_generic, tp)  # type: ignore[arg-type]  # a class, not an instance
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
        if cls is tuple or cls is list:  # a record's many tuples: without the dataclass question
            leaves = _LEAVES
            return [v if v.__class__ in leaves else to_dict(v) for v in obj]
        if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
            return _plain(obj)
        names = _FIELD_NAMES.setdefault(cls, tuple(f.name for f in dataclasses.fields(obj)))
    # a leaf (most fields: texts and None) kept as it is without a call: a mapped record has a
    # hundred-odd values, and a call per value was most of turning one into its JSON
    leaves = _LEAVES
    return {name: v if (v := getattr(obj, name)).__class__ in leaves else to_dict(v) for name in names}


def _plain(obj: Any) -> Any:
    if isinstance(obj, tuple | list):
        leaves = _LEAVES
        return [v if v.__class__ in leaves else to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return format(obj, "f")
    return obj
