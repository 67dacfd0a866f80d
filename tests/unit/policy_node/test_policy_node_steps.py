"""The four steps of the market plan, each on hand-checked numbers."""

from __future__ import annotations

import numpy as np
import pytest

from mbcas.demand.bounds import demand_bounds
from mbcas.demand.envelope import Envelope
from mbcas.policy.bound import bound
from mbcas.policy.gate import Move, PodState, gate
from mbcas.policy.node_config import NodePolicy
from mbcas.policy.resize import Deadband
from mbcas.policy.want import wants

A = np.array
DB = Deadband()


class TestEstimate:
    def test_throttled_time_is_an_upper_bound_not_the_demand(self) -> None:
        # The real-kernel reading of a thread wanting 0.25 under a 0.2 quota: usage 0.2,
        # throttled 0.8 s/s, every period throttled -> demand in [0.2, 1.0], under pressure.
        b = demand_bounds(A([0.2]), A([1.0]), A([0.8]), A([0.8]))
        assert (b.lower[0], b.upper[0], bool(b.pressured[0])) == pytest.approx((0.2, 1.0, True))

    def test_a_pod_throttled_in_a_few_periods_is_not_under_pressure_and_wants_its_usage(self) -> None:
        # Measured on this kernel: a 0.25-core burner (100 ms duty cycle) under a 0.4 quota,
        # throttled in 9 % of the periods its bursts straddle, 0.089 s/s throttled. It got its
        # demand on average: the bound is its usage, not usage + throttled time (0.34).
        b = demand_bounds(A([0.252, 0.5]), A([0.0909, 0.2]), A([0.0889, 0.08]), A([0.005, 0.08]))
        assert not b.pressured.any()
        np.testing.assert_allclose(b.upper, [0.252, 0.5])

    def test_throttled_time_without_throttled_periods_is_accounting_lag(self) -> None:
        # Measured on this kernel right after a quota was raised: ratio 0, throttled 0.08 s/s
        # (the previous period's, added at unthrottle): the upper bound is the usage.
        b = demand_bounds(A([0.26]), A([0.0]), A([0.08]), A([0.01]))
        assert b.upper[0] == pytest.approx(0.26) and not b.pressured[0]

    def test_psi_full_bounds_the_demand_when_throttled_time_is_unknown(self) -> None:
        # u / (1 - full) = 0.2 / 0.2 = 1.0; unknown usage gives NaN bounds and no pressure.
        b = demand_bounds(A([0.2, np.nan]), A([1.0, 1.0]), None, A([0.8, 0.5]))
        assert b.upper[0] == pytest.approx(1.0)
        assert np.isnan(b.lower[1]) and np.isnan(b.upper[1]) and not b.pressured[1]


class TestEnvelope:
    def test_window_max_in_slices_forgets_a_peak_after_the_window(self) -> None:
        env = Envelope(window_s=100.0, buckets=10)  # 10 s slices
        assert env.update(("a",), [0.2], now=0.0)[0] == pytest.approx(0.2)
        assert env.update(("a",), [1.5], now=5.0)[0] == pytest.approx(1.5)
        assert env.update(("a",), [0.3], now=60.0)[0] == pytest.approx(1.5)
        # The 1.5 was in slice [0, 10): it leaves when slice [100, 110) starts.
        assert env.update(("a",), [0.3], now=99.0)[0] == pytest.approx(1.5)
        assert env.update(("a",), [0.3], now=100.0)[0] == pytest.approx(0.3)

    def test_nan_keeps_and_unknown_pods_are_forgotten(self) -> None:
        env = Envelope(window_s=60.0, buckets=6)
        env.update(("a", "b"), [0.4, 0.9], now=0.0)
        out = env.update(("a", "b"), [np.nan, 0.1], now=1.0)
        np.testing.assert_allclose(out, [0.4, 0.9])
        out = env.update(("b", "c"), [0.1, np.nan], now=2.0)
        assert out[0] == pytest.approx(0.9) and np.isnan(out[1])
        assert np.isnan(env.update(("a",), [np.nan], now=3.0)[0])  # "a" starts fresh


