"""solve_nsw: worked examples, edge cases and the optimality properties of the NSW program."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from market_strategies import Problem, assert_kkt, problems

from mbcas.market import InfeasibleError, nsw_objective, solve_nsw
from mbcas.market import solver as solver_module
from mbcas.market.solver import FEASIBILITY_RTOL

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def solve(p: Problem) -> np.ndarray:
    return solve_nsw(p.capacity, p.weights, p.lower, p.upper)


class TestWorkedExamples:
    def test_equal_weights_no_bounds_split_evenly(self) -> None:
        x = solve_nsw(6.0, [1, 1, 1], [0, 0, 0], [10, 10, 10])
        np.testing.assert_allclose(x, [2.0, 2.0, 2.0], rtol=1e-15)

    def test_capped_pod_releases_its_share_to_the_others_by_weight(self) -> None:
        # Pod 0 can use only 1; the remaining 9 go 1:2 to the others.
        x = solve_nsw(10.0, [1, 1, 2], [0, 0, 0], [1, 100, 100])
        np.testing.assert_allclose(x, [1.0, 3.0, 6.0], rtol=1e-14)

    def test_floor_above_fair_share_is_honoured(self) -> None:
        # Fair share of pod 0 would be 2, but its floor is 5; the others split the remaining 1:1.
        x = solve_nsw(8.0, [1, 1, 2], [5, 0, 0], [8, 8, 8])
        np.testing.assert_allclose(x, [5.0, 1.0, 2.0], rtol=1e-14)

    def test_result_is_float64_and_inputs_untouched(self) -> None:
        w = np.array([1.0, 3.0])
        lo = np.array([0.0, 0.0])
        up = np.array([5.0, 5.0])
        before = (w.copy(), lo.copy(), up.copy())
        x = solve_nsw(4, w, lo, up)
        assert x.dtype == np.float64
        np.testing.assert_allclose(x, [1.0, 3.0])
        for a, b in zip((w, lo, up), before, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_accepts_lists_tuples_and_ints(self) -> None:
        x = solve_nsw(3, (1, 2), [0, 0], np.array([3, 3], dtype=np.int32))
        np.testing.assert_allclose(x, [1.0, 2.0])


class TestEdgeCases:
    def test_empty_problem_gives_empty_array(self) -> None:
        x = solve_nsw(5.0, [], [], [])
        assert x.shape == (0,) and x.dtype == np.float64

    def test_capacity_above_total_upper_returns_a_copy_of_upper(self) -> None:
        up = np.array([1.0, 2.0, 0.0])
        x = solve_nsw(100.0, [1, 1, 1], [0, 0, 0], up)
        np.testing.assert_array_equal(x, up)
        x[0] = 42.0
        assert up[0] == 1.0

    def test_capacity_equal_to_total_lower_returns_lower(self) -> None:
        lo = np.array([0.5, 1.5, 0.0])
        x = solve_nsw(2.0, [1, 2, 3], lo, [3, 3, 3])
        np.testing.assert_array_equal(x, lo)

    def test_zero_capacity_with_zero_floors_gives_zeros(self) -> None:
        np.testing.assert_array_equal(solve_nsw(0.0, [1, 2], [0, 0], [1, 1]), [0.0, 0.0])

    def test_floors_over_capacity_by_rounding_noise_return_the_floors(self) -> None:
        lo = np.array([0.1, 0.2, 0.3])
        cap = float(lo.sum()) * (1 - FEASIBILITY_RTOL / 10)
        np.testing.assert_array_equal(solve_nsw(cap, [1, 1, 1], lo, [1, 1, 1]), lo)

    def test_floors_over_capacity_raise_infeasible(self) -> None:
        with pytest.raises(InfeasibleError) as info:
            solve_nsw(1.0, [1, 1], [0.6, 0.6], [1, 1])
        assert isinstance(info.value, ValueError)
        assert info.value.capacity == 1.0
        assert info.value.total_lower == pytest.approx(1.2)
        assert "1.2" in str(info.value) and "capacity 1.0" in str(info.value)

    def test_pods_with_zero_upper_get_zero_and_do_not_disturb_the_rest(self) -> None:
        x = solve_nsw(6.0, [1, 5, 1, 1], [0, 0, 0, 0], [10, 0, 10, 10])
        np.testing.assert_allclose(x, [2.0, 0.0, 2.0, 2.0], rtol=1e-14)
        assert nsw_objective(x, [1, 5, 1, 1]) == -np.inf

    def test_zero_floors_still_give_every_capable_pod_a_positive_share(self) -> None:
        w = np.array([1e-6, 1.0, 1e6])
        x = solve_nsw(1.0, w, [0, 0, 0], [1, 1, 1])
        assert np.all(x > 0)
        assert np.isfinite(nsw_objective(x, w))

    def test_pinned_pods_keep_their_value(self) -> None:
        x = solve_nsw(10.0, [1, 100, 1], [1, 2, 0], [1, 2, 100])
        np.testing.assert_allclose(x, [1.0, 2.0, 7.0], rtol=1e-14)

    def test_many_identical_breakpoints(self) -> None:
        n = 1000
        x = solve_nsw(n * 0.75, np.ones(n), np.full(n, 0.5), np.ones(n))
        np.testing.assert_allclose(x, 0.75, rtol=1e-14)

    def test_weights_spanning_24_orders_of_magnitude(self) -> None:
        rng = np.random.default_rng(7)
        n = 500
        p = Problem(
            capacity=60.0,
            weights=10.0 ** rng.uniform(-12, 12, n),
            lower=rng.uniform(0, 0.05, n),
            upper=rng.uniform(0.1, 1.0, n),
        )
        assert_kkt(p, solve(p))

    def test_huge_n_is_exact(self) -> None:
        rng = np.random.default_rng(11)
        n = 200_000
        up = rng.uniform(0.1, 4.0, n)
        p = Problem(0.4 * float(up.sum()), rng.uniform(0.1, 8.0, n), np.minimum(up, rng.uniform(0, 1, n)), up)
        assert_kkt(p, solve(p))

    def test_capacity_exactly_at_an_interior_breakpoint(self) -> None:
        # At λ = 1 pod 0 reaches its cap and pod 1 leaves its floor at the same time.
        x = solve_nsw(3.0, [1, 1, 1], [0, 1, 0], [1, 2, 5])
        np.testing.assert_allclose(x, [1.0, 1.0, 1.0], rtol=1e-14)


class TestRobustFallback:
    """The bisection path must give the same answer as the fast path when it has to take over."""

    @PROPS
    @given(problems(min_n=1))
    def test_bisection_matches_fast_path(self, p: Problem) -> None:
        assume(float(p.lower.sum()) < p.capacity < float(p.upper.sum()))
        fast = solve(p)
        original = solver_module._level_on_segment
        try:
            solver_module._level_on_segment = lambda *a, **k: None  # type: ignore[assignment]
            slow = solve(p)
        finally:
            solver_module._level_on_segment = original
        assert_kkt(p, slow)
        np.testing.assert_allclose(slow, fast, rtol=1e-9, atol=1e-9 * p.capacity)


class TestOptimality:
    @PROPS
    @given(problems())
    def test_kkt_feasibility_and_sum(self, p: Problem) -> None:
        assert_kkt(p, solve(p))

    @PROPS
    @given(problems(min_n=1), st.data())
    def test_no_feasible_point_has_a_higher_potential(self, p: Problem, data: st.DataObject) -> None:
        assume(float(p.lower.sum()) < p.capacity and np.all(p.upper > 0))
        x = solve(p)
        # A random feasible point: floors plus a random share of the slack, kept under capacity.
        theta = np.array(data.draw(st.lists(st.floats(0, 1), min_size=p.n, max_size=p.n)))
        y = p.lower + theta * (p.upper - p.lower)
        over = float(y.sum()) - p.capacity
        if over > 0:
            y = p.lower + (y - p.lower) * ((p.capacity - float(p.lower.sum())) / float((y - p.lower).sum()))
        y = np.clip(y, p.lower, p.upper)
        fx, fy = nsw_objective(x, p.weights), nsw_objective(y, p.weights)
        assert fx >= fy - 1e-9 * max(1.0, abs(fx))


class TestInvariances:
    @PROPS
    @given(problems(), st.floats(1e-3, 1e3))
    def test_scaling_capacity_and_bounds_scales_the_allocation(self, p: Problem, k: float) -> None:
        x = solve(p)
        xk = solve_nsw(p.capacity * k, p.weights, p.lower * k, p.upper * k)
        np.testing.assert_allclose(xk, x * k, rtol=1e-9, atol=1e-9 * k * max(p.capacity, 1e-300))

    @PROPS
    @given(problems(), st.floats(1e-6, 1e6))
    def test_scaling_weights_changes_nothing(self, p: Problem, k: float) -> None:
        x = solve(p)
        xk = solve_nsw(p.capacity, p.weights * k, p.lower, p.upper)
        np.testing.assert_allclose(xk, x, rtol=1e-9, atol=1e-9 * max(p.capacity, 1e-300))

    @PROPS
    @given(problems(min_n=1), st.data())
    def test_permutation_equivariance(self, p: Problem, data: st.DataObject) -> None:
        perm = np.array(data.draw(st.permutations(range(p.n))))
        x = solve(p)
        xp = solve_nsw(p.capacity, p.weights[perm], p.lower[perm], p.upper[perm])
        np.testing.assert_allclose(xp, x[perm], rtol=1e-9, atol=1e-9 * max(p.capacity, 1e-300))

    @PROPS
    @given(problems(min_n=1), st.integers(2, 20))
    def test_equal_pods_get_equal_shares(self, p: Problem, copies: int) -> None:
        # Duplicate pod 0 several times (squeezing capacity stays feasible by adding its floor).
        w = np.concatenate((np.repeat(p.weights[:1], copies), p.weights[1:]))
        lo = np.concatenate((np.repeat(p.lower[:1], copies), p.lower[1:]))
        up = np.concatenate((np.repeat(p.upper[:1], copies), p.upper[1:]))
        cap = p.capacity + (copies - 1) * float(p.lower[0])
        x = solve_nsw(cap, w, lo, up)
        np.testing.assert_allclose(x[:copies], x[0], rtol=1e-12, atol=1e-12 * max(cap, 1e-300))

    @PROPS
    @given(problems(min_n=1), st.data(), st.floats(1.0, 1e3))
    def test_raising_a_weight_never_lowers_that_share(
        self, p: Problem, data: st.DataObject, k: float
    ) -> None:
        j = data.draw(st.integers(0, p.n - 1))
        x = solve(p)
        w2 = p.weights.copy()
        w2[j] *= k
        x2 = solve_nsw(p.capacity, w2, p.lower, p.upper)
        assert x2[j] >= x[j] - 1e-9 * max(p.capacity, 1e-300)
        # ... and nobody else gains from it.
        others = np.arange(p.n) != j
        assert np.all(x2[others] <= x[others] + 1e-9 * max(p.capacity, 1e-300))

    @PROPS
    @given(problems(), st.floats(0.0, 5.0))
    def test_more_capacity_never_lowers_anyone(self, p: Problem, extra: float) -> None:
        x = solve(p)
        x2 = solve_nsw(p.capacity + extra, p.weights, p.lower, p.upper)
        assert np.all(x2 >= x - 1e-9 * max(p.capacity + extra, 1e-300))
