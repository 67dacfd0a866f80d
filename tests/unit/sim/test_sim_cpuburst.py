"""The CPU Burst-like baseline and the unlimited reference, on traces checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_sim import ctx_for

from mbcas.sim.engine import run_policy
from mbcas.sim.metrics import compute_metrics
from mbcas.sim.policies import CpuBurstPolicy, UnlimitedPolicy


def test_quota_grows_by_1_2_while_throttled_on_an_idle_node_and_stops_when_covered() -> None:
    # request 0.5 (base quota 50000 µs), demand 1.0 on a 4-core node (usage <= 1/4: idle).
    # Throttled at 0.5 -> 60000 -> 72000 -> 86400 -> 103680 µs; at 1.0368 cores the one thread
    # (p = 1) can never exceed the quota: not throttled, so the quota remains (no decay while idle).
    ctx = ctx_for([0.5], [4.0])
    trace = run_policy(ctx, CpuBurstPolicy(), np.full((7, 1), 1.0))
    np.testing.assert_allclose(trace.limit[:, 0], [0.5, 0.6, 0.72, 0.864, 1.0368, 1.0368, 1.0368])


def test_quota_stops_at_300_percent_of_the_base() -> None:
    # demand 2.0: ... 124416 -> 149299 -> min(179159, 150000) = 150000 µs, and stays.
    ctx = ctx_for([0.5], [4.0])
    trace = run_policy(ctx, CpuBurstPolicy(), np.full((9, 1), 2.0))
    np.testing.assert_allclose(trace.limit[:, 0], [0.5, 0.6, 0.72, 0.864, 1.0368, 1.24416, 1.49299, 1.5, 1.5])


def test_node_state_from_the_5_s_mean_share_pool_usage() -> None:
    # Pod a (request 0.5) wants 2.0 throughout; pod b (request 3.0, quota 3.0) wants 3.0 from t3.
    # t0-t2: node usage 0.5, 0.6, 0.72 of 4 cores -> idle -> a grows to 0.864.
    # t3: usage 0.864 + 3 = 3.864; 5 s mean (0.5+0.6+0.72+3.864)/4/4 = 0.355 < 0.45 -> up: 1.0368.
    # t4: caps 1.0368 + 3 > 4: CFS gives b its 3.0 and a 1.0 (out-competed, 4 of 6 periods under
    #     the quota) -> still throttled; mean (0.5+0.6+0.72+3.864+4)/5/4 = 0.484 in [0.45, 0.5):
    #     cooling -> the scale-up becomes "remain".
    # t5: mean (0.6+0.72+3.864+4+4)/5/4 = 0.659 >= 0.5: overload -> down: 103680·0.8 = 82944 µs.
    ctx = ctx_for([0.5, 3.0], [4.0])
    demand = np.array([[2.0, 0.0]] * 3 + [[2.0, 3.0]] * 4)
    policy = CpuBurstPolicy()
    trace = run_policy(ctx, policy, demand)
    np.testing.assert_allclose(trace.usage[4], [1.0, 3.0])
    np.testing.assert_allclose(trace.limit[:, 0], [0.5, 0.6, 0.72, 0.864, 1.0368, 1.0368, 0.82944])
    # b's quota never leaves its base: it is never throttled, and down-steps stop at the base.
    np.testing.assert_allclose(trace.limit[:, 1], 3.0)


def test_quota_changes_are_resizes_but_not_api_writes() -> None:
    ctx = ctx_for([0.5], [4.0])
    m = compute_metrics(run_policy(ctx, CpuBurstPolicy(), np.full((60, 1), 1.0)))
    assert m["resizes_per_pod_hour"] == pytest.approx(4 / (60 / 3600))
    assert m["api_writes_per_pod_minute"] == 0.0


def test_unlimited_sets_every_limit_to_the_node_capacity() -> None:
    ctx = ctx_for([0.5, 0.25, 1.0], [4.0, 2.0], node=[0, 0, 1])
    trace = run_policy(ctx, UnlimitedPolicy(), np.tile([3.0, 3.0, 1.5], (5, 1)))
    np.testing.assert_allclose(trace.limit, [[4.0, 4.0, 2.0]] * 5)
    # Only CFS weights share node 0 (0.5 : 0.25 of 4 cores); nothing is withheld by a quota.
    np.testing.assert_allclose(trace.usage[0], [8 / 3, 4 / 3, 1.5])
    assert compute_metrics(trace)["throttled_share"] == 0.0