class TestWant:
    CFG = NodePolicy(headroom_ratio=0.1, probe_min_ratio=1.5, probe_max_ratio=4.0)

    def test_envelope_plus_headroom_within_request_and_allocatable(self) -> None:
        b = demand_bounds(A([0.1, 0.5, 3.9]), A([0.0, 0.0, 0.0]), A([0.0, 0.0, 0.0]))
        w = wants(
            A([0.1, 1.0, 3.9]),
            b,
            A([0.5, 1.0, 4.0]),
            floor=A([0.25, 0.5, 0.5]),
            ceiling=A([4.0] * 3),
            cfg=self.CFG,
        )
        # 0.11 -> its request 0.25; 1.0 -> 1.1; 4.29 -> the node's 4.0. Needs: usage + 10 %.
        np.testing.assert_allclose(w.want, [0.25, 1.1, 4.0])
        np.testing.assert_allclose(w.need, [0.25, 0.55, 4.0])
        assert not w.probe.any()

    def test_a_pod_under_pressure_probes_within_1_5_to_4_times_its_limit(self) -> None:
        # upper bounds + 10 %: 1.1 (at limit 0.2: capped at 0.8), 0.605 (at 0.5: raised to 0.75),
        # 2.2 (at 1.0).
        b = demand_bounds(A([0.2, 0.5, 1.0]), A([1.0] * 3), A([0.8, 0.05, 1.0]))
        w = wants(
            A([0.2, 0.5, 1.0]), b, A([0.2, 0.5, 1.0]), floor=A([0.1] * 3), ceiling=A([4.0] * 3), cfg=self.CFG
        )
        np.testing.assert_allclose(w.want, [0.8, 0.75, 2.2])
        np.testing.assert_allclose(w.need, w.want)
        assert w.probe.all()


class TestBound:
    def test_wants_that_fit_are_kept(self) -> None:
        out = bound(A([1.0, 2.0]), A([0.5, 0.5]), A([0.5, 0.5]), A([0.5, 0.5]), 4.0)
        np.testing.assert_allclose(out.limits, [1.0, 2.0])
        assert not out.trimmed.any() and out.feasible

    def test_needs_first_then_memory_by_request_weight(self) -> None:
        # budget 4; pod 0 needs its probe 3.0 now, pods 1 and 2 need 0.5 but remember 3.0 each.
        # First solve: needs fit (4.0) -> [3.0, 0.5, 0.5]; nothing left for the memories.
        out = bound(A([3.0, 3.0, 3.0]), A([3.0, 0.5, 0.5]), A([1.0, 1.0, 1.0]), A([0.5] * 3), 4.0)
        np.testing.assert_allclose(out.limits, [3.0, 0.5, 0.5])
        np.testing.assert_allclose(out.needs, [3.0, 0.5, 0.5])
        assert list(out.trimmed) == [False, True, True]

    def test_protected_share_keeps_part_of_the_fair_share(self) -> None:
        # Fair shares of 6 cores by requests 1:2 are 2 and 4; protected 0.5 of that: 1 and 2.
        # Pod 1 needs 0.5 but keeps 2 (its want 5 is larger); pod 0's probe gets the rest, 4.
        out = bound(A([5.0, 5.0]), A([5.0, 0.5]), A([1.0, 2.0]), A([0.1, 0.1]), 6.0, protected_share=0.5)
        np.testing.assert_allclose(out.needs, [4.0, 2.0])
        np.testing.assert_allclose(out.limits, [4.0, 2.0])
        assert out.limits.sum() == pytest.approx(6.0)

    def test_floors_beyond_the_budget_keep_the_floors(self) -> None:
        out = bound(A([1.0, 1.0]), A([0.8, 0.8]), A([0.8, 0.8]), A([0.8, 0.8]), 1.0)
        np.testing.assert_allclose(out.limits, [0.8, 0.8])
        assert not out.feasible


def _pods(n: int, **kw: np.ndarray) -> PodState:
    base = {
        "current": np.full(n, 1.0),
        "in_force": np.full(n, 1.0),
        "pressured": np.zeros(n, dtype=bool),
        "pressed_for_s": np.zeros(n),
        "since_change_s": np.full(n, 5000.0),
        "since_resize_s": np.full(n, 1000.0),
    }
    base.update(kw)
    return PodState(**base)


