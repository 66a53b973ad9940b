"""Element and segment checks over compiled specs: pyx12's ``is_valid_errors`` rules, in one pass.

A segment is checked as pyx12 sees it after our writer and its parser: repetitions reduced to the
first occurrence, trailing empty components and elements dropped. :func:`view` builds that form
(a value is a ``str``, or a tuple of two or more components) without writing text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from transactions.engine.tables import MAXINT, CompositeSpec, ElementSpec, SegNode
from transactions.segment import Element, Repetition, Segment

Value = str | tuple[str, ...]
View = tuple[Value, ...]
EleErr = tuple[str, ElementSpec | None, str | None]  # (IK403 code, element spec or None, refdes)

_CONTROL = tuple(chr(c) for c in (0x07, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F)) + tuple(
    chr(c) for c in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17)
)
_CONTROL_RE = re.compile("[" + "".join(_CONTROL) + "]")
_REC_N = re.compile(r"^-?[0-9]+", re.S | re.ASCII)
_REC_R = re.compile(r"^-?[0-9]*(\.[0-9]+)?", re.S | re.ASCII)
_REC_ID_E = re.compile(r"""[^A-Z0-9!"&'()*+,\-\./:;?= a-z%~@\[\]_{}\\|<>#$]""", re.S | re.ASCII)
_REC_ID_E5 = re.compile(r"""[^A-Z0-9!"&'()*+,\-\./:;?= a-z%~@\[\]_{}\\|<>^`#$]""", re.S | re.ASCII)
_REC_DIGITS = re.compile(r"[^0-9]+", re.S | re.ASCII)
# The characters the two ID/AN patterns accept (only ASCII ones: a negated class matches anything else),
# for ``str.strip``: a value is valid when stripping them leaves nothing, with no regex per value.
_ID_CHARS = "".join(c for c in map(chr, range(128)) if not _REC_ID_E.search(c))
_ID_CHARS_5 = "".join(c for c in map(chr, range(128)) if not _REC_ID_E5.search(c))
_DATE_TYPES = ("RD8", "DT", "D8", "D6")
_DTP_TYPES = ("RD8", "D8", "D6", "DT", "TM")


_join = "".join


def view(segment: Segment) -> tuple[View, bool]:
    """The segment's elements as pyx12 parses them back from our text, and whether every element is a
    plain string (no composite, no repetition). A ``str`` subclass counts as plain: every check reads
    it as the string it is (``_slow_view`` would keep it as it stands too)."""
    elements = segment.elements
    try:  # a composite or a repetition (a tuple) stops the join: one C call instead of a loop
        _join(elements)  # type: ignore[arg-type]
    except TypeError:
        return _slow_view(elements), False
    if elements and elements[-1] == "":
        return _slow_view(elements), True
    return elements, True  # type: ignore[return-value]  # every element is a str here


def _slow_view(elements: tuple[Element, ...]) -> View:
    out: list[Value] = []
    for e in elements:
        if e.__class__ is str:  # most values of a segment with a composite or a repetition
            out.append(e)
            continue
        if isinstance(e, Repetition):
            e = e[0] if e else ""  # noqa: PLW2901 - the first occurrence is what pyx12 sees
        if isinstance(e, str):
            out.append(e)
            continue
        parts = list(e)
        while parts and parts[-1] == "":
            parts.pop()
        out.append(tuple(parts) if len(parts) > 1 else (parts[0] if parts else ""))
    while out and out[-1] == "":
        out.pop()
    return tuple(out)


def text(value: Value, component: str) -> str:
    """pyx12's ``get_value`` of a whole element: components joined."""
    return value if isinstance(value, str) else component.join(value)


def is_match(node: SegNode, tag: str, values: View, component: str) -> bool:
    """pyx12's ``segment_if.is_match``: the id, and the qualifier where the map has one."""
    if tag != node.id:
        return False
    q = node.qualifier
    if q is None:
        return True
    ele, sub, codes = q
    if ele > len(values):
        return None in codes
    value = values[ele - 1]
    if sub:
        comps = (value,) if isinstance(value, str) else value
        return (comps[sub - 1] if sub <= len(comps) else None) in codes
    return (value if isinstance(value, str) else component.join(value)) in codes  # text(), inline


def _valid_date(data_type: str, val: str) -> bool:  # noqa: PLR0911 - pyx12's rules, case by case
    if (data_type == "D8" and len(val) != 8) or (data_type == "D6" and len(val) != 6):
        return False
    if _REC_DIGITS.search(val) or len(val) not in (6, 8, 12):
        return False
    if len(val) == 6:
        val = "20" + val if int(val[0:2]) < 50 else "19" + val
    year, month = int(val[0:4]), int(val[4:6])
    day = int(val[6:8]) if val[6:8] else -1
    if year < 1800 or month < 1 or month > 12:
        return False
    if month in (1, 3, 5, 7, 8, 10, 12):
        if day < 1 or day > 31:
            return False
    elif month in (4, 6, 9, 11):
        if day < 1 or day > 30:
            return False
    elif not year % 4 and not (not year % 100 and year % 400):
        if day < 1 or day > 29:
            return False
    elif day < 1 or day > 28:
        return False
    return not (len(val) == 12 and not _valid_time(val[8:12]))


def _valid_time(val: str) -> bool:
    if _REC_DIGITS.search(val):
        return False
    if val[0:2] > "23" or val[2:4] > "59":
        return False
    if len(val) > 4:
        return not (len(val) < 6 or val[4:6] > "59" or len(val) > 8)
    return True


def valid_type(val: str, data_type: str | None, icvn: str) -> bool:  # noqa: PLR0911 - one rule per X12 type
    """pyx12's ``IsValidDataType`` with the extended character set (its default)."""
    if not data_type:
        return True
    if data_type[0] == "N":  # -?[0-9]+ and nothing else
        digits = val[1:] if val[:1] == "-" else val
        return digits.isascii() and digits.isdigit()
    if data_type == "R":
        m = _REC_R.search(val)
        return m is not None and m.group(0) == val
    if data_type in ("ID", "AN"):
        return not val.strip(_ID_CHARS_5 if icvn == "00501" else _ID_CHARS)
    if data_type == "RD8":
        if "-" not in val:
            return False
        parts = val.split("-")
        if len(parts) != 2:  # pyx12 raises ValueError unpacking; treated as invalid here
            return False
        return valid_type(parts[0], "D8", "00401") and valid_type(parts[1], "D8", "00401")
    if data_type in ("DT", "D8", "D6"):
        return _valid_date(data_type, val)
    if data_type == "TM":
        return _valid_time(val)
    return data_type == "B"


def check_element(
    spec: ElementSpec, value: Value | None, icvn: str, type_list: list[str] | None = None
) -> list[EleErr]:
    """Errors of one simple element (``value`` None: absent)."""
    if isinstance(value, tuple):
        return [("6", spec, spec.id)]
    if not value:
        return [("1", spec, spec.id)] if spec.required_when_empty else []
    if spec.usage == "N":
        return [("10", spec, spec.id)]
    errors: list[EleErr] = []
    n = len(value.replace("-", "").replace(".", "")) if spec.numeric else len(value)
    if n < spec.min_len:
        errors.append(("4", spec, spec.id))
    if n > spec.max_len:
        errors.append(("5", spec, spec.id))
    if _CONTROL_RE.search(value):
        errors.append(("6", spec, spec.id))
        return errors
    if spec.trailing_checked and value[-1] == " " and len(value.rstrip()) >= spec.min_len:
        errors.append(("6", spec, spec.id))
    codes = spec.codes
    known = codes is None or value in codes or spec.external_any
    if not known and (spec.external is None or value not in spec.external):
        errors.append(("7", spec, spec.id))
    dt = spec.data_type
    if not valid_type(value, dt, icvn):
        errors.append(("8" if dt in _DATE_TYPES else ("9" if dt == "TM" else "6"), spec, spec.id))
    if type_list:
        errors += _type_list_errors(spec, value, type_list)
    if spec.regex is not None and not spec.regex.search(value):
        errors.append(("7", spec, spec.id))
    return errors


def _type_list_errors(spec: ElementSpec, value: str, type_list: list[str]) -> list[EleErr]:
    if any(valid_type(value, t, "00401") for t in type_list if t is not None):
        return []
    if "TM" in type_list:
        return [("9", spec, spec.id)]
    if any(t in type_list for t in _DATE_TYPES):
        return [("8", spec, spec.id)]
    return []


