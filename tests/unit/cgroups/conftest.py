"""Fixtures for the cgroup unit tests: a fake cgroupfs per layout and a hand-driven clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_cgroupfs import FakeCgroupFS, FakeClock

from mbcas.cgroups import LayoutKind


@pytest.fixture(params=[LayoutKind.V2, LayoutKind.HYBRID, LayoutKind.V1], ids=str)
def fakefs(request: pytest.FixtureRequest, tmp_path: Path) -> FakeCgroupFS:
    """A fake cgroupfs for each layout (v2 with the cpu controller, hybrid, v1 split mounts)."""
    return FakeCgroupFS(tmp_path / "cgroup", request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
