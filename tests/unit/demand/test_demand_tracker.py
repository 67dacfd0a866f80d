"""Fast-up, slow-down smoothing per pod UID, warm-up, forgetting, and skipped samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mbcas.demand import DemandConfig, DemandTracker

NAN = math.nan


def test_fast_up_slow_down() -> None:
    cfg = DemandConfig(tau_up_s=0.5, tau_down_s=20.0, warmup_samples=1)
    tracker = DemandTracker(cfg)
    tracker.update(["a"], [1.0], now=0.0)
    up, _ = tracker.update(["a"], [3.0], now=1.0)
    assert up[0] == pytest.approx(1.0 + 2.0 * (1 - math.exp(-1 / 0.5)))
    assert up[0] > 2.7  # a spike is mostly served within one 1 s tick
    level = up[0]
    down, _ = tracker.update(["a"], [0.0], now=2.0)
    assert down[0] == pytest.approx(level * math.exp(-1 / 20.0))
    assert down[0] > 0.9 * level  # but it gives CPU back slowly


def test_irregular_ticks_use_elapsed_time() -> None:
    cfg = DemandConfig(tau_up_s=1.0, tau_down_s=10.0)
    one, two = DemandTracker(cfg), DemandTracker(cfg)
    for t in (0.0, 1.0):
        one.update(["a"], [4.0 if t == 0 else 0.0], now=t)
    two.update(["a"], [4.0], now=0.0)
    two.update(["a"], [0.0], now=0.5)
    smoothed_two, _ = two.update(["a"], [0.0], now=1.0)
    smoothed_one, _ = one.update(["a"], [0.0], now=1.0)  # dt = 0 here: unchanged
    assert smoothed_two[0] == pytest.approx(4.0 * math.exp(-1 / 10.0))
    assert smoothed_one[0] == pytest.approx(smoothed_two[0])


def test_zero_time_constant_follows_the_raw_value() -> None:
    tracker = DemandTracker(DemandConfig(tau_up_s=0.0, tau_down_s=0.0))
    tracker.update(["a"], [1.0], now=0.0)
    out, _ = tracker.update(["a"], [5.0], now=1.0)
    assert out[0] == 5.0


def test_warm_up_needs_finite_samples() -> None:
    tracker = DemandTracker(DemandConfig(warmup_samples=3))
    warms = []
    for t, raw in enumerate([1.0, NAN, 1.0, 1.0, 1.0]):
        _, warm = tracker.update(["a"], [raw], now=float(t))
        warms.append(bool(warm[0]))
    assert warms == [False, False, False, True, True]


def test_nan_keeps_state_and_new_pod_with_nan_is_unknown() -> None:
    tracker = DemandTracker(DemandConfig(warmup_samples=1))
    tracker.update(["a"], [2.0], now=0.0)
    out, warm = tracker.update(["a", "b"], [NAN, NAN], now=1.0)
    assert out[0] == 2.0 and warm[0]
    assert math.isnan(out[1]) and not warm[1]
    assert "b" in tracker


def test_unseen_uids_are_forgotten_and_order_follows_input() -> None:
    tracker = DemandTracker(DemandConfig(warmup_samples=2))
    tracker.update(["a", "b"], [1.0, 2.0], now=0.0)
    out, warm = tracker.update(["b", "a"], [2.0, 1.0], now=1.0)
    np.testing.assert_allclose(out, [2.0, 1.0])
    assert warm.all()
    tracker.update(["b"], [2.0], now=2.0)
    assert "a" not in tracker and len(tracker) == 1
    out, warm = tracker.update(["a", "b"], [9.0, 2.0], now=3.0)
    assert out[0] == 9.0 and not warm[0] and warm[1]  # "a" starts fresh


def test_negative_raw_is_clamped_and_inputs_validated() -> None:
    tracker = DemandTracker()
    out, _ = tracker.update(["a"], [-3.0], now=0.0)
    assert out[0] == 0.0
    with pytest.raises(ValueError, match="values for"):
        tracker.update(["a", "b"], [1.0], now=1.0)
    with pytest.raises(ValueError, match="duplicate"):
        tracker.update(["a", "a"], [1.0, 1.0], now=1.0)
    tracker.reset()
    assert len(tracker) == 0


def test_many_pods_vectorised() -> None:
    n = 500
    uids = [f"pod-{i}" for i in range(n)]
    tracker = DemandTracker(DemandConfig(warmup_samples=2))
    raw = np.linspace(0, 4, n)
    tracker.update(uids, raw, now=0.0)
    out, warm = tracker.update(uids, raw * 2, now=1.0)
    assert out.shape == (n,) and warm.all()
    assert (out >= raw - 1e-12).all() and (out <= raw * 2 + 1e-12).all()
