"""The named loggers' level check made before structlog (``logsetup.LevelChecked``): the same lines
as structlog's own lazy logger, at every level, for a disabled logger and under ``capture_logs``."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.runtime.logsetup import LevelChecked, configure_logging, get_logger, reset_logging

METHODS = ("debug", "info", "warning", "error", "critical")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    for line in lines:
        line.pop("timestamp", None)
    return lines


def _emit(logger: object, name: str) -> None:
    for method in METHODS:
        getattr(logger, method)(f"{method} line", detail=7)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("exception line")  # type: ignore[attr-defined]
    logger.bind(extra=1).warning("bound line")  # type: ignore[attr-defined]
    logging.getLogger(name).debug("stdlib line")


@pytest.mark.parametrize("level", LEVELS)
def test_same_lines_as_structlogs_own_logger(level: str) -> None:
    """At each configured level, a named logger writes exactly the lines structlog's lazy logger of
    the same name writes (the reference), dropping the same ones."""
    outputs = []
    for make in (get_logger, structlog.stdlib.get_logger):
        out = io.StringIO()
        configure_logging(json=True, level=level, stream=out)
        try:
            _emit(make("test.levelcheck"), "test.levelcheck")
        finally:
            reset_logging()
        outputs.append(_lines(out))
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == {"DEBUG": 8, "INFO": 6, "WARNING": 5, "ERROR": 3, "CRITICAL": 1}[level]


def test_disabled_stdlib_logger_drops_every_event() -> None:
    """A disabled stdlib logger of that name drops everything, as ``filter_by_level`` does."""
    out = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=out)
    std = logging.getLogger("test.levelcheck.off")
    std.disabled = True
    try:
        assert get_logger("test.levelcheck.off").critical("dropped") is None
    finally:
        std.disabled = False
        reset_logging()
    assert out.getvalue() == ""


def test_capture_logs_still_sees_events_below_the_level() -> None:
    """Under ``capture_logs`` (no ``filter_by_level`` in the chain) events below the stdlib level
    still reach structlog, as they did before the check."""
    out = io.StringIO()
    configure_logging(json=True, level="WARNING", stream=out)
    try:
        logger = get_logger("test.levelcheck.capture")
        assert isinstance(logger, LevelChecked)
        with capture_logs() as captured:
            logger.info("kept by capture", n=1)
        logger.info("dropped by level")
    finally:
        reset_logging()
    assert [(c["event"], c["log_level"]) for c in captured] == [("kept by capture", "info")]
    assert out.getvalue() == ""