def check_composite(spec: CompositeSpec, value: Value | None, icvn: str) -> list[EleErr]:
    """Errors of one composite (``value`` None: absent)."""
    comps: tuple[str, ...] = () if value is None else ((value,) if isinstance(value, str) else value)
    empty = not any(comps)
    if empty and spec.usage in ("N", "S"):
        return []
    if spec.usage == "R" and empty:
        return [("1", None, spec.refdes)]
    if spec.usage == "N":
        return [("5", None, spec.refdes)]
    errors: list[EleErr] = []
    kids = spec.children
    if len(comps) > len(kids):
        errors.append(("3", None, spec.refdes))
    n = len(comps)
    for i, kid in enumerate(kids):
        if i >= n:  # absent: check_element(kid, None) without the call
            if kid.required_when_empty:
                errors.append(("1", kid, kid.id))
            continue
        value = comps[i]
        if value not in kid.ok and not clean(kid, value, icvn):
            errors += check_element(kid, value, icvn)
    return errors


# Results remembered per element spec and per segment node, up to these many values each: a bound on
# memory, not on correctness (a result depends only on the spec and the value). The values are data,
# possibly PHI, so validation runs end with :func:`transactions.engine.compile.forget_values`.
MEMO_LIMIT = 1024
SEGMENT_MEMO_LIMIT = 256
# every memo given an entry, appended after the entry is written (so a memo a concurrent
# ``forget_values`` took off the list is added again by its next write): ``forget_values`` empties
# these, not the thousands of memos of every compiled map, most of which a run never touches
WRITTEN: list[dict[Any, tuple[Any, ...]]] = []


def element_value_errors(spec: ElementSpec, value: Value, icvn: str) -> tuple[EleErr, ...]:
    """``check_element`` of a present value, remembered per spec: the result depends on nothing else.
    A value :func:`clean` passes has none and skips the full check."""
    if isinstance(value, tuple):
        return (("6", spec, spec.id),)
    memo = spec.memo
    found = memo.get(value)
    if found is None:
        found = () if clean(spec, value, icvn) else tuple(check_element(spec, value, icvn))
        if len(memo) < MEMO_LIMIT:
            memo[value] = found
            WRITTEN.append(memo)
    return found


def clean(spec: ElementSpec, value: str, icvn: str) -> bool:  # noqa: PLR0911 - one exit per rule
    """True only when :func:`check_element` (without a type list) finds nothing: the common case in one
    pass of str methods and set lookups, no list built. Anything doubtful answers False, and the full
    check decides (so this may be stricter, never looser)."""
    if not value:
        return not spec.required_when_empty
    if spec.usage == "N":
        return False
    n = len(value) - value.count("-") - value.count(".") if spec.numeric else len(value)
    if n < spec.min_len or n > spec.max_len or not value.isprintable():  # printable: no control char
        return False
    if spec.trailing_checked and value[-1] == " ":
        return False
    codes = spec.codes
    if codes is not None and value not in codes and not spec.external_any:
        external = spec.external
        if external is None or value not in external:
            return False
    dt = spec.data_type
    if dt in {"ID", "AN"}:  # valid_type's rule for the two commonest types, without the call
        if value.strip(_ID_CHARS_5 if icvn == "00501" else _ID_CHARS):
            return False
    elif not valid_type(value, dt, icvn):
        return False
    return spec.regex is None or spec.regex.search(value) is not None


def check_segment(node: SegNode, tag: str, values: View, icvn: str) -> Sequence[EleErr]:
    """pyx12's ``segment_if.is_valid_errors`` over a :func:`view` of the segment, remembered per node
    and values (bounded; the result depends on nothing else)."""
    if not MEMO_LIMIT:  # memos off: not even a lookup (it hashes every value of the segment)
        return _check_segment(node, tag, values, icvn)
    memo = node.memo
    found = memo.get(values)
    if found is None:
        found = tuple(_check_segment(node, tag, values, icvn))
        if len(memo) < SEGMENT_MEMO_LIMIT:
            memo[values] = found
            WRITTEN.append(memo)
    return found


