"""A real-time answer's info events are skipped only when they would be dropped unwritten anyway."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.runtime.logsetup import configure_logging, get_logger, reset_logging
from gateway.stages.inbound import info_dropped


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    reset_logging()
    structlog.contextvars.clear_contextvars()


@pytest.mark.parametrize(("level", "written"), [("DEBUG", True), ("INFO", True), ("WARNING", False)])
def test_info_is_dropped_exactly_when_the_configured_level_drops_it(
    out: io.StringIO, level: str, written: bool
) -> None:
    """``info_dropped()`` says True exactly when an info event of the gateway's logger is not written
    at the configured level (the event itself is the reference)."""
    configure_logging(json=True, level=level, stream=out)
    get_logger("x12gw").info("core exchange", partner="acme")
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines() if line.startswith("{")]
    assert (events == ["core exchange"]) is written
    assert info_dropped() is not written


def test_captured_logs_keep_info_events_whatever_the_level(out: io.StringIO) -> None:
    """Under ``capture_logs`` (tests) every event is kept, so nothing is skipped even at WARNING."""
    configure_logging(json=True, level="WARNING", stream=out)
    with capture_logs() as logs:
        assert info_dropped() is False
        get_logger("x12gw").info("core exchange")
    assert [e["event"] for e in logs] == ["core exchange"]
