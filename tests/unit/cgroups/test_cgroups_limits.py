"""Limit comparison within systemd's rounding and across periods, so limits never flap."""

from __future__ import annotations

import math

import pytest

from mbcas.cgroups import limits_equal, parse_cpu_max, quota_for_cores


def test_systemd_rounded_quota_is_the_same_limit() -> None:
    written = quota_for_cores(0.417)
    read_back = parse_cpu_max(b"42000 100000\n").cores
    assert written == 41700
    assert limits_equal(written / 100_000, read_back)


def test_non_default_period_is_compared_in_cores() -> None:
    a = parse_cpu_max(b"25000 50000\n").cores
    b = parse_cpu_max(b"50000 100000\n").cores
    assert limits_equal(a, b)


def test_real_changes_are_not_equal() -> None:
    assert not limits_equal(0.4, 0.42)
    assert not limits_equal(1.0, None)
    assert not limits_equal(None, 2.0)
    assert limits_equal(None, None)
    assert limits_equal(math.inf, math.inf)
    assert not limits_equal(math.inf, 4.0)


def test_tolerance_is_configurable() -> None:
    assert limits_equal(1.0, 1.04, tolerance_cores=0.05)
    assert not limits_equal(1.0, 1.04)


def test_quota_for_cores() -> None:
    assert quota_for_cores(None) is None
    assert quota_for_cores(math.inf) is None
    assert quota_for_cores(0.0001) == 1000  # the kernel minimum
    assert quota_for_cores(1.5, 50_000) == 75_000
    with pytest.raises(ValueError, match="positive"):
        quota_for_cores(-1)
    with pytest.raises(ValueError, match="period"):
        quota_for_cores(1.0, 0)
