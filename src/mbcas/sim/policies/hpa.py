"""An HPA-like policy: more replicas, not more CPU per replica.

Each simulated pod stands for a *service* whose replicas run on the pod's node; the service's
total CPU limit is ``ready replicas × per-replica limit`` and its CPU weight grows the same way
(each replica has its own ``cpu.weight ∝ request``). The rules follow the Horizontal Pod
Autoscaler's documented algorithm and defaults:

* every ``sync_s`` (15 s) it reads the mean CPU usage per ready replica over the last
  ``metric_window_s`` (60 s, metrics-server's resolution) and its utilisation against the
  request; ``ratio = utilisation / target`` (target 80 %);
* inside the tolerance (``|ratio − 1| <= 0.1``) nothing changes; otherwise the recommendation is
  ``ceil(ready × ratio)`` within ``[1, max_replicas]``;
* scale-up is immediate, but a new replica adds capacity only after ``startup_s`` (30 s: image
  already pulled, container start and readiness);
* scale-down uses the highest recommendation of the last ``stabilisation_s`` (300 s);
* the node's scheduler admits a new replica only if the node's requests still fit.

The per-replica limit is ``limit_factor × request`` (1.0: limits = requests). Usage is capped
at the limit, so a throttled service reads at most 100 % of its request and grows by at most
``1/target`` per step: the HPA's known slowness for CPU-bound spikes, which this policy keeps.
A "resize" in the metrics is a change of the service's effective limit (a replica becoming ready
or being removed).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from mbcas.sim.policies.base import FloatArray, Observation, Policy, SimContext, TickDecision

__all__ = ["HpaPolicy"]


@dataclass(kw_only=True, eq=False)
class HpaPolicy(Policy):
    """Horizontal scaling with HPA's sync period, tolerance, stabilisation and start-up delay."""

    name = "hpa"
    label = "HPA-like (replicas)"

    target: float = 0.8
    tolerance: float = 0.1
    sync_s: float = 15.0
    metric_window_s: float = 60.0
    stabilisation_s: float = 300.0
    startup_s: float = 30.0
    max_replicas: int = 10
    limit_factor: float = 1.0

    def start(self, ctx: SimContext) -> TickDecision:
        self._ctx = ctx
        n = ctx.n
        self._spec = np.ones(n, dtype=np.int64)  # replicas the HPA asked for
        self._ready = np.ones(n, dtype=np.int64)  # replicas started and ready
        self._pending: list[deque[tuple[float, int]]] = [deque() for _ in range(n)]
        self._recs: list[deque[tuple[float, int]]] = [deque() for _ in range(n)]
        window = max(1, round(self.metric_window_s / ctx.tick_s))
        self._usage: deque[FloatArray] = deque(maxlen=window)
        self._next_sync = self.sync_s
        return self._decision()

    def _decision(self) -> TickDecision:
        req = self._ctx.requests
        return TickDecision(limits=self._ready * req * self.limit_factor, weights=self._ready * req)

    def _fits(self, i: int, extra: int) -> int:
        """How many of ``extra`` new replicas of service ``i`` the node's requests still admit."""
        ctx = self._ctx
        node = ctx.node == ctx.node[i]
        used = float(np.sum(self._spec[node] * ctx.requests[node]))
        room = float(ctx.capacity[ctx.node[i]]) - used
        return max(0, min(extra, math.floor(room / float(ctx.requests[i]) + 1e-9)))

    def decide(self, obs: Observation) -> TickDecision:
        now = obs.now_s + self._ctx.tick_s  # the decision is for the next tick
        self._usage.append(obs.signals.usage / self._ready)
        for i, queue in enumerate(self._pending):
            while queue and queue[0][0] <= now:
                self._ready[i] += queue.popleft()[1]
        if obs.now_s + 1e-9 >= self._next_sync:
            self._next_sync += self.sync_s
            self._sync(obs.now_s)
        return self._decision()

    def _sync(self, now: float) -> None:
        per_replica = np.mean(np.asarray(self._usage), axis=0)
        util = per_replica / self._ctx.requests
        ratio = util / self.target
        for i in range(self._ctx.n):
            if abs(ratio[i] - 1.0) <= self.tolerance:
                rec = int(self._spec[i])
            else:
                rec = min(self.max_replicas, max(1, math.ceil(self._ready[i] * ratio[i] - 1e-9)))
            recs = self._recs[i]
            recs.append((now, rec))
            while recs and recs[0][0] < now - self.stabilisation_s:
                recs.popleft()
            spec = int(self._spec[i])
            if rec > spec:
                add = self._fits(i, rec - spec)
                if add:
                    self._spec[i] += add
                    self._pending[i].append((now + self.startup_s, add))
            else:
                stable = max(r for _, r in recs)
                if stable < spec:
                    drop = spec - stable
                    self._spec[i] = stable
                    # Remove not-yet-ready replicas first, then ready ones (immediately).
                    pend = self._pending[i]
                    while drop and pend:
                        t, k = pend.pop()
                        take = min(k, drop)
                        drop -= take
                        if k > take:
                            pend.append((t, k - take))
                    self._ready[i] = max(1, self._ready[i] - drop)
