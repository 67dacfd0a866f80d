"""Metrics on a tiny trace whose every value is computed by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers_sim import ScriptedPolicy, ctx_for

from mbcas.sim.engine import run_policy
from mbcas.sim.metrics import add_gap_closure, compute_metrics, gap_closure, jain_index, reaction_times
from mbcas.sim.traces import SpikeEvent

# Two pods, requests [1, 1], one node of C = 2 cores, 4 ticks of 1 s.
DEMAND = np.array([[1.0, 0.5], [1.0, 0.5], [2.0, 0.5], [2.0, 0.5]])
LIMITS = [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [2.0, 1.0]]
# Node model per tick:
#   t0, t1: caps min(d, l) = [1, 0.5], Σ 1.5 <= 2 -> usage [1, 0.5], nothing withheld.
#   t2:     caps [1, 0.5] -> usage [1, 0.5]; pod 0 wants 2 with limit 1: throttled 1 core.
#   t3:     caps [2, 0.5], Σ 2.5 > 2; weighted max-min: pod 1 (0.5) satisfied, pod 0 gets 1.5.
#           d0 = l0 = 2, so no throttling: 0.5 core of contention stall.
SPIKE = [(0, SpikeEvent(at_s=2.0, level=2.0, duration_s=2.0, base_level=1.0))]


@pytest.fixture
def metrics() -> dict[str, object]:
    ctx = ctx_for([1.0, 1.0], [2.0])
    trace = run_policy(ctx, ScriptedPolicy(LIMITS), DEMAND)
    np.testing.assert_allclose(trace.usage, [[1, 0.5], [1, 0.5], [1, 0.5], [1.5, 0.5]])
    return compute_metrics(trace, spikes=SPIKE, warmup_s=0.0)


def test_utilization_is_usage_over_capacity(metrics: dict[str, object]) -> None:
    # Σ usage = 1.5 + 1.5 + 1.5 + 2.0 = 6.5 over 4 ticks × 2 cores = 8 -> 0.8125.
    assert metrics["utilization"] == pytest.approx(0.8125)


def test_throttled_and_stall_shares(metrics: dict[str, object]) -> None:
    # Σ demand = 1.5 + 1.5 + 2.5 + 2.5 = 8. Withheld by the quota: 1 (t2) -> 1/8.
    # Unserved for any reason: 1 (t2) + 0.5 (t3) = 1.5 -> 1.5/8 = 0.1875.
    assert metrics["throttled_share"] == pytest.approx(0.125)
    assert metrics["stall_share"] == pytest.approx(0.1875)


def test_resize_and_write_rates(metrics: dict[str, object]) -> None:
    # One limit change (pod 0, 1 -> 2 at t3) over 2 pods × 4 s.
    # Per pod-hour: 1 / (2 × 4/3600) = 450. Per pod-minute (no warm-up): 1 / (2 × 4/60) = 7.5.
    assert metrics["resizes_per_pod_hour"] == pytest.approx(450.0)
    assert metrics["api_writes_per_pod_minute"] == pytest.approx(7.5)


def test_reaction_time(metrics: dict[str, object]) -> None:
    # Spike at t = 2 s to 2 cores: 90 % is 1.8. Limit 1 at t2, 2 at t3 -> 1 s.
    assert metrics["reaction_time_s"] == pytest.approx(1.0)
    assert metrics["reaction_missed"] == 0


def test_jain_of_usage_over_fair_share(metrics: dict[str, object]) -> None:
    # Fair shares (weights 1:1, capped at demand): t0, t1 = demand (x = [1, 1], J = 1);
    # t2: demand [2, 0.5] over C = 2 -> f = [1.5, 0.5]; usage [1, 0.5] -> x = [2/3, 1]:
    #     J = (5/3)² / (2 · (4/9 + 1)) = (25/9) / (26/9) = 25/26.
    # t3: usage [1.5, 0.5] = f -> J = 1. Mean = (3 + 25/26) / 4.
    assert metrics["jain"] == pytest.approx((3 + 25 / 26) / 4)


def test_nsw_is_mean_request_weighted_log_usage(metrics: dict[str, object]) -> None:
    # ŵ = [0.5, 0.5]. t0..t2: 0.5·log 1 + 0.5·log 0.5; t3: 0.5·log 1.5 + 0.5·log 0.5.
    per_tick = [0.5 * math.log(0.5)] * 3 + [0.5 * math.log(1.5) + 0.5 * math.log(0.5)]
    assert metrics["nsw"] == pytest.approx(sum(per_tick) / 4)


def test_allocation_ratio(metrics: dict[str, object]) -> None:
    # Σ limits = 2 + 2 + 2 + 3 = 9 over 8 core-ticks.
    assert metrics["allocation_ratio"] == pytest.approx(9 / 8)


def test_peak_allocation_ratio_is_the_fullest_node_tick(metrics: dict[str, object]) -> None:
    # Σ limits per tick: 2, 2, 2, 3 on the one node of 2 cores -> 3/2.
    assert metrics["peak_allocation_ratio"] == pytest.approx(1.5)


def test_peak_allocation_ratio_is_per_node() -> None:
    # Two nodes of 1 and 4 cores; limits [1.5 | 2.0] then [0.5 | 4.0]: node ratios 1.5, 0.5 then
    # 0.5, 1.0 -> peak 1.5 (the fuller small node), though the cluster is never above 3.5/5.
    ctx = ctx_for([0.5, 0.5], [1.0, 4.0], node=[0, 1])
    trace = run_policy(ctx, ScriptedPolicy([[1.5, 2.0], [0.5, 4.0]]), np.full((2, 2), 0.1))
    assert compute_metrics(trace)["peak_allocation_ratio"] == pytest.approx(1.5)


def test_gap_closure_by_hand() -> None:
    # static 0.5, ideal 0.1: a policy at 0.2 closed (0.5 - 0.2)/(0.5 - 0.1) = 0.75 of the gap;
    # one worse than static is negative; no gap to close (0.11 - 0.1 < 0.02) is undefined.
    assert gap_closure(0.2, 0.5, 0.1) == pytest.approx(0.75)
    assert gap_closure(0.6, 0.5, 0.1) == pytest.approx(-0.25)
    assert gap_closure(0.1, 0.11, 0.1) is None
    metrics = {"static": {"stall_share": 0.5}, "mbcas": {"stall_share": 0.1}, "x": {"stall_share": 0.3}}
    add_gap_closure(metrics, 0.1)
    assert [metrics[k]["gap_closure"] for k in ("static", "mbcas", "x")] == pytest.approx([0.0, 1.0, 0.5])


def test_cgroup_writes_are_not_api_writes() -> None:
    # The same one limit change, made by a policy that writes the cgroup itself: a resize, no write.
    ctx = ctx_for([1.0, 1.0], [2.0])
    policy = ScriptedPolicy(LIMITS)
    policy.resizes_are_api_writes = False
    m = compute_metrics(run_policy(ctx, policy, DEMAND))
    assert m["resizes_per_pod_hour"] == pytest.approx(450.0)
    assert m["api_writes_per_pod_minute"] == 0.0


def test_warmup_excludes_early_writes() -> None:
    # Same trace, warm-up 3 s: the one change (t3) is inside the last tick: 1 / (2 × 1/60) = 30.
    ctx = ctx_for([1.0, 1.0], [2.0])
    trace = run_policy(ctx, ScriptedPolicy(LIMITS), DEMAND)
    assert compute_metrics(trace, warmup_s=3.0)["api_writes_per_pod_minute"] == pytest.approx(30.0)
    # And a change inside the warm-up does not count: warm-up 4 s leaves no steady time -> 0.
    assert compute_metrics(trace, warmup_s=4.0)["api_writes_per_pod_minute"] == 0.0


def test_never_covered_spike_is_null_and_counted_missed() -> None:
    # Limits stay at 1 during a spike to 2 (90 % = 1.8): never covered.
    ctx = ctx_for([1.0, 1.0], [2.0])
    trace = run_policy(ctx, ScriptedPolicy([[1.0, 1.0]] * 4), DEMAND)
    assert reaction_times(trace, SPIKE) == [math.inf]
    m = compute_metrics(trace, spikes=SPIKE)
    assert m["reaction_time_s"] is None
    assert m["reaction_missed"] == 1
    assert m["reaction_times_s"] == [None]


def test_no_spikes_means_reaction_undefined() -> None:
    ctx = ctx_for([1.0, 1.0], [2.0])
    m = compute_metrics(run_policy(ctx, ScriptedPolicy(LIMITS), DEMAND))
    assert m["reaction_time_s"] is None
    assert m["reaction_times_s"] == []


def test_jain_index_extremes() -> None:
    # Equal values -> 1; one of two has everything -> 1/2.
    assert jain_index(np.array([0.7, 0.7, 0.7])) == pytest.approx(1.0)
    assert jain_index(np.array([1.0, 0.0])) == pytest.approx(0.5)


def test_engine_applies_decisions_one_tick_later_and_hides_demand() -> None:
    ctx = ctx_for([1.0, 1.0], [2.0])
    policy = ScriptedPolicy(LIMITS)
    trace = run_policy(ctx, policy, DEMAND)
    np.testing.assert_allclose(trace.limit, LIMITS)
    # The policy saw the limit in force and the signals, one observation per tick.
    assert [o.tick for o in policy.seen] == [0, 1, 2, 3]
    # Pod 0 at t2: d = 2 on 2 threads under l = 1 -> the kernel reads p - l = 1 core throttled.
    np.testing.assert_allclose(policy.seen[2].signals.throttled_cores, [1.0, 0.0])
    assert not hasattr(policy.seen[0], "demand")


def test_engine_rejects_bad_limits() -> None:
    ctx = ctx_for([1.0, 1.0], [2.0])
    with pytest.raises(ValueError, match="scripted"):
        run_policy(ctx, ScriptedPolicy([[1.0, float("nan")]] * 4), DEMAND)
