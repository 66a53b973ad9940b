"""``serve``'s interpreter switch interval (``gateway.runtime.switching``): 1 ms unless
``$X12GW_SWITCH_INTERVAL`` names another positive number or asks for CPython's own."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from gateway.runtime import switching


@pytest.fixture(autouse=True)
def _kept_interval() -> Iterator[None]:
    was = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(was)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [(None, 0.001), ("0.002", 0.002), ("default", 0.005), ("0", 0.005), ("-1", 0.005), ("soon", 0.005)],
)
def test_the_interval_serve_sets(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, expected: float
) -> None:
    """No setting: 1 ms; a positive number: that; ``default``/``0``/anything else: left as it was."""
    if setting is None:
        monkeypatch.delenv(switching.ENV, raising=False)
    else:
        monkeypatch.setenv(switching.ENV, setting)
    assert switching.apply() == pytest.approx(expected)
    assert sys.getswitchinterval() == pytest.approx(expected)
