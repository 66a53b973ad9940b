"""Shared fixtures: paths to the public sample corpus and the project's own sample files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EDI = ROOT / "sample_edi"
PUBLIC = ROOT / "tests" / "public_x12"

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