class TestGate:
    CFG = NodePolicy()

    def test_pressure_raises_at_once_when_the_budget_has_room(self) -> None:
        pods = _pods(2, pressured=A([True, False]))
        out = gate(pods, A([2.5, 1.0]), A([2.5, 1.0]), A([2.5, 0.5]), budget=8.0, cfg=self.CFG, deadband=DB)
        np.testing.assert_allclose(out.limits, [2.5, 1.0])
        assert list(out.move) == [Move.PROBE, Move.KEEP]

    def test_a_raise_that_needs_cuts_waits_for_lasting_pressure_then_cuts_the_idlest(self) -> None:
        # Budget 4 fully held; pod 0 under pressure wants 2.0; pods 1, 2 hold 1.5 each (changed
        # 100 s ago: not yet lowered for their own sake), need 0.5 and 0.8, target 1.0 each.
        # Fresh pressure (1 s < 3 s): nothing moves.
        pods = _pods(
            3,
            current=A([1.0, 1.5, 1.5]),
            in_force=A([1.0, 1.5, 1.5]),
            pressured=A([True, False, False]),
            since_change_s=A([5000.0, 100.0, 100.0]),
        )
        args = (A([2.0, 1.0, 1.0]), A([2.0, 3.0, 3.0]), A([2.0, 0.5, 0.8]))
        fresh = gate(
            pods._replace(pressed_for_s=A([1.0, 0, 0])), *args, budget=4.0, cfg=self.CFG, deadband=DB
        )
        np.testing.assert_allclose(fresh.limits, [1.0, 1.5, 1.5])
        # After 3 s: pod 1 has the most room above its need (1.0 vs 0.7): its target 1.0 frees
        # only 0.5 of the 1.0 needed, so it goes down to its need 0.5; pod 2 is left alone.
        lasting = gate(
            pods._replace(pressed_for_s=A([3.0, 0, 0])), *args, budget=4.0, cfg=self.CFG, deadband=DB
        )
        np.testing.assert_allclose(lasting.limits, [2.0, 0.5, 1.5])
        assert list(lasting.move) == [Move.PROBE, Move.RECLAIM, Move.KEEP]

    def test_a_cut_that_cannot_land_yet_frees_no_room(self) -> None:
        # Same, but pod 1 was resized 4 s ago (the controller waits 10 s): the only cut that
        # lands is pod 2's, all its room above its need (0.7 of the 1.0 needed); the raise gets
        # the 0.7 that is really free, 1.7, and the rest once more CPU is free.
        pods = _pods(
            3,
            current=A([1.0, 1.5, 1.5]),
            in_force=A([1.0, 1.5, 1.5]),
            pressured=A([True, False, False]),
            pressed_for_s=A([3.0, 0, 0]),
            since_change_s=A([5000.0, 100.0, 100.0]),
            since_resize_s=A([1000.0, 4.0, 1000.0]),
        )
        out = gate(
            pods,
            A([2.0, 1.0, 1.0]),
            A([2.0, 3.0, 3.0]),
            A([2.0, 0.5, 0.8]),
            budget=4.0,
            cfg=self.CFG,
            deadband=DB,
        )
        np.testing.assert_allclose(out.limits, [1.7, 1.5, 0.8])
        assert list(out.move) == [Move.PROBE, Move.KEEP, Move.RECLAIM]

    def test_down_only_well_above_the_target_and_after_the_hold(self) -> None:
        args = (A([0.7, 0.9]), A([0.7, 0.9]), A([0.3, 0.3]))
        held = gate(_pods(2, since_change_s=A([100.0, 100.0])), *args, budget=8.0, cfg=self.CFG, deadband=DB)
        np.testing.assert_allclose(held.limits, [1.0, 1.0])
        late = gate(_pods(2), *args, budget=8.0, cfg=self.CFG, deadband=DB)
        # 0.7 * 1.25 < 1.0: lowered; 0.9 * 1.25 > 1.0: within the band, kept.
        np.testing.assert_allclose(late.limits, [0.7, 1.0])
        assert list(late.move) == [Move.LOWER, Move.KEEP]

    def test_soft_raise_needs_the_band_the_hold_and_an_untrimmed_want(self) -> None:
        pods = _pods(3, since_change_s=A([5000.0, 5000.0, 10.0]))
        # want 1.3 > 1.25: raised; 1.2: within the band; 1.3 but changed 10 s ago: waits.
        out = gate(
            pods, A([1.3, 1.2, 1.3]), A([1.3, 1.2, 1.3]), A([0.5] * 3), budget=8.0, cfg=self.CFG, deadband=DB
        )
        np.testing.assert_allclose(out.limits, [1.3, 1.0, 1.0])
        trimmed = gate(_pods(1), A([1.3]), A([2.0]), A([0.5]), budget=8.0, cfg=self.CFG, deadband=DB)
        np.testing.assert_allclose(trimmed.limits, [1.0])
