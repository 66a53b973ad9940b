"""The implementation-guide maps (pyx12 map XML) and the index that picks one per transaction set.

Our 270/271/278 maps live here; the 999 and 837P maps, ``codes.xml`` and ``dataele.xml`` are pyx12's
own, loaded from the pyx12 package by reference (never copied). Maps are parsed with an lxml parser
that resolves no entities and touches no network, then handed to pyx12's ``map_if``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from lxml import etree

SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)


@dataclass(frozen=True, slots=True)
class MapEntry:
    """One row of ``maps.xml``."""

    icvn: str
    vriic: str
    fic: str
    tspc: str | None
    abbr: str
    file: str
    source: str  # "ours" or "pyx12"
    warning: str | None


def read_resource(package: str, *parts: str) -> bytes:
    """Bytes of a file shipped inside a package (package data, not user files)."""
    return files(package).joinpath(*parts).read_bytes()


def parse_xml(data: bytes) -> Any:
    """Parse XML with entity resolution, DTD loading and network access off."""
    return etree.fromstring(data, SAFE_PARSER)


@functools.cache
def index() -> tuple[MapEntry, ...]:
    root = parse_xml(read_resource("transactions", "maps", "maps.xml"))
    out = []
    for version in root.iter("version"):
        for m in version.iter("map"):
            out.append(
                MapEntry(
                    icvn=version.get("icvn"),
                    vriic=m.get("vriic"),
                    fic=m.get("fic"),
                    tspc=m.get("tspc"),
                    abbr=m.get("abbr"),
                    file=(m.text or "").strip(),
                    source=m.get("source", "ours"),
                    warning=m.get("warning"),
                )
            )
    return tuple(out)


def find_map(icvn: str, vriic: str, fic: str, tspc: str | None = None) -> MapEntry | None:
    """The map for a transaction set; ``tspc`` (BHT02) only matters where the index gives one."""
    candidates = [e for e in index() if (e.icvn, e.vriic, e.fic) == (icvn, vriic, fic)]
    if any(e.tspc for e in candidates):
        exact = [e for e in candidates if e.tspc == tspc]
        return exact[0] if exact else None
    return candidates[0] if candidates else None


def map_xml(entry: MapEntry) -> bytes:
    package = "pyx12" if entry.source == "pyx12" else "transactions"
    return (
        read_resource(package, "map", entry.file)
        if package == "pyx12"
        else read_resource(package, "maps", entry.file)
    )


@functools.cache
def load_map(file: str, source: str = "ours") -> Any:
    """A pyx12 ``map_if`` for one map file (cached: maps are immutable once loaded)."""
    from pyx12.map_if import map_if  # noqa: PLC0415 - pyx12 loads slowly; only validators need it
    from pyx12.params import ParamsBase  # noqa: PLC0415

    entry = next(e for e in index() if e.file == file and e.source == source)
    root = parse_xml(map_xml(entry))
    return map_if(root, ParamsBase(), None)


@functools.cache
def element_repeats(file: str, source: str = "ours") -> dict[str, int]:
    """``repeat`` of every element that may repeat (pyx12 4 ignores it; our driver enforces it)."""
    entry = next(e for e in index() if e.file == file and e.source == source)
    root = parse_xml(map_xml(entry))
    out: dict[str, int] = {}
    for el in root.iter("element"):
        rep = el.get("repeat") or el.findtext("repeat")
        if rep and rep.isdigit() and int(rep) > 1:
            out[el.get("xid")] = int(rep)
    return out
