"""Per-pod smoothing of raw demand: fast up, slow down, with a warm-up, keyed by pod UID.

:class:`DemandTracker` keeps one smoothed value per pod UID in numpy arrays. Each tick the caller
passes every pod it knows (UIDs and raw demand, NaN where this tick had no sample) and the tick's
time; the tracker returns the smoothed demand and a "warm" mask aligned to the given UIDs.

Smoothing is an asymmetric exponential moving average in continuous time: with ``dt`` the time
since the pod's last finite sample, ``alpha = 1 - exp(-dt / tau)`` and ``tau = tau_up_s`` when the
raw value is above the smoothed one, ``tau_down_s`` otherwise. Using time rather than a per-tick
factor keeps the behaviour when ticks are irregular or a pod skipped a tick.

* A NaN sample keeps the pod's state unchanged (a transient read error loses nothing).
* A UID not passed in a tick is forgotten: a pod recreated later under any name starts fresh.
* A pod is warm after ``warmup_samples`` finite samples; decisions should wait for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from mbcas.demand.config import DemandConfig

__all__ = ["DemandTracker"]


class DemandTracker:
    """Smoothed demand per pod UID (see module docs)."""

    def __init__(self, config: DemandConfig | None = None) -> None:
        self.config = config or DemandConfig()
        self._index: dict[str, int] = {}
        self._value = np.empty(0)
        self._time = np.empty(0)
        self._count = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, uid: object) -> bool:
        return uid in self._index

    def reset(self) -> None:
        """Forget every pod."""
        self._index = {}
        self._value = np.empty(0)
        self._time = np.empty(0)
        self._count = np.empty(0, dtype=np.int64)

    def update(
        self, uids: Sequence[str], raw_demand_cores: npt.ArrayLike, now: float
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Fold one tick of raw demand in; return ``(smoothed, warm)`` aligned to ``uids``."""
        n = len(uids)
        raw = np.asarray(raw_demand_cores, dtype=np.float64).reshape(-1)
        if raw.shape != (n,):
            raise ValueError(f"raw_demand_cores has {raw.shape[0]} values for {n} uids")
        index = {uid: i for i, uid in enumerate(uids)}
        if len(index) != n:
            raise ValueError("duplicate pod UIDs in one tick")
        old = self._index
        idx = np.fromiter((old.get(uid, -1) for uid in uids), dtype=np.intp, count=n)
        known = idx >= 0
        safe = np.where(known, idx, 0)
        if len(old):
            prev = np.where(known, self._value[safe], np.nan)
            prev_t = np.where(known, self._time[safe], np.nan)
            prev_count = np.where(known, self._count[safe], 0)
        else:
            prev, prev_t, prev_count = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=np.int64)

        sample = np.isfinite(raw)
        raw = np.where(sample, np.maximum(raw, 0.0), np.nan)
        cfg = self.config
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            dt = np.maximum(np.nan_to_num(now - prev_t, nan=0.0), 0.0)
            tau = np.where(raw > prev, cfg.tau_up_s, cfg.tau_down_s)
            alpha = np.where(tau > 0, -np.expm1(-dt / np.where(tau > 0, tau, 1.0)), 1.0)
            blended = prev + alpha * (raw - prev)
        has_prev = np.isfinite(prev)
        value = np.where(sample, np.where(has_prev, blended, raw), prev)
        count = np.where(sample, prev_count + 1, prev_count)
        stamp = np.where(sample, now, prev_t)

        self._index = index
        self._value = value
        self._time = stamp
        self._count = count
        warm = (count >= cfg.warmup_samples) & np.isfinite(value)
        return value.copy(), warm