def _check_segment(node: SegNode, tag: str, values: View, icvn: str) -> list[EleErr]:
    if node.special:
        return _check_special(node, tag, values, icvn)
    errors: list[EleErr] = []
    kids = node.children
    n = len(values)
    if n > len(kids):
        errors.append(("3", None, "%02i" % (len(kids) + 1)))  # noqa: UP031 - pyx12's refdes format
    memo_on = MEMO_LIMIT
    for kid, value in zip(kids, values, strict=False):
        if kid.__class__ is CompositeSpec:
            errors += check_composite(kid, value, icvn)
        elif value in kid.ok:  # type: ignore[union-attr]  # an ElementSpec: a code it accepts, done
            continue
        elif memo_on or value.__class__ is not str or not clean(kid, value, icvn):  # type: ignore[arg-type]
            found = element_value_errors(kid, value, icvn)  # type: ignore[arg-type]  # an ElementSpec
            if found:
                errors += found
    if n < len(kids):
        errors += node.absent_after[n]
    if node.rules:
        _syntax_errors(node, values, errors)
    return errors


def _typed_errors(spec: ElementSpec, value: Value, icvn: str, type_list: list[str]) -> list[EleErr]:
    """``check_element`` with a type list: for a non-empty value :func:`clean` passes, only the type
    list's own errors can remain (they come after every other check but the regex, which clean passed).
    An empty value returns before the type list is read, so it takes the full check."""
    if value and value.__class__ is str and clean(spec, value, icvn):
        return _type_list_errors(spec, value, type_list) if type_list else []
    return check_element(spec, value, icvn, type_list)


def _syntax_errors(node: SegNode, values: View, errors: list[EleErr]) -> None:
    n = len(values)
    for kind, idx, refdes in node.rules:
        if kind in ("P", "R", "E", "C", "L"):
            present = [s <= n and values[s - 1] != "" for s in idx]
            code = _relation(kind, present)
        else:  # a rule of fewer than three parts, or an unknown kind: a fixed code
            code = kind
        if code is not None:
            errors.append((code, None, refdes))


def _check_special(node: SegNode, tag: str, values: View, icvn: str) -> list[EleErr]:
    """Segments whose element checks read a neighbour: DTP03 in the format DTP02 names, 1251 in 1250's."""
    errors: list[EleErr] = []
    kids = node.children
    count = len(kids)
    n = len(values)
    if n > count:
        errors.append(("3", None, "%02i" % (count + 1)))  # noqa: UP031 - pyx12's refdes format
    dtype: list[str] = []
    type_list: list[str] = []
    for i, kid in enumerate(kids):
        value = values[i] if i < n else None
        if isinstance(kid, CompositeSpec):
            errors += check_composite(kid, value, icvn)
            continue
        if i >= n:
            errors += kid.absent  # check_element(kid, None), fixed per spec
            continue
        if i == 1 and tag == "DTP" and value in _DTP_TYPES:
            dtype = [value]
        if kid.data_ele == "1250":
            type_list.extend(c for c in kid.valid_codes if c is not None)
        if i == 2 and tag == "DTP":
            errors += _typed_errors(kid, value, icvn, dtype)  # type: ignore[arg-type]  # present here
        elif kid.data_ele == "1251" and type_list:
            errors += _typed_errors(kid, value, icvn, type_list)  # type: ignore[arg-type]  # present here
        else:
            errors += element_value_errors(kid, value, icvn)  # type: ignore[arg-type]  # present here
    if node.rules:
        _syntax_errors(node, values, errors)
    return errors


def syntax_rule(syn: tuple[int | str, ...]) -> tuple[str, tuple[int, ...], str | None]:
    """A map's relational condition compiled once: (kind, element positions, IK404 refdes). A rule of
    fewer than three parts, or of an unknown kind, keeps the fixed IK403 code in place of its kind."""
    refdes = str(syn[1]) if len(syn) > 1 else None
    if len(syn) < 3:
        return ("10" if syn[0] == "E" else "2"), (), refdes
    kind = str(syn[0])
    if kind not in ("P", "R", "E", "C", "L"):
        return "2", (), refdes
    return kind, tuple(int(s) for s in syn[1:]), refdes


def _relation(kind: str, present: list[bool]) -> str | None:
    """The IK403 code of a violated relational condition (P, R, C, L, E), else None."""
    count = sum(present)
    if kind == "P":
        return "2" if count not in (0, len(present)) else None
    if kind == "R":
        return "2" if count == 0 else None
    if kind == "E":
        return "10" if count > 1 else None
    if kind == "C":
        return "2" if present[0] and sum(present[1:]) != len(present) - 1 else None
    return "2" if present[0] and not any(present[1:]) else None  # L


__all__ = [
    "MAXINT",
    "EleErr",
    "View",
    "check_composite",
    "check_element",
    "check_segment",
    "is_match",
    "view",
]
