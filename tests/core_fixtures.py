"""The ``rig`` fixture for CAQH CORE tests; load with ``pytest_plugins = ["tests.core_fixtures"]``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from payersim.certs import make_pki
from tests.core_support import PASSWORD, PASSWORD_ENV, CoreRig
from tests.test_precert import KEY


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CoreRig]:
    """Certificates (made once per test), simulators started on demand, contexts closed at the end."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    rig = CoreRig(tmp_path, make_pki(tmp_path / "pki"), [], [])
    yield rig
    for server in rig.servers:
        server.stop()
    for ctx in rig.contexts:
        ctx.store.close()
