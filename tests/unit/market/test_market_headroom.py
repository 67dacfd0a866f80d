"""share_headroom: spare capacity goes out so that totals follow the weights, up to hard maxima."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from market_strategies import Problem, assert_kkt, problems

from mbcas.market import nsw_objective, share_headroom, solve_nsw

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_idle_pod_is_topped_up_first() -> None:
    # Demand met: pod 0 holds 3, pod 1 (idle) 0.5; 2.5 spare. Totals ∝ w: both end at 3.
    y = share_headroom(6.0, [3.0, 0.5], [1.0, 1.0], [8.0, 8.0])
    np.testing.assert_allclose(y, [3.0, 3.0], rtol=1e-14)


def test_totals_follow_weights_when_spare_is_large() -> None:
    y = share_headroom(12.0, [1.0, 1.0, 1.0], [1.0, 2.0, 3.0], [100.0, 100.0, 100.0])
    np.testing.assert_allclose(y, [2.0, 4.0, 6.0], rtol=1e-14)


def test_hard_max_caps_the_headroom_and_the_rest_stays_idle() -> None:
    y = share_headroom(100.0, [1.0, 1.0], [1.0, 1.0], [2.0, 5.0])
    np.testing.assert_array_equal(y, [2.0, 5.0])


def test_nothing_spare_returns_the_allocation() -> None:
    alloc = np.array([1.5, 2.5])
    np.testing.assert_array_equal(share_headroom(4.0, alloc, [1.0, 2.0], [9.0, 9.0]), alloc)


def test_empty() -> None:
    assert share_headroom(4.0, [], [], []).shape == (0,)


@PROPS
@given(problems(min_n=1), st.lists(st.floats(1.0, 4.0), min_size=40, max_size=40))
def test_after_a_solve_headroom_is_bounded_complete_and_optimal(p: Problem, factors: list[float]) -> None:
    alloc = solve_nsw(p.capacity, p.weights, p.lower, p.upper)
    hard_max = p.upper * np.array(factors[: p.n]) + 0.5
    capacity = p.capacity + float(np.sum(factors[: p.n]))  # leave something spare
    y = share_headroom(capacity, alloc, p.weights, hard_max)
    assert np.all(y >= alloc) and np.all(y <= hard_max)
    target = min(capacity, float(hard_max.sum()))
    assert abs(float(y.sum()) - target) <= 1e-9 * target
    # It is the NSW optimum of the totals with alloc as the floor ...
    assert_kkt(Problem(capacity, p.weights, alloc, hard_max), y)
    # ... so the exported potential can only rise.
    assert nsw_objective(y, p.weights) >= nsw_objective(alloc, p.weights)
