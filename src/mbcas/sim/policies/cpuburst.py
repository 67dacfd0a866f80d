"""A Koordinator CPU Burst-like policy (policy ``auto``, default settings): the peer to beat.

Koordinator's node agent (koordlet, ``qosmanager/plugins/cpuburst``) lets a throttled pod's CFS
quota grow while the node has idle CPU. Modelled from its source with its defaults:

* **Base and ceiling.** The base quota is the pod's limit, here its request (the same starting
  point as ``static``); the quota stays within ``[base, cfs_quota_burst_percent × base]``
  (``cfsQuotaBurstPercent`` 300 %).
* **Every reconcile** (``ReconcileIntervalSeconds`` 1 s, one tick) it decides per pod: *scale up*
  if the pod's last throttled ratio (``Δnr_throttled / Δnr_periods`` over the 1 s collection
  interval) is above 0, else *remain*; then the node's state can override that:
* **Node state** from the share pool's usage ratio, the node's CPU usage averaged over the last
  ``min(5 × reconcile, 10 s)`` = 5 s divided by the share pool's CPU (every simulated pod is in
  the share pool): ``>= sharePoolThresholdPercent`` (50 %) is *overload* (scale up and remain
  become scale down), ``[0.9 × threshold, threshold)`` is *cooling* (scale up becomes remain),
  below that *idle*.
* **Steps**: scale up multiplies the current quota by 1.2, scale down by 0.8, on whole
  microseconds of a 100 ms period (Koordinator truncates ``int64(quota × step)``), then clamps.

Not modelled: ``cpu.cfs_burst_us`` (``cpuBurstPercent`` 1000 %), the kernel's burst buffer that
lets a pod spend saved quota within a few periods, is below the simulator's one-second
resolution; the token-bucket limiter is off by default (``cfsQuotaBurstPeriodSeconds`` −1);
Koordinator writes the cgroup directly, so its quota changes are not API writes (they still
count as resizes). As for every policy, a decision takes effect on the next tick.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from mbcas.sim.policies.base import FloatArray, Observation, Policy, SimContext, TickDecision

__all__ = ["CpuBurstPolicy"]

_PERIOD_US = 100_000


@dataclass(kw_only=True, eq=False)
class CpuBurstPolicy(Policy):
    """Koordinator CPU Burst ``auto``: quota ×1.2 while throttled on an idle node, ×0.8 when busy."""

    name = "cpuburst"
    label = "CPU Burst-like (Koordinator auto)"
    resizes_are_api_writes = False

    base_factor: float = 1.0
    cfs_quota_burst_percent: float = 300.0
    share_pool_threshold_percent: float = 50.0
    cooling_ratio: float = 0.9
    up_step: float = 1.2
    down_step: float = 0.8
    node_window_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.base_factor > 0 or self.cfs_quota_burst_percent < 100:
            raise ValueError("base_factor must be > 0 and cfs_quota_burst_percent >= 100")
        self.ceiling_ratio = self.cfs_quota_burst_percent / 100.0
        self.threshold = self.share_pool_threshold_percent / 100.0
        self.cooling = self.cooling_ratio * self.threshold

    def start(self, ctx: SimContext) -> TickDecision:
        self._ctx = ctx
        self._base_us = np.floor(ctx.requests * self.base_factor * _PERIOD_US)
        self._ceil_us = np.floor(self._base_us * self.ceiling_ratio)
        self._quota_us = self._base_us.copy()
        window = max(1, round(self.node_window_s / ctx.tick_s))
        self._node_usage: deque[FloatArray] = deque(maxlen=window)
        return TickDecision(self._quota_us / _PERIOD_US)

    def node_usage_ratio(self) -> FloatArray:
        """Share-pool usage ratio per node, averaged over the window (see module docs)."""
        mean = np.mean(np.asarray(self._node_usage), axis=0)
        out: FloatArray = mean / self._ctx.capacity
        return out

    def decide(self, obs: Observation) -> TickDecision:
        ctx = self._ctx
        per_node = np.bincount(ctx.node, weights=obs.signals.usage, minlength=ctx.capacity.shape[0])
        self._node_usage.append(per_node.astype(np.float64))
        ratio = self.node_usage_ratio()[ctx.node]
        overload = ratio >= self.threshold
        cooling = (ratio >= self.cooling) & ~overload
        throttled = np.nan_to_num(obs.signals.throttled_ratio, nan=0.0) > 0.0
        up = throttled & ~overload & ~cooling
        down = overload
        quota = np.where(
            up,
            np.floor(self._quota_us * self.up_step),
            np.where(down, np.floor(self._quota_us * self.down_step), self._quota_us),
        )
        self._quota_us = np.clip(quota, self._base_us, self._ceil_us)
        return TickDecision(self._quota_us / _PERIOD_US)
