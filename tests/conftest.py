"""Shared fixtures: paths to the public sample corpus and the project's own sample files."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from structlog.stdlib import ProcessorFormatter

from gateway.runtime.logsetup import configure_logging, reset_logging

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EDI = ROOT / "sample_edi"
PUBLIC = ROOT / "tests" / "public_x12"

# The gateway's collector policy (gateway.runtime.gcpolicy) is process-wide (gc.freeze, thresholds):
# commands run in-process here many times would pile frozen objects into the test process, so the
# suite keeps CPython's defaults; tests/test_gcpolicy.py runs the policy in fresh interpreters.
os.environ.setdefault("X12GW_GC", "off")

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def public_files(kind: str | None = None) -> list[Path]:
    """Every public TR3-style example file (optionally of one kind: 270, 271, 278req, 278resp, ...)."""
    base = PUBLIC if kind is None else PUBLIC / kind
    return sorted(
        p
        for p in base.rglob("*")
        if p.is_file() and p.suffix not in (".md", ".json") and not p.name.endswith(".997")
    )


@pytest.fixture
def sample_edi() -> Path:
    return SAMPLE_EDI


# --------------------------------------------------------------------------------------------- PHI canaries
# Every log line the suite produces (this process through the real redacting formatter, plus the logs
# of the gateway subprocesses tests start) lands in one session folder; tests/test_phi_canary.py, moved
# to the end of the run, fails if any line holds a canary name, member id or birth date.


class _SessionLogHandler(logging.FileHandler):
    """A file handler that never echoes a record it failed to format (its arguments may be PHI)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - the stdlib's name
        if self.stream is not None:  # None only before a delayed open
            self.stream.write(f'{{"event": "unformattable record from {record.name}"}}\n')


def _redacting_formatter() -> logging.Formatter:
    """The formatter ``configure_logging`` installs (JSON, redaction for stdlib records), borrowed."""
    configure_logging(json=True, level="INFO", stream=io.StringIO())
    root = logging.getLogger()
    formatter = next(
        h.formatter for h in reversed(root.handlers) if isinstance(h.formatter, ProcessorFormatter)
    )
    reset_logging()
    return formatter


@pytest.fixture(scope="session")
def phi_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every log of the session goes to (subprocess tests write their stderr logs here)."""
    return tmp_path_factory.getbasetemp() / "phi-logs"


@pytest.fixture(scope="session", autouse=True)
def _capture_session_logs(phi_log_dir: Path) -> Iterator[Path]:
    """Keep every log line of this process for the canary scan, rendered as the gateway renders it."""
    phi_log_dir.mkdir(parents=True, exist_ok=True)
    handler = _SessionLogHandler(phi_log_dir / "pytest-session.log", encoding="utf-8")
    handler.setFormatter(_redacting_formatter())
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # INFO lines reach the handler (``reset_logging`` puts this level back)
    root.addHandler(handler)
    yield phi_log_dir / "pytest-session.log"
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "run_last: run after every other test (the PHI canary scan)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``run_last`` go to the end, so they see every log line the others produced."""
    last = [item for item in items if item.get_closest_marker("run_last")]
    if last:
        items[:] = [item for item in items if item not in last] + last
