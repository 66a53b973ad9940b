"""Cheap start: ``x12gw --help``, ``--version`` and ``parse`` import none of the heavy libraries."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib.metadata import version

import pytest

from gateway.cli import COMMANDS, main, make_parser
from tests.conftest import SAMPLE_EDI

HEAVY = ("pyx12", "sqlalchemy", "paramiko", "lxml", "alembic", "psycopg")
PROBE = """
import json, sys
from gateway.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print(json.dumps({"code": code, "heavy": loaded}), file=sys.stderr)
"""


def run_probe(*argv: str) -> dict[str, object]:
    """Run the CLI in a fresh interpreter and report which heavy top-level packages it imported."""
    script = PROBE.replace("json.loads(HEAVY)", repr(json.dumps(HEAVY)).join(("json.loads(", ")")))
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, check=False, timeout=120
    )
    report: dict[str, object] = json.loads(done.stderr.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("--version",),
        ("parse", str(SAMPLE_EDI / "responses" / "278resp-A1-certified.x12")),
        ("parse", "--json", str(SAMPLE_EDI / "responses" / "278resp-A1-certified.x12")),
    ],
)
def test_light_commands_import_no_heavy_library(argv: tuple[str, ...]) -> None:
    """Help, version and parse start without pyx12, SQLAlchemy, paramiko or lxml."""
    report = run_probe(*argv)
    assert report["code"] in (0, None)
    assert report["heavy"] == []


def test_the_probe_sees_heavy_imports() -> None:
    """The probe itself works: a command that needs the store does load SQLAlchemy."""
    report = run_probe("log", "list", "--config", "/nonexistent/gateway.toml")
    assert "sqlalchemy" in report["heavy"]  # type: ignore[operator]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``x12gw --version`` prints the installed distribution's version and exits 0."""
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"x12gw {version('x12-gateway')}\n"


def test_command_table_matches_the_modules() -> None:
    """The lazy table lists exactly the commands the modules register, with the same help texts."""
    full = make_parser()
    subs = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    registered = {action.dest: action.help for action in subs._choices_actions}
    assert registered == {name: text for name, (_, text) in COMMANDS.items()}
    for name in COMMANDS:
        alone = next(a for a in make_parser(name, everything=False)._actions if a.dest == "command")
        assert isinstance(alone, argparse._SubParsersAction)
        assert len(alone.choices[name]._actions) > 1, f"{name} is only a placeholder"
