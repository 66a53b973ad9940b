"""Assemble a pyx12 map folder (pyx12's own files by symlink, plus our maps and a pyx12-style maps.xml).

pyx12 reads a map folder all-or-nothing; the gateway itself never needs one (it hands parsed maps to
pyx12 directly), but pyx12's own tools — ``x12valid --map-path``, the benchmark's side-by-side run —
do. Nothing of pyx12's is copied: every pyx12 file is a symbolic link into the installed package.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from transactions.maps import index

_PYX12_OWN_REGISTRATIONS = """
    <map vriic="005010X214" fic="HN" abbr="277">277.5010.X214.xml</map>
    <map vriic="005010X218" fic="RA" abbr="820">820.5010.X218.xml</map>
    <map vriic="005010X220A1" fic="BE" abbr="834">834.5010.X220.A1.xml</map>
    <map vriic="005010X221A1" fic="HP" abbr="835W1">835.5010.X221.A1.xml</map>
    <map vriic="005010X231" fic="FA" abbr="999">999.5010.xml</map>
"""


def assemble_map_dir(target: Path) -> Path:
    """Fill ``target`` with links to pyx12's map files and ours, and write a pyx12-format maps.xml.

    pyx12's index has no BHT02 selection for 005010X217, so only the 278 request map is registered
    there under that version; our own driver picks request or response by BHT02.
    """
    target.mkdir(parents=True, exist_ok=True)
    with (
        as_file(files("pyx12").joinpath("map")) as pyx12_dir,
        as_file(files("transactions").joinpath("maps")) as ours,
    ):
        for src in [
            *Path(pyx12_dir).glob("*.xml"),
            *Path(pyx12_dir).glob("*.xsd"),
            *Path(ours).glob("*.xml"),
        ]:
            if src.name == "maps.xml":
                continue
            link = target / src.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(src.resolve())
    rows = []
    seen: set[tuple[str, str]] = set()
    for e in index():
        if (e.vriic, e.fic) in seen or e.abbr == "278resp":
            continue
        seen.add((e.vriic, e.fic))
        rows.append(f'    <map vriic="{e.vriic}" fic="{e.fic}" abbr="{e.abbr}">{e.file}</map>')
    body = "\n".join(rows) + _PYX12_OWN_REGISTRATIONS
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<maps>\n  <version icvn="00501">\n{body}'
    xml += '    <map vriic="" fic="" abbr="X12">x12.control.00501.xml</map>\n  </version>\n</maps>\n'
    (target / "maps.xml").write_text(xml, encoding="utf-8")
    return target
