"""Fixtures for the plug emulator tests: every simulator is stopped after its test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from otelpower.sim import Simulator, builtin_profiles

PROFILES = {p.stem: p for p in builtin_profiles()}
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "python-kasa"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator
