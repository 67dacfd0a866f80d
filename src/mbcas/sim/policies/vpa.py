"""A VPA-like policy: a percentile of past usage plus a margin, applied in place every minute.

Follows the Vertical Pod Autoscaler's recommender defaults for CPU: the target is the 90th
percentile of the usage samples (``percentile`` = 0.9) times ``1 + margin`` (15 % safety margin),
never below ``min_cpu`` (25m). The recommender and updater run every ``interval_s`` (60 s); the
updater applies a recommendation in place only when it differs from the current limit by more
than ``change_threshold`` (10 %), as the updater skips insignificant changes.

Differences from the real VPA, all in its favour on short runs: the usage histogram is the
plain sample history (the real one decays with a 24 h half-life, which over an hour is nearly
flat, and needs days of data for confident bounds), and the recommendation is applied in place
(``InPlaceOrRecreate``) without eviction. Usage is capped at the limit, so a throttled pod's P90
is its limit and the limit grows by at most ``1.15×`` per minute: VPA's known slowness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mbcas.sim.policies.base import FloatArray, Observation, Policy, SimContext, TickDecision

__all__ = ["VpaPolicy"]


@dataclass(kw_only=True, eq=False)
class VpaPolicy(Policy):
    """P90 of usage + 15 %, minute-level, min 25m (see module docs)."""

    name = "vpa"
    label = "VPA-like (P90 + 15 %, 1 min)"

    percentile: float = 0.9
    margin: float = 0.15
    min_cpu: float = 0.025
    interval_s: float = 60.0
    change_threshold: float = 0.10

    def start(self, ctx: SimContext) -> TickDecision:
        self._ctx = ctx
        self._samples: list[FloatArray] = []
        self._limits = ctx.requests.copy()
        self._next = self.interval_s
        return TickDecision(self._limits.copy())

    def decide(self, obs: Observation) -> TickDecision:
        self._samples.append(obs.signals.usage)
        if obs.now_s + 1e-9 >= self._next:
            self._next += self.interval_s
            history = np.asarray(self._samples)
            target = np.maximum(
                self.min_cpu, np.quantile(history, self.percentile, axis=0) * (1.0 + self.margin)
            )
            target = np.minimum(target, self._ctx.capacity[self._ctx.node])
            change = np.abs(target - self._limits) > self.change_threshold * self._limits
            self._limits = np.where(change, target, self._limits)
        return TickDecision(self._limits.copy())
