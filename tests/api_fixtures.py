"""The ``workspace`` fixture of the HTTP API and FHIR door tests; load with
``pytest_plugins = ["tests.api_fixtures"]``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.runtime.config import load_config
from gateway.runtime.context import Context
from gateway.runtime.runner import open_context
from payersim.demo import prepare
from tests.api_support import ROOT

SCENARIO = ROOT / "sample_edi" / "scenarios" / "demo.toml"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[tuple[Path, Context]]:
    """A gateway workspace whose batch partner is the in-process SFTP simulator; the run loop's context."""
    ws = prepare(tmp_path / "ws", SCENARIO)
    ctx = open_context(load_config(ws.config_path), allow_upgrade=True)
    try:
        yield ws.config_path, ctx
    finally:
        ctx.store.close()
        ws.simulator.stop()
