"""``json.dumps(value, indent=2, sort_keys=True)`` without json's pure-Python encoder.

With ``indent`` set, the standard library leaves its C encoder and walks the value with nested
generators: about two thirds of a millisecond per outbox result file, several seconds of an end-to-end
run. The result files' bytes are read by billing systems and must not change, so this writer builds
exactly the same text (C ``encode_basestring_ascii`` for strings, the same float, separator and
indentation rules) for the types our documents hold: dicts with string keys, lists, tuples, strings,
ints, floats, bools and None. Anything else (a non-string key, a Decimal, a cycle) goes to
``json.dumps`` itself, so errors and odd cases behave as before (a TypeError can only come from
sorting keys of mixed types, which json.dumps then handles or reports its own way).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any

_INDENT = "  "
_INF = float("inf")


class _Unsupported(Exception):  # noqa: N818 - a private signal, never raised to callers
    """A value this writer does not spell: the whole document goes to ``json.dumps``."""


def dumps_indent2_sorted(value: Any) -> str:
    """The text ``json.dumps(value, indent=2, sort_keys=True)`` gives, built faster."""
    try:
        return _value(value, "\n")
    except (_Unsupported, RecursionError, TypeError):
        return json.dumps(value, indent=2, sort_keys=True)


def _value(o: Any, nl: str) -> str:  # noqa: PLR0911 - one return per JSON type, the common first
    """One value at the indentation ``nl`` (a newline and the current level's spaces)."""
    t = type(o)
    if t is str:
        return encode_basestring_ascii(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if t is int:
        return int.__repr__(o)
    if t is dict:
        return _dict(o, nl)
    if t is list:
        return _list(o, nl)
    return _other(o, nl)


def _other(o: Any, nl: str) -> str:
    """Subclasses and floats, tested in the order ``json.encoder`` tests them."""
    if isinstance(o, str):
        return encode_basestring_ascii(o)
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return _float(o)
    if isinstance(o, list | tuple):
        return _list(o, nl)
    if isinstance(o, dict):
        return _dict(o, nl)
    raise _Unsupported


def _float(o: float) -> str:
    """json's ``floatstr`` with ``allow_nan=True``."""
    if o != o:  # noqa: PLR0124 - NaN is the one value unequal to itself
        return "NaN"
    if o == _INF:
        return "Infinity"
    if o == -_INF:
        return "-Infinity"
    return float.__repr__(o)


def _dict(o: dict[Any, Any], nl: str) -> str:
    if not o:
        return "{}"
    inner = nl + _INDENT
    items: list[str] = []
    add = items.append
    for key in sorted(o):  # mixed key types raise TypeError here: json.dumps then decides
        if type(key) is not str and not isinstance(key, str):
            raise _Unsupported  # json converts and sorts other keys its own way
        v = o[key]
        t = type(v)  # strings and nulls are most of a record's leaves: no call for them
        if t is str:
            add(encode_basestring_ascii(key) + ": " + encode_basestring_ascii(v))
        elif v is None:
            add(encode_basestring_ascii(key) + ": null")
        else:
            add(encode_basestring_ascii(key) + ": " + _value(v, inner))
    return "{" + inner + ("," + inner).join(items) + nl + "}"


def _list(o: list[Any] | tuple[Any, ...], nl: str) -> str:
    if not o:
        return "[]"
    inner = nl + _INDENT
    items = [encode_basestring_ascii(v) if type(v) is str else _value(v, inner) for v in o]
    return "[" + inner + ("," + inner).join(items) + nl + "]"
