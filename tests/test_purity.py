"""The pure core (transactions/, mappings/, policy/) imports no I/O, network, database, clock or
logging module, and no production package imports the payer side (payersim/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BANNED_MODULES = {
    "paramiko",
    "sqlalchemy",
    "alembic",
    "structlog",
    "logging",
    "socket",
    "subprocess",
    "shutil",
    "pathlib",
    "os",
    "tempfile",
    "time",
    "io",
    "sqlite3",
    "psycopg",
    "gateway",
    "payersim",
    "urllib",
    "http",
}
BANNED_CALLS = {"open", "print", "input"}
BANNED_ATTRS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("datetime", "today")}


def _core_files() -> list[Path]:
    return sorted(p for pkg in ("transactions", "mappings", "policy") for p in (ROOT / pkg).rglob("*.py"))


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in BANNED_MODULES:
            found.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BANNED_CALLS:
            found.append(f"{node.func.id}()")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in BANNED_ATTRS
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return [f"{path.relative_to(ROOT)}:{v}" for v in found]


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_is_pure(path: Path) -> None:
    """No banned import or call appears in a core module."""
    assert _violations(path) == []


def test_the_check_catches_violations(tmp_path: Path) -> None:
    """The scanner itself flags an I/O import, open() and the clock (so the test above can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom datetime import datetime\nx = open('f')\ny = datetime.now()\n")
    global ROOT  # noqa: PLW0603 - point the scanner at the temporary file
    saved, ROOT = ROOT, tmp_path
    try:
        assert len(_violations(bad)) == 3
    finally:
        ROOT = saved


# The only production modules allowed to reach the payer side: the commands that start it.
PAYERSIM_ALLOWED = {"gateway/cli/sim_cmd.py", "gateway/cli/demo_cmd.py"}


def _payersim_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return [n for n in names if n.split(".")[0] == "payersim"]


def _production_files() -> list[Path]:
    pkgs = ("gateway", "transactions", "mappings", "policy")
    return sorted(p for pkg in pkgs for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _production_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_production_never_imports_the_payer_side(path: Path) -> None:
    """Production modules do not import payersim, except the sim and demo commands that start it."""
    rel = str(path.relative_to(ROOT))
    if rel in PAYERSIM_ALLOWED:
        return
    assert _payersim_imports(path) == []


def test_the_payer_side_check_catches_an_import(tmp_path: Path) -> None:
    """The payer-side scanner flags both import forms (so the test above can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import payersim.simulator\nfrom payersim.scenario import Scenario\n")
    assert _payersim_imports(bad) == ["payersim.simulator", "payersim.scenario"]
