"""nsw_objective: the potential Σ w log x."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mbcas.market import nsw_objective


def test_value() -> None:
    value = nsw_objective([1.0, math.e, math.e**2], [3.0, 2.0, 0.5])
    assert value == pytest.approx(3.0 * 0.0 + 2.0 * 1.0 + 0.5 * 2.0, rel=1e-15)


def test_zero_allocation_is_minus_infinity() -> None:
    assert nsw_objective([1.0, 0.0], [1.0, 1.0]) == -math.inf


def test_empty_is_zero() -> None:
    assert nsw_objective([], []) == 0.0


def test_unit_change_adds_a_constant() -> None:
    x = np.array([0.25, 1.5, 3.0])
    w = np.array([1.0, 2.0, 4.0])
    shift = nsw_objective(x * 1000, w) - nsw_objective(x, w)
    assert shift == pytest.approx(float(w.sum()) * math.log(1000), rel=1e-12)
