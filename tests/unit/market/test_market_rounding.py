"""to_mcpu: whole millicores, never over capacity, never below the floor, within 1m."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from market_strategies import Problem, problems

from mbcas.market import solve_nsw, to_mcpu

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_decimal_cores_land_on_their_millicores() -> None:
    r = to_mcpu([0.3, 0.7, 0.1, 2.675], 10_000)
    assert r.dtype == np.int64
    np.testing.assert_array_equal(r, [300, 700, 100, 2675])


def test_thirds_keep_the_total_at_capacity() -> None:
    np.testing.assert_array_equal(to_mcpu([1 / 3, 1 / 3, 1 / 3], 1000), [334, 333, 333])


def test_largest_remainder_gets_the_leftover() -> None:
    np.testing.assert_array_equal(to_mcpu([0.1004, 0.1007, 0.7989], 1000), [100, 101, 799])


def test_tight_capacity_stops_the_round_up() -> None:
    # Exact total is 1000.9 (rounds to 1001) but only 1000 fit: the largest remainder gets it.
    np.testing.assert_array_equal(to_mcpu([0.5004, 0.5005], 1000), [500, 500])
    np.testing.assert_array_equal(to_mcpu([0.5004, 0.5005], 1001), [500, 501])


def test_empty_and_zero() -> None:
    assert to_mcpu([], 0).shape == (0,)
    np.testing.assert_array_equal(to_mcpu([0.0, 0.0], 0), [0, 0])


def test_float_and_numpy_integer_capacity() -> None:
    np.testing.assert_array_equal(to_mcpu([0.25], 1000.0), [250])  # type: ignore[arg-type]
    np.testing.assert_array_equal(to_mcpu([0.25], np.int64(1000)), [250])


def check_rounding(cores: np.ndarray, cap: int) -> np.ndarray:
    r = to_mcpu(cores, cap)
    exact = cores * 1000
    assert r.dtype == np.int64
    assert int(r.sum()) <= cap
    assert np.all(r >= np.floor(exact))
    assert np.all(np.abs(r - exact) < 1 + 1e-9)
    return r


@PROPS
@given(
    st.lists(st.floats(0.0, 64.0), max_size=60),
    st.integers(0, 5000),
)
def test_arbitrary_allocations_within_capacity(cores: list[float], slack: int) -> None:
    c = np.array(cores, dtype=float)
    cap = int(np.floor(c.sum() * 1000)) + slack
    r = check_rounding(c, cap)
    # The total matches the exact total to the nearest millicore when the capacity allows it.
    if slack >= 1:
        assert abs(int(r.sum()) - float(c.sum()) * 1000) <= 0.5 + 1e-6


@PROPS
@given(problems(min_n=1), st.integers(1, 64_000))
def test_solver_output_in_cores_fits_the_node(p: Problem, cap_mcpu: int) -> None:
    # Scale the problem to a node of cap_mcpu and solve in cores, as the agent does.
    total = max(float(p.upper.sum()), 1e-12)
    k = cap_mcpu / 1000 / total * 0.9
    cap_cores = cap_mcpu / 1000
    lower = p.lower * k
    x = solve_nsw(cap_cores, p.weights, lower, p.upper * k * 3)
    r = check_rounding(x, cap_mcpu)
    if abs(float(x.sum()) - cap_cores) <= 1e-9 * cap_cores:
        assert int(r.sum()) == cap_mcpu
