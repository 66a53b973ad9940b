"""The gateway's garbage-collector policy: applied by bulk commands, off by ``X12GW_GC=off``, and
without effect on what the commands print. Each case runs in a fresh interpreter (the policy is
process-wide; the suite itself runs with it off, see conftest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gateway.runtime import gcpolicy
from tests.conftest import ROOT, SAMPLE_EDI

STATE = """
import gc, json
from gateway.runtime import gcpolicy
from transactions.engine.compile import compiled_map
applied = gcpolicy.apply()
print(json.dumps({"applied": applied, "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "maps": compiled_map.cache_info().currsize}))
"""


def _python(args: list[str], policy: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, gcpolicy.ENV: policy}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=False, timeout=300, env=env, cwd=ROOT
    )


def test_policy_freezes_the_loaded_maps_and_raises_the_young_threshold() -> None:
    """On: the project's maps are compiled, the heap is frozen and gen0's threshold is THRESHOLDS."""
    state = json.loads(_python(["-c", STATE], "on").stdout)
    assert state["applied"] is True
    assert tuple(state["threshold"]) == gcpolicy.THRESHOLDS
    assert state["maps"] >= 3  # 270, 271, 278 request and response maps
    assert state["frozen"] > 10_000  # the compiled tables and rules, not just a handful of objects


def test_policy_off_keeps_cpython_defaults() -> None:
    """``X12GW_GC=off``: nothing frozen, nothing loaded ahead, CPython's thresholds."""
    state = json.loads(_python(["-c", STATE], "off").stdout)
    probe = "import gc, json; print(json.dumps(gc.get_threshold()))"
    default = json.loads(_python(["-c", probe], "off").stdout)
    assert state == {"applied": False, "threshold": default, "frozen": 0, "maps": 0}


@pytest.mark.parametrize(
    "command",
    [
        ["map", "--json", str(SAMPLE_EDI / "responses" / "271-batch-100.x12")],
        ["validate", "--json", str(SAMPLE_EDI / "responses" / "278resp-A1-certified.x12")],
    ],
)
def test_commands_print_the_same_with_the_policy_on_and_off(command: list[str]) -> None:
    """The policy changes when memory is reclaimed, never what ``map`` and ``validate`` produce."""
    cli = ["-c", "import sys; from gateway.cli import main; sys.exit(main(sys.argv[1:]))", *command]
    on, off = _python(cli, "on"), _python(cli, "off")
    assert on.returncode == off.returncode
    assert on.stdout == off.stdout
    assert json.loads(on.stdout)  # a real document, not two empty outputs
