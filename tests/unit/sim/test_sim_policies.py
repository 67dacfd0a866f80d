"""The baselines and MBCAS behave as their documented rules say, on small hand-made traces."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_sim import ctx_for

from mbcas.core.qos import QoSClass
from mbcas.demand import Signals
from mbcas.policy.node import NodeInputs, NodePlanner
from mbcas.policy.resize import ResizeRules
from mbcas.sim.engine import run_policy
from mbcas.sim.metrics import compute_metrics
from mbcas.sim.policies import HpaPolicy, MbcasPolicy, RegretMatchingPolicy, StaticPolicy, VpaPolicy
from mbcas.sim.policies.mbcas import ControllerGate, IntArray, PassThroughGate
from mbcas.sim.traces import SpikeEvent


def test_static_limits_never_change() -> None:
    ctx = ctx_for([0.5, 0.25], [4.0])
    trace = run_policy(ctx, StaticPolicy(2.0, "static2x"), np.full((30, 2), 0.8))
    np.testing.assert_allclose(trace.limit, np.tile([1.0, 0.5], (30, 1)))
    assert not trace.resizes.any()


def test_hpa_scales_at_sync_and_capacity_arrives_after_startup() -> None:
    # One service, request 1, per-replica limit 1, demand 2 on an 8-core node.
    # Usage 1 per replica -> utilisation 1.0 / target 0.8 = 1.25 -> at the 15 s sync it asks for
    # ceil(1 × 1.25) = 2 replicas; the new one is ready 30 s later, at 45 s.
    ctx = ctx_for([1.0], [8.0])
    trace = run_policy(ctx, HpaPolicy(), np.full((120, 1), 2.0))
    assert trace.limit[44, 0] == pytest.approx(1.0)
    assert trace.limit[45, 0] == pytest.approx(2.0)
    assert trace.weight[45, 0] == pytest.approx(2.0)  # two replicas, two cpu.weights


def test_hpa_keeps_replicas_through_the_stabilisation_window() -> None:
    # Demand 2 for 120 s, then 0.1. While the new replicas start, the 60 s metric window still
    # shows 100 % per replica, so the HPA overshoots to 4 (syncs at 15, 60, 90 s; ready at 45, 75,
    # 105 s). After the drop, scale-down waits until the high recommendations (the last at 105 s)
    # leave the 300 s window, and then steps down on later syncs: still 4 at 400 s, 1 by 500 s.
    demand = np.concatenate([np.full((120, 1), 2.0), np.full((480, 1), 0.1)])
    trace = run_policy(ctx_for([1.0], [8.0]), HpaPolicy(), demand)
    assert trace.limit[:120, 0].max() == pytest.approx(4.0)
    assert trace.limit[400, 0] == pytest.approx(4.0)
    assert trace.limit[500, 0] == pytest.approx(1.0)


def test_hpa_respects_node_room() -> None:
    # Request 1 on a 1.5-core node: a second replica does not fit the node's requests.
    trace = run_policy(ctx_for([1.0], [1.5]), HpaPolicy(), np.full((120, 1), 3.0))
    assert trace.limit.max() == pytest.approx(1.0)


def test_vpa_sets_p90_plus_margin_each_minute() -> None:
    # Usage is 0.4 every tick (demand 0.4 under limit 1): at the 60 s update the target is
    # 0.4 × 1.15 = 0.46, in force from tick 61.
    trace = run_policy(ctx_for([1.0], [4.0]), VpaPolicy(), np.full((90, 1), 0.4))
    assert trace.limit[60, 0] == pytest.approx(1.0)
    assert trace.limit[61, 0] == pytest.approx(0.46)


def test_vpa_grows_at_most_15_percent_a_minute_when_throttled() -> None:
    # Demand 2 with limit 1: usage is capped at the limit, P90 = limit, so each update is ×1.15.
    trace = run_policy(ctx_for([1.0], [8.0]), VpaPolicy(), np.full((190, 1), 2.0))
    assert trace.limit[61, 0] == pytest.approx(1.15)
    assert trace.limit[181, 0] == pytest.approx(1.15**3)


def test_vpa_respects_the_minimum() -> None:
    trace = run_policy(ctx_for([0.1], [4.0]), VpaPolicy(), np.full((70, 1), 0.001))
    assert trace.limit[61, 0] == pytest.approx(0.025)


def test_regret_matching_finds_the_demand_level_when_uncongested() -> None:
    # Request 0.5, demand 1.0, plenty of room: u(a) = min(1, a) - 0.05·a is maximal at a = 1.0
    # (the 2× level), so regret matching settles there.
    trace = run_policy(ctx_for([0.5], [8.0]), RegretMatchingPolicy(), np.full((600, 1), 1.0))
    levels = 0.5 * np.array([0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0])
    assert np.isin(np.round(trace.limit[:, 0], 9), np.round(levels, 9)).all()
    assert np.mean(np.isclose(trace.limit[-200:, 0], 1.0)) > 0.9


def test_regret_matching_is_deterministic_per_seed() -> None:
    demand = np.abs(np.random.default_rng(3).normal(0.6, 0.3, (300, 3)))
    a = run_policy(ctx_for([0.5, 0.5, 0.5], [1.5]), RegretMatchingPolicy(), demand)
    b = run_policy(ctx_for([0.5, 0.5, 0.5], [1.5]), RegretMatchingPolicy(), demand)
    np.testing.assert_array_equal(a.limit, b.limit)


def test_mbcas_is_the_production_planner() -> None:
    # With a pass-through gate the limits are exactly what a NodePlanner fed the same signals
    # decides, one tick later.
    ctx = ctx_for([0.5, 0.25], [2.0])
    demand = np.column_stack([np.r_[np.full(20, 0.3), np.full(40, 1.2)], np.full(60, 0.2)])
    trace = run_policy(ctx, MbcasPolicy(gate=PassThroughGate()), demand)
    planner = NodePlanner()
    alloc = np.array([500, 250])
    for k in range(59):
        inputs = NodeInputs.build(
            ctx.pod_names,
            np.full(2, QoSClass.BURSTABLE.code, dtype=np.int8),
            request=ctx.requests,
            limit=trace.limit[k],
            signals=Signals.build(
                trace.usage[k],
                throttled_ratio=trace.throttled_ratio[k],
                throttled_cores=trace.throttled_cores[k],
                psi_some=trace.psi_some[k],
                psi_full=trace.psi_full[k],
            ),
        )
        plan = planner.plan(float(k), 2.0, 0.0, inputs)
        alloc = np.where(plan.changed, plan.allocation_mcpu, alloc)
        np.testing.assert_allclose(trace.limit[k + 1], alloc / 1000.0)


def test_mbcas_reacts_to_a_spike_within_two_ticks() -> None:
    # Requests [0.5, 1], 2.5 cores; pod 1 steady at 1.0. Before the spike pod 0 holds its
    # request (0.5), so a jump to 1.2 needs a real decision: throttling shows at tick 60, the
    # planner probes at once (its 2 threads' bound + 10 %, at most 4x its limit: 2.0) and the
    # controller applies it from tick 61.
    ctx = ctx_for([0.5, 1.0], [2.5])
    demand = np.column_stack([np.r_[np.full(60, 0.2), np.full(60, 1.2)], np.full(120, 1.0)])
    trace = run_policy(ctx, MbcasPolicy(), demand)
    assert trace.limit[59, 0] < 0.9 * 1.2
    spike = [(0, SpikeEvent(at_s=60.0, level=1.2, duration_s=60.0, base_level=0.2))]
    reaction = compute_metrics(trace, spikes=spike)["reaction_time_s"]
    assert reaction is not None and reaction <= 2.0


def test_mbcas_counts_podallocation_writes() -> None:
    ctx = ctx_for([0.5, 1.0], [2.5])
    demand = np.column_stack([np.r_[np.full(60, 0.2), np.full(60, 1.2)], np.full(120, 1.0)])
    trace = run_policy(ctx, MbcasPolicy(), demand)
    assert trace.extra_writes.sum() > 0
    assert trace.resizes.sum() > 0


def test_mbcas_does_not_rewrite_applied_decisions() -> None:
    # One pod with constant demand: once its decision is applied (limit == decision) nothing
    # changes, and the agent no longer rewrites an unchanged, applied PodAllocation.
    ctx = ctx_for([0.5], [1.0])
    trace = run_policy(ctx, MbcasPolicy(), np.full((400, 1), 0.3))
    assert trace.extra_writes[:100].sum() > 0  # the first decisions were written
    assert trace.resizes[100:].sum() == 0
    assert trace.extra_writes[100:].sum() == 0


class _NeverGate:
    """A controller that never resizes (e.g. every resize deferred by the kubelet)."""

    def apply(self, now: float, uids: tuple[str, ...], desired: IntArray, current: IntArray) -> IntArray:
        return current.copy()


def test_mbcas_rewrites_unapplied_decisions_every_refresh_period() -> None:
    # A pod throttled at its 0.5 request is raised, the limit never reaches the decision, so the
    # agent rewrites the unchanged decision once per refresh_s = 60 s (and no more often).
    ctx = ctx_for([0.5], [2.0])
    trace = run_policy(ctx, MbcasPolicy(gate=_NeverGate()), np.full((400, 1), 0.8))
    assert not trace.resizes.any()
    writes = np.flatnonzero(trace.extra_writes[100:]) + 100
    assert len(writes) >= 4
    np.testing.assert_array_equal(np.diff(writes), 60)


def test_the_controller_model_resizes_cuts_before_raises_when_the_global_rate_stops_it() -> None:
    # Two raises and two cuts pending with a burst of two resizes: the cuts go first, so the
    # limits in force never add up to more than before (the node's overcommit bound holds).
    gate = ControllerGate(ResizeRules(burst=2, max_resizes_per_second=0.01))
    current = np.array([200, 800, 200, 800], dtype=np.int64)
    desired = np.array([600, 300, 600, 300], dtype=np.int64)
    out = gate.apply(0.0, ("a", "b", "c", "d"), desired, current)
    np.testing.assert_array_equal(out, [200, 300, 200, 300])
    assert out.sum() < current.sum()
