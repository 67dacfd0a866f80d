"""The node model: CFS-like weighted sharing and the kernel-like signals, on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest

from mbcas.demand import Signals
from mbcas.sim.node import cfs_share, parallelism, simulate_tick


def test_cfs_share_without_contention_gives_every_cap() -> None:
    caps = np.array([0.5, 1.0, 0.25])
    np.testing.assert_allclose(cfs_share(2.0, np.ones(3), caps), caps)


def test_cfs_share_contention_is_weighted_max_min() -> None:
    # C = 3, w = [1, 1, 2], caps = [0.5, 2, 2]; Σ caps = 4.5 > 3.
    # Pod 0 (cap/w = 0.5) is below the level 3/4 -> satisfied at 0.5.
    # The rest share 2.5 by weight 1:2 -> λ = 2.5/3: pod 1 gets 0.8333, pod 2 gets 1.6667 (< cap 2).
    got = cfs_share(3.0, np.array([1.0, 1.0, 2.0]), np.array([0.5, 2.0, 2.0]))
    np.testing.assert_allclose(got, [0.5, 2.5 / 3, 5.0 / 3])
    assert got.sum() == pytest.approx(3.0)


def test_cfs_share_matches_the_market_solver_with_zero_floors() -> None:
    # Independent implementations must agree: weighted max-min = NSW with floors 0.
    from mbcas.market import solve_nsw

    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        w = rng.uniform(0.1, 2.0, n)
        caps = rng.uniform(0.0, 2.0, n)
        cap = float(rng.uniform(0.1, caps.sum() + 0.5))
        np.testing.assert_allclose(cfs_share(cap, w, caps), solve_nsw(cap, w, np.zeros(n), caps), atol=1e-9)


def _one(demand: list[float], limit: list[float], capacity: float = 4.0, **kw: object) -> Signals:
    n = len(demand)
    return simulate_tick(
        np.array(demand), np.array(limit), np.ones(n), np.zeros(n, dtype=np.intp), np.array([capacity]), **kw
    )


def test_throttled_time_is_wall_time_of_the_runqueues_not_cpu_withheld() -> None:
    # The real-kernel measurement: one thread wanting 0.25 core under a 0.2 quota uses 0.2, and
    # its runqueue is throttled for the rest of every period: throttled 0.8 s/s, PSI full 0.8,
    # so usage + throttled = 1.0 (the thread count), not the 0.25 it wants.
    s = _one([0.25, 0.2], [0.2, 0.5])
    np.testing.assert_allclose(s.usage, [0.2, 0.2])
    np.testing.assert_allclose(s.throttled_ratio, [1.0, 0.0])
    np.testing.assert_allclose(s.throttled_cores, [0.8, 0.0])
    np.testing.assert_allclose(s.psi_full, [0.8, 0.0])
    np.testing.assert_allclose(s.psi_some, s.psi_full)


def test_several_threads_throttle_on_several_runqueues() -> None:
    # d = 1.5 runs on p = 2 threads; under a 1.0 quota both wait half of every period:
    # throttled = p - l = 1.0 core, full = 1 - l/p = 0.5. With 4 threads set by the scenario,
    # a 0.3-core pod under a 0.2 quota reads throttled 3.8 and full 0.95.
    s = _one([1.5, 0.3], [1.0, 0.2], threads=np.array([0.0, 4.0]))
    np.testing.assert_allclose(s.usage, [1.0, 0.2])
    np.testing.assert_allclose(s.throttled_cores, [1.0, 3.8])
    np.testing.assert_allclose(s.psi_full, [0.5, 0.95])
    np.testing.assert_allclose(parallelism(np.array([1.5, 0.3, 0.0]), np.array([0.0, 4.0, 0.0])), [2, 4, 1])


def test_a_pod_near_its_quota_is_throttled_in_some_periods() -> None:
    # d = 0.5 under l = 0.6 (p = 1): its usage is its demand, but the per-period factors of
    # cv 0.3 are [0.594 0.710 0.790 0.860 0.928 0.999 1.078 1.174 1.305 1.561]; 0.5·X > 0.6 in
    # the last two periods: ratio 0.2, throttled 0.2·(1 - 0.6) = 0.08, full 0.2·(1 - 0.6/1) = 0.08.
    s = _one([0.5], [0.6])
    np.testing.assert_allclose(s.usage, [0.5])
    np.testing.assert_allclose(s.throttled_ratio, [0.2])
    np.testing.assert_allclose(s.throttled_cores, [0.08])
    np.testing.assert_allclose(s.psi_full, [0.08])
    # A burner's duty cycle is exact (cv 0): never throttled below its quota.
    s0 = _one([0.5], [0.6], subtick_cv=0.0)
    np.testing.assert_allclose([s0.throttled_ratio[0], s0.throttled_cores[0]], [0.0, 0.0])


def test_a_pod_cannot_be_throttled_by_a_quota_above_its_threads() -> None:
    # One thread (d = 0.9) under a 1.0 quota: no period can use more than 1 core.
    s = _one([0.9], [1.0])
    np.testing.assert_allclose([s.throttled_ratio[0], s.throttled_cores[0], s.psi_full[0]], [0, 0, 0])


def test_contention_below_the_quota_stalls_without_throttling() -> None:
    # d = [2, 2], l = [3, 3], w = [1, 1], C = 2: each gets 1; the quota is never exhausted.
    # Each pod's 2 threads are runnable all tick and run half of it: full = some = 1 - 1/2.
    s = _one([2.0, 2.0], [3.0, 3.0], capacity=2.0)
    np.testing.assert_allclose(s.usage, [1.0, 1.0])
    np.testing.assert_allclose(s.throttled_ratio, [0.0, 0.0])
    np.testing.assert_allclose(s.throttled_cores, [0.0, 0.0])
    np.testing.assert_allclose(s.psi_full, [0.5, 0.5])
    np.testing.assert_allclose(s.psi_some, [0.5, 0.5])


def test_idle_pod_has_zero_signals_and_nodes_are_independent() -> None:
    # Pods 0, 1 on node 0 (C = 1), pod 2 alone on node 1 (C = 4).
    # Node 0: caps [0, 1.5] -> pod 1 gets 1.0 of its 1.5 on 2 threads (full = 1 - 1/2); node 1:
    # pod 2 gets its 2.0 under a 3.0 quota.
    s = simulate_tick(
        np.array([0.0, 1.5, 2.0]),
        np.array([1.0, 2.0, 3.0]),
        np.ones(3),
        np.array([0, 0, 1], dtype=np.intp),
        np.array([1.0, 4.0]),
    )
    np.testing.assert_allclose(s.usage, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(s.psi_full, [0.0, 0.5, 0.0])
    np.testing.assert_allclose(s.throttled_cores, [0.0, 0.0, 0.0])
