"""Regret matching over discrete limit levels: the approach of MBCAS's predecessor, GTCAS.

GTCAS framed CPU sharing as a game: every pod is a player that picks its CPU limit from a few
discrete levels and adapts by *regret matching* (Hart & Mas-Colell, 2000). The exact rule used
here, per pod ``i``, every ``period_s`` (5 s):

1. Levels ``A = {f · requestᵢ : f ∈ factors}`` (0.5, 0.75, 1, 1.5, 2, 3, 4), each clipped to
   ``[min_cpu, node capacity]``.
2. Demand ``d̂ᵢ`` is the mean over the period of the production bounds
   :func:`mbcas.demand.demand_bounds`: the usage, or the throttled-time upper bound while the pod
   is under pressure (the same sensing as MBCAS, so the comparison isolates the allocation rule).
3. Utility of level ``a`` given the others' current limits ``L₋ᵢ`` on the node (capacity ``C``):
   ``u(a) = min(d̂ᵢ, a) − κ·a − μ·max(0, a + L₋ᵢ − C)``: satisfied demand, minus a small cost
   for reserved CPU (``κ`` = 0.05 per core) and a congestion penalty for overcommitting the
   node (``μ`` = 1 per core).
4. Discounted cumulative regret: ``Rᵢ(a) ← ρ·Rᵢ(a) + u(a) − u(current)`` for every level
   (``ρ`` = 0.9; undiscounted regret would take hours to follow a change of demand).
5. Next level: drawn with probability ``∝ max(Rᵢ(a), 0)``; if no regret is positive, keep the
   current level. Draws come from a Generator seeded with the run's seed.

Each pod adapts independently from its own view; the node never coordinates them, which is what
MBCAS's market replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mbcas.demand import demand_bounds
from mbcas.sim.policies.base import FloatArray, Observation, Policy, SimContext, TickDecision

__all__ = ["RegretMatchingPolicy"]


@dataclass(kw_only=True, eq=False)
class RegretMatchingPolicy(Policy):
    """Per-pod regret matching over discrete limit levels (see module docs)."""

    name = "regret"
    label = "regret matching (GTCAS-like)"

    factors: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
    period_s: float = 5.0
    cost: float = 0.05
    congestion: float = 1.0
    discount: float = 0.9
    min_cpu: float = 0.025

    def start(self, ctx: SimContext) -> TickDecision:
        self._ctx = ctx
        cap = ctx.capacity[ctx.node][:, None]
        factors = np.asarray(self.factors, dtype=np.float64)
        self._levels = np.clip(ctx.requests[:, None] * factors[None, :], self.min_cpu, cap)
        self._choice = np.full(ctx.n, int(np.argmin(np.abs(factors - 1.0))), dtype=np.intp)
        self._regret = np.zeros_like(self._levels)
        self._rng = np.random.default_rng(np.random.SeedSequence([ctx.seed, 0x6E67]))
        self._demand_sum = np.zeros(ctx.n)
        self._samples = 0
        self._next = self.period_s
        return TickDecision(self._current())

    def _current(self) -> FloatArray:
        out: FloatArray = self._levels[np.arange(self._ctx.n), self._choice]
        return out

    def decide(self, obs: Observation) -> TickDecision:
        sig = obs.signals
        est = demand_bounds(sig.usage, sig.throttled_ratio, sig.throttled_cores, sig.psi_full)
        self._demand_sum += np.nan_to_num(np.where(est.pressured, est.upper, est.lower), nan=0.0)
        self._samples += 1
        if obs.now_s + 1e-9 >= self._next:
            self._next += self.period_s
            self._update(self._demand_sum / self._samples)
            self._demand_sum[:] = 0.0
            self._samples = 0
        return TickDecision(self._current())

    def _update(self, demand: FloatArray) -> None:
        ctx = self._ctx
        current = self._current()
        node_total = np.bincount(ctx.node, weights=current, minlength=ctx.capacity.shape[0])
        others = (node_total[ctx.node] - current)[:, None]
        cap = ctx.capacity[ctx.node][:, None]
        a = self._levels
        utility = (
            np.minimum(demand[:, None], a)
            - self.cost * a
            - self.congestion * np.maximum(0.0, a + others - cap)
        )
        rows = np.arange(ctx.n)
        self._regret = self.discount * self._regret + (utility - utility[rows, self._choice][:, None])
        positive = np.maximum(self._regret, 0.0)
        total = positive.sum(axis=1)
        draws = self._rng.random(ctx.n)
        for i in np.flatnonzero(total > 0.0):
            cdf = np.cumsum(positive[i]) / total[i]
            self._choice[i] = min(int(np.searchsorted(cdf, draws[i], side="right")), a.shape[1] - 1)
