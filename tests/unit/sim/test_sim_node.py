"""The node model: CFS-like weighted sharing and the kernel-like signals, on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest

from mbcas.sim.node import cfs_share, simulate_tick


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


def test_quota_throttling_shows_as_throttled_and_psi_full() -> None:
    # d = [1.0, 0.2], l = [0.6, 0.5], C = 4: no contention.
    # Pod 0 uses 0.6, quota withholds 0.4 -> throttled, full = some = 0.4/1.0. Pod 1 is unhindered.
    s = simulate_tick(
        np.array([1.0, 0.2]), np.array([0.6, 0.5]), np.ones(2), np.zeros(2, dtype=np.intp), np.array([4.0])
    )
    np.testing.assert_allclose(s.usage, [0.6, 0.2])
    np.testing.assert_allclose(s.throttled_ratio, [1.0, 0.0])
    np.testing.assert_allclose(s.throttled_cores, [0.4, 0.0])
    np.testing.assert_allclose(s.psi_full, [0.4, 0.0])
    np.testing.assert_allclose(s.psi_some, [0.4, 0.0])


def test_contention_below_the_quota_is_psi_some_only() -> None:
    # d = [2, 2], l = [3, 3], w = [1, 1], C = 2: each gets 1; the quota is never exhausted.
    # some = (2 - 1)/2 = 0.5, full = 0, no throttling.
    s = simulate_tick(
        np.array([2.0, 2.0]), np.array([3.0, 3.0]), np.ones(2), np.zeros(2, dtype=np.intp), np.array([2.0])
    )
    np.testing.assert_allclose(s.usage, [1.0, 1.0])
    np.testing.assert_allclose(s.throttled_ratio, [0.0, 0.0])
    np.testing.assert_allclose(s.psi_full, [0.0, 0.0])
    np.testing.assert_allclose(s.psi_some, [0.5, 0.5])


def test_idle_pod_has_zero_signals_and_nodes_are_independent() -> None:
    # Pods 0, 1 on node 0 (C = 1), pod 2 alone on node 1 (C = 4).
    # Node 0: caps [0, 1.5] -> pod 1 gets 1.0 (contention, some = 1/3); node 1: pod 2 gets 2.
    s = simulate_tick(
        np.array([0.0, 1.5, 2.0]),
        np.array([1.0, 2.0, 3.0]),
        np.ones(3),
        np.array([0, 0, 1], dtype=np.intp),
        np.array([1.0, 4.0]),
    )
    np.testing.assert_allclose(s.usage, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(s.psi_some, [0.0, 0.5 / 1.5, 0.0])
    np.testing.assert_allclose(s.psi_full, [0.0, 0.0, 0.0])
