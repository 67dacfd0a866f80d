"""The discrete-time loop: demand → node model → signals → policy → limits, tick by tick.

:func:`run_policy` runs one policy over one demand matrix and records everything the metrics and
plots need in a :class:`RunTrace` (arrays of shape ``(ticks, pods)``). Tick ``k``:

1. the node model (:func:`mbcas.sim.node.simulate_tick`) shares each node's CPU given the demand
   of tick ``k`` and the limits (and weights) in force;
2. the policy sees the resulting kernel-like signals (never the demand) and decides;
3. its decision is in force from tick ``k+1`` (one tick of actuation delay for every policy).

The policies are independent and deterministic given the seed, so all see identical traces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mbcas.sim.node import simulate_tick
from mbcas.sim.policies.base import Observation, Policy, SimContext
from mbcas.sim.scenario import Scenario

__all__ = ["RunTrace", "context_for", "run_policy"]

FloatArray = npt.NDArray[np.float64]

_CHANGE_EPS = 0.0005  # half a millicore: smaller differences are not a resize
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class RunTrace:
    """Everything recorded in one run; per-tick arrays have shape ``(ticks, pods)``."""

    policy: str
    label: str
    tick_s: float
    demand: FloatArray
    limit: FloatArray
    """Limit in force during each tick."""
    weight: FloatArray
    usage: FloatArray
    withheld: FloatArray
    """CPU the quota withheld: ``d − u`` where the limit is what stopped the pod (else 0)."""
    throttled_ratio: FloatArray
    """Share of the tick's CFS periods that were throttled."""
    throttled_cores: FloatArray
    """The kernel's throttled time per second (an over-read, see :mod:`mbcas.sim.node`)."""
    psi_full: FloatArray
    psi_some: FloatArray
    requests: FloatArray
    node: npt.NDArray[np.intp]
    capacity: FloatArray
    potential: FloatArray
    """The policy's own NSW potential per tick (NaN when it has none)."""
    extra_writes: npt.NDArray[np.int64]
    """API writes besides resizes made during each tick (``(ticks,)``; MBCAS: PodAllocations)."""
    resizes_are_api_writes: bool = True
    """Whether each resize is an API write (False: the policy writes the cgroup itself)."""

    @property
    def resizes(self) -> npt.NDArray[np.bool_]:
        """True where a pod's limit in tick ``k`` differs from tick ``k−1`` (``(ticks, pods)``)."""
        out = np.zeros(self.limit.shape, dtype=np.bool_)
        out[1:] = np.abs(np.diff(self.limit, axis=0)) > _CHANGE_EPS
        return out


def context_for(scenario: Scenario, seed: int) -> SimContext:
    """The static facts of a run of ``scenario``."""
    return SimContext(
        pod_names=tuple(p.name for p in scenario.pods),
        requests=scenario.requests,
        node=scenario.node_index,
        capacity=scenario.capacities,
        tick_s=scenario.tick_s,
        seed=seed,
    )


def run_policy(
    ctx: SimContext, policy: Policy, demand: FloatArray, *, threads: FloatArray | None = None
) -> RunTrace:
    """Run ``policy`` over ``demand`` (``(ticks, pods)``, cores) and record the trace.

    ``threads`` is each pod's least number of runnable threads (see :mod:`mbcas.sim.node`).

    Raises:
        ValueError: the demand's shape does not match the pods, or the policy returned limits of
            the wrong shape or with NaN/negative values (named with the tick).
    """
    ticks, n = demand.shape
    if n != ctx.n:
        raise ValueError(f"demand has {n} columns for {ctx.n} pods")
    keys = ("limit", "weight", "usage", "held", "ratio", "thr", "full", "some")
    rec = {k: np.empty((ticks, n)) for k in keys}
    potential = np.full(ticks, np.nan)
    writes = np.zeros(ticks, dtype=np.int64)
    decision = policy.start(ctx)
    for k in range(ticks):
        limit = _check(policy.name, k, decision.limits, n)
        weight = ctx.requests if decision.weights is None else _check(policy.name, k, decision.weights, n)
        sig = simulate_tick(demand[k], limit, weight, ctx.node, ctx.capacity, threads=threads)
        rec["limit"][k] = limit
        rec["weight"][k] = weight
        rec["usage"][k] = sig.usage
        quota_bound = (demand[k] > limit + _EPS) & (sig.usage >= limit - _EPS)
        rec["held"][k] = np.where(quota_bound, demand[k] - sig.usage, 0.0)
        rec["ratio"][k] = sig.throttled_ratio
        rec["thr"][k] = sig.throttled_cores
        rec["full"][k] = sig.psi_full
        rec["some"][k] = sig.psi_some
        obs = Observation(tick=k, now_s=k * ctx.tick_s, signals=sig, limit=limit)
        decision = policy.decide(obs)
        pot = policy.potential()
        if pot is not None:
            potential[k] = pot
        writes[k] = policy.allocation_writes()
    return RunTrace(
        policy=policy.name,
        label=policy.label,
        tick_s=ctx.tick_s,
        demand=demand,
        limit=rec["limit"],
        weight=rec["weight"],
        usage=rec["usage"],
        withheld=rec["held"],
        throttled_ratio=rec["ratio"],
        throttled_cores=rec["thr"],
        psi_full=rec["full"],
        psi_some=rec["some"],
        requests=ctx.requests,
        node=ctx.node,
        capacity=ctx.capacity,
        potential=potential,
        extra_writes=np.diff(writes, prepend=0),
        resizes_are_api_writes=policy.resizes_are_api_writes,
    )


def _check(name: str, tick: int, values: FloatArray, n: int) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"policy {name!r} returned shape {arr.shape} at tick {tick}, expected ({n},)")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        i = int(np.argmax(~np.isfinite(arr) | (arr <= 0)))
        raise ValueError(f"policy {name!r} returned {float(arr[i])!r} for pod {i} at tick {tick}")
    return arr
