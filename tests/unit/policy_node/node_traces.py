"""Scripted signal traces for the node planner: a closed loop with no I/O.

Each pod has a true CPU demand per tick (a script). The kernel is modelled the way the sensing
layer sees it: a pod whose demand exceeds its limit uses its limit, is throttled for the rest
(``throttled_cores = demand − limit``, every period throttled) and stalls for the share of time
its work waits (``psi_full = 1 − limit/demand``); a pod below its limit uses its demand and is not
throttled. The limit a pod runs under is the planner's last allocation (or its initial limit), as
if the controller applied every decision at once. Usage noise is multiplicative and seeded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mbcas.core.qos import QoSClass
from mbcas.demand import Signals
from mbcas.policy.node import NodeInputs, NodePlan, NodePlanner
from mbcas.policy.node_config import NodePolicy

__all__ = ["Pod", "TraceResult", "run_trace"]

Demand = Callable[[float], float]


@dataclass
class Pod:
    uid: str
    demand: Demand
    request: float = float("nan")
    limit: float = float("nan")
    qos: int = QoSClass.BURSTABLE.code
    eligible: bool = True


@dataclass
class TraceResult:
    plans: list[NodePlan] = field(default_factory=list)
    allocations: list[np.ndarray] = field(default_factory=list)
    """Millicores per tick (after the tick), -1 = none."""
    changes: np.ndarray | None = None
    """Per pod: number of ticks with a new decision."""

    def alloc(self, pod: int, tick: int) -> int:
        return int(self.allocations[tick][pod])


def run_trace(
    pods: Sequence[Pod],
    ticks: int,
    *,
    allocatable: float,
    reserve: float = 0.0,
    policy: NodePolicy | None = None,
    noise: float = 0.0,
    seed: int = 0,
    dt: float = 1.0,
    planner: NodePlanner | None = None,
    on_tick: Callable[[int, NodePlan], None] | None = None,
) -> TraceResult:
    """Run ``ticks`` ticks of the closed loop and collect every plan."""
    rng = np.random.default_rng(seed)
    planner = planner or NodePlanner(policy or NodePolicy())
    n = len(pods)
    uids = [p.uid for p in pods]
    qos = np.array([p.qos for p in pods], dtype=np.int8)
    eligible = np.array([p.eligible for p in pods])
    request = np.array([p.request for p in pods])
    limit = np.array([p.limit for p in pods])
    result = TraceResult(changes=np.zeros(n, dtype=np.int64))
    for k in range(ticks):
        now = k * dt
        demand = np.array([p.demand(now) for p in pods])
        if noise:
            demand = demand * rng.uniform(1.0 - noise, 1.0 + noise, size=n)
        run_limit = np.where(np.isfinite(limit), limit, np.inf)
        usage = np.minimum(demand, run_limit)
        throttled = np.maximum(demand - run_limit, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            psi_full = np.where(throttled > 0, throttled / demand, 0.0)
        inputs = NodeInputs.build(
            uids,
            qos,
            eligible=eligible,
            request=request,
            limit=limit,
            signals=Signals.build(
                usage,
                throttled_ratio=np.where(throttled > 0, 1.0, 0.0),
                throttled_cores=throttled,
                psi_some=psi_full,
                psi_full=psi_full,
            ),
        )
        plan = planner.plan(now, allocatable, reserve, inputs)
        result.plans.append(plan)
        result.allocations.append(plan.allocation_mcpu.copy())
        assert result.changes is not None
        result.changes += plan.changed
        if on_tick is not None:
            on_tick(k, plan)
        # The controller applies every decision before the next interval.
        has = plan.allocation_mcpu > 0
        limit = np.where(has, plan.allocation_mcpu / 1000.0, limit)
    return result
