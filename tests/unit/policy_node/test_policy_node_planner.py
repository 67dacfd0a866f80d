"""The market planner as a whole: its invariants (with hypothesis), its behaviour in small
closed loops, and the reasons it gives.

The loops model the kernel as the real one reads: a pod wanting ``d`` under a limit ``l`` uses
``min(d, l)`` and, when ``d > l``, is throttled in every period with a throttled time of
``⌈d⌉ − l`` (its runnable threads, not the CPU withheld); decisions are applied at once.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbcas.core.qos import QoSClass
from mbcas.demand import Signals
from mbcas.policy.node import Cause, NodeInputs, NodePlan, NodePlanner
from mbcas.policy.node_config import NodePolicy

ALLOCATABLE = 4.0


def _inputs(
    demand: np.ndarray, limit: np.ndarray, request: np.ndarray, qos: np.ndarray | None = None
) -> NodeInputs:
    n = demand.size
    throttled = demand > limit + 1e-9
    threads = np.maximum(np.ceil(demand - 1e-9), 1.0)
    return NodeInputs.build(
        tuple(f"p{i}" for i in range(n)),
        np.full(n, QoSClass.BURSTABLE.code, dtype=np.int8) if qos is None else qos,
        request=request,
        limit=limit,
        signals=Signals.build(
            np.minimum(demand, limit),
            throttled_ratio=throttled.astype(float),
            throttled_cores=np.where(throttled, np.maximum(threads - limit, 0.0), 0.0),
            psi_full=np.where(throttled, np.clip(1.0 - limit / threads, 0.0, 1.0), 0.0),
        ),
    )


def _loop(
    planner: NodePlanner, demands: np.ndarray, request: np.ndarray, limit: np.ndarray | None = None
) -> list[NodePlan]:
    """Run ``demands`` (ticks × pods) at 1 s ticks, each decision in force from the next tick."""
    lim = request.copy() if limit is None else limit.copy()
    plans = []
    for t, d in enumerate(demands):
        plan = planner.plan(float(t), ALLOCATABLE, 0.0, _inputs(d, lim, request))
        plans.append(plan)
        lim = np.where(plan.allocation_mcpu > 0, plan.allocation_mcpu / 1000.0, lim)
    return plans


pods = st.integers(min_value=1, max_value=8)


@st.composite
def nodes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    n = draw(pods)
    request = np.array(draw(st.lists(st.sampled_from([0.1, 0.25, 0.5, 1.0]), min_size=n, max_size=n)))
    limit = request * np.array(draw(st.lists(st.sampled_from([1.0, 1.5, 3.0]), min_size=n, max_size=n)))
    demand = np.array(draw(st.lists(st.floats(0.0, 3.5), min_size=n, max_size=n)))
    overcommit = draw(st.sampled_from([1.0, 1.5, 2.0]))
    return request, np.minimum(limit, ALLOCATABLE), demand, overcommit


@settings(max_examples=60, deadline=None)
@given(node=nodes(), seed=st.integers(0, 2**16))
def test_decisions_keep_the_overcommit_bound_floors_and_caps(
    node: tuple[np.ndarray, np.ndarray, np.ndarray, float], seed: int
) -> None:
    request, limit, demand, overcommit = node
    rng = np.random.default_rng(seed)
    demands = np.clip(demand * rng.lognormal(0.0, 0.4, (40, demand.size)), 0.0, 3.5)
    cfg = NodePolicy(limit_overcommit=overcommit)
    for plan in _loop(NodePlanner(cfg), demands, request, limit):
        alloc = plan.allocation_mcpu / 1000.0
        assert plan.limit_bound == pytest.approx(overcommit * ALLOCATABLE)
        if not plan.infeasible:
            assert alloc.sum() <= plan.limit_bound + 1e-6, "Σ limits above the overcommit bound"
        assert (plan.allocation_mcpu >= np.round(request * 1000)).all(), "a limit below its request"
        assert (alloc <= ALLOCATABLE + 1e-9).all(), "a limit above the node's allocatable CPU"


@settings(max_examples=150, deadline=None)
@given(node=nodes(), i=st.integers(0, 7), more=st.floats(0.01, 3.0))
def test_more_demand_never_yields_a_smaller_limit(
    node: tuple[np.ndarray, np.ndarray, np.ndarray, float], i: int, more: float
) -> None:
    request, limit, demand, overcommit = node
    i %= demand.size
    higher = demand.copy()
    higher[i] += more
    cfg = NodePolicy(limit_overcommit=overcommit)
    a = NodePlanner(cfg).plan(0.0, ALLOCATABLE, 0.0, _inputs(demand, limit, request))
    b = NodePlanner(cfg).plan(0.0, ALLOCATABLE, 0.0, _inputs(higher, limit, request))
    assert b.allocation_mcpu[i] >= a.allocation_mcpu[i]
    assert b.target[i] >= a.target[i] - 1e-9


def test_overcommit_1_is_the_strict_rule_and_a_live_change_applies_on_the_next_tick() -> None:
    # Three pods wanting 2 cores each on 4 cores, requests 0.5: with the default 2.0 their
    # limits add up to more than the node; set to 1.0 (as a ConfigMap change does), the next
    # tick brings Σ limits within the node, trimmed by request weight.
    planner = NodePlanner()
    request = np.array([0.5, 0.5, 1.0])
    plans = _loop(planner, np.full((20, 3), 2.0), request)
    assert plans[-1].limits_total > ALLOCATABLE
    planner.policy = NodePolicy(limit_overcommit=1.0)
    lim = plans[-1].allocation_mcpu / 1000.0
    plan = planner.plan(20.0, ALLOCATABLE, 0.0, _inputs(np.full(3, 2.0), lim, request))
    assert plan.limits_total <= ALLOCATABLE + 1e-9
    assert plan.limit_bound == pytest.approx(ALLOCATABLE) and plan.limits_total <= plan.limit_bound + 1e-9
    assert all(plan.allocation_mcpu >= np.round(request * 1000))


def test_unmanaged_pods_are_left_alone_and_counted_against_the_shareable_cpu() -> None:
    # A Guaranteed pod of 1 core and a BestEffort pod: not managed; shareable = 4 - 1 = 3.
    qos = np.array(
        [QoSClass.GUARANTEED.code, QoSClass.BEST_EFFORT.code, QoSClass.BURSTABLE.code], dtype=np.int8
    )
    inputs = _inputs(
        np.array([1.0, 0.5, 0.3]), np.array([1.0, np.nan, 0.5]), np.array([1.0, np.nan, 0.25]), qos
    )
    plan = NodePlanner().plan(0.0, ALLOCATABLE, 0.0, inputs)
    assert list(plan.allocation_mcpu[:2]) == [-1, -1] and plan.managed.tolist() == [False, False, True]
    assert plan.capacity == pytest.approx(3.0) and plan.limit_bound == pytest.approx(6.0)
    assert plan.reason(0).startswith("not managed: Guaranteed")
    assert plan.reason(1).startswith("not managed: BestEffort")


def test_a_pod_without_a_limit_counts_at_the_node_until_it_has_one() -> None:
    plan = NodePlanner().plan(
        0.0, ALLOCATABLE, 0.0, _inputs(np.array([0.2, 0.2]), np.array([np.nan, 0.5]), np.array([0.25, 0.25]))
    )
    assert plan.allocation_mcpu[0] == 4000 and plan.limits_total == pytest.approx(4.5)


def test_a_step_spike_is_covered_within_two_ticks() -> None:
    # 0.2 -> 1.5 cores at t = 60 on a quiet node: the limit covers 1.5 from t = 62 at the latest.
    demand = np.full((120, 2), 0.2)
    demand[60:, 0] = 1.5
    plans = _loop(NodePlanner(), demand, np.array([0.5, 0.5]))
    covered = [t for t in range(60, 120) if plans[t - 1].allocation_mcpu[0] >= 1500]
    assert covered and covered[0] <= 62


def test_a_bursty_pod_keeps_its_limit_between_bursts() -> None:
    # A 10 s burst to 1.2 cores every 2 minutes over a 0.1 base, 30 minutes: after the first
    # bursts the envelope covers the next ones, so the limit changes a few times, not per burst.
    t = np.arange(1800)
    demand = np.where((t % 120) < 10, 1.2, 0.1)[:, None]
    plans = _loop(NodePlanner(), demand, np.array([0.25]))
    changes = sum(int(p.changed[0]) for p in plans)
    loss = sum(max(0.0, demand[k, 0] - plans[k - 1].allocation_mcpu[0] / 1000) for k in range(1, 1800))
    assert changes <= 3, f"{changes} changes for 15 bursts"
    assert loss < 0.02 * demand.sum()


def test_steady_noisy_pods_stay_calm() -> None:
    rng = np.random.default_rng(3)
    demand = np.array([0.3, 0.6, 0.45]) * rng.lognormal(0.0, 0.1, (3600, 3))
    plans = _loop(NodePlanner(), demand, np.array([0.25, 0.5, 0.5]))
    changes = np.sum([p.changed for p in plans], axis=0)
    assert changes.max() <= 3, changes


def test_reasons_say_why_in_the_users_words() -> None:
    planner = NodePlanner()
    request = np.array([0.25, 0.25])
    demand = np.array([[1.2, 0.1]] * 2)
    plans = _loop(planner, demand, request)
    probe = plans[0].reason(0)
    assert plans[0].cause[0] == Cause.PROBE and probe.startswith("throttled in 100% of periods at 0.25 cores")
    assert "burst envelope" in plans[1].reason(1) and "over the last 20 min" in plans[1].reason(1)
    # A throttled pod that is not raised says why, never just "kept": on a 1-core node held
    # in full (strict bound), its share of the bound is what it has.
    fresh = NodePlanner(NodePolicy(limit_overcommit=1.0))
    plan = fresh.plan(0.0, 1.0, 0.0, _inputs(np.array([1.2, 0.1]), np.array([0.75, 0.25]), request))
    assert plan.allocation_mcpu[0] == 750
    assert plan.reason(0) == (
        "throttled in 100% of periods at 0.75 cores: trimmed by request weight: "
        "node limits at the 1× bound (1.00 cores)"
    )
    assert math.isfinite(plan.objective)


def test_trimmed_pods_say_so_with_the_bound() -> None:
    # Budget 2 x 1 core; three pods under pressure wanting 4x their 0.5-core limits.
    planner = NodePlanner(NodePolicy(reclaim_after_s=0.0))
    inputs = _inputs(np.full(3, 2.0), np.full(3, 0.6), np.full(3, 0.25))
    plan = planner.plan(0.0, 1.0, 0.0, inputs)
    assert plan.limits_total <= 2.0 + 1e-9
    assert any("node limits at the 2× bound" in plan.reason(i) for i in range(3))


def test_pods_without_a_signal_hold_their_limits_and_the_message_says_so() -> None:
    # A pod still without a signal (first read) holds its 4-core limit (no limit: the node);
    # the bound 2 x 4 = 8 leaves the two sampled pods 4 cores < their 4.5 of requests.
    request = np.array([2.0, 2.5, 0.5])
    inputs = _inputs(np.array([1.0, 1.0, 0.0]), np.array([2.0, 2.5, 4.0]), request)
    sig = inputs.signals
    usage = sig.usage.copy()
    usage[2] = np.nan
    inputs = NodeInputs.build(
        inputs.uids, inputs.qos, request=request, limit=inputs.limit, signals=Signals.build(usage)
    )
    plan = NodePlanner().plan(0.0, ALLOCATABLE, 0.0, inputs)
    assert plan.infeasible and plan.held == pytest.approx(4.0)
    assert plan.allocation_mcpu.tolist() == [2000, 2500, 4000]
    assert plan.infeasible_message == (
        "requests of the managed pods with a signal (4.50 cores) exceed what the bound (8.00 cores) "
        "leaves beside the 4.00 cores held by pods without one"
    )
