"""Deterministic mutants of valid X12 files for differential testing: one defect each, named."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

ENVELOPE = ("ISA", "GS", "ST", "SE", "GE", "IEA")


@dataclass(frozen=True)
class Mutant:
    name: str  # operation and the segment it touched, e.g. "delete NM1@5"
    op: str
    tag: str
    text: str


def split(text: str) -> tuple[list[str], str, str]:
    """Segments (without terminators), the terminator and the element separator."""
    text = text.lstrip("\ufeff")
    term, sep = text[105], text[3]
    segs = [s.strip("\r\n ") for s in text.split(term)]
    return [s for s in segs if s], term, sep


def join(segs: list[str], term: str, sep: str, *, fix_count: bool = True) -> str:
    out = list(segs)
    if fix_count:
        start = None
        for i, s in enumerate(out):
            if s.startswith(f"ST{sep}"):
                start = i
            elif s.startswith(f"SE{sep}") and start is not None:
                parts = s.split(sep)
                parts[1] = str(i - start + 1)
                out[i] = sep.join(parts)
    return "".join(f"{s}{term}\n" for s in out)


def _body(segs: list[str], sep: str) -> list[int]:
    return [i for i, s in enumerate(segs) if s.split(sep)[0] not in ENVELOPE]


def _set_element(seg: str, sep: str, index: int, value: str) -> str:
    parts = seg.split(sep)
    while len(parts) <= index:
        parts.append("")
    parts[index] = value
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return sep.join(parts)


def mutants(text: str, seed: int, count: int) -> Iterator[Mutant]:
    """``count`` mutants of ``text``, the same for the same seed."""
    rng = random.Random(seed)
    segs, term, sep = split(text)
    body = _body(segs, sep)
    ops = ("delete", "duplicate", "swap", "blank", "bad_code", "bad_date", "hl_parent", "se_count")
    for n in range(count):
        op = ops[n % len(ops)]
        s = list(segs)
        i = rng.choice(body)
        tag = s[i].split(sep)[0]
        fix = True
        if op == "delete":
            del s[i]
        elif op == "duplicate":
            s.insert(i, s[i])
        elif op == "swap":
            j = i + 1 if i + 1 in body else i - 1
            s[i], s[j] = s[j], s[i]
        elif op == "blank":
            s[i] = _set_element(s[i], sep, 1, "")
        elif op == "bad_code":
            s[i] = _set_element(s[i], sep, 1, "Q9")
        elif op == "bad_date":
            dated = [k for k in body if s[k].split(sep)[0] in ("DMG", "DTP")]
            if not dated:
                continue
            i = rng.choice(dated)
            tag = s[i].split(sep)[0]
            s[i] = _set_element(s[i], sep, 2 if tag == "DMG" else 3, "20231301")
        elif op == "hl_parent":
            hls = [k for k in body if s[k].startswith(f"HL{sep}") and s[k].split(sep)[2]]
            if not hls:
                continue
            i = rng.choice(hls)
            tag = "HL"
            s[i] = _set_element(s[i], sep, 2, "98")
        elif op == "se_count":
            ends = [k for k, x in enumerate(s) if x.startswith(f"SE{sep}")]
            if not ends:
                continue
            k = ends[0]
            tag = "SE"
            fixed = join(s, term, sep)
            s = split(fixed)[0]
            parts = s[k].split(sep)
            parts[1] = str(int(parts[1]) + 1)
            s[k] = sep.join(parts)
            fix = False
        yield Mutant(f"{op} {tag}@{i}", op, tag, join(s, term, sep, fix_count=fix))
