"""Run every policy on one scenario and collect the results (the heart of ``mbcas simulate``).

:func:`simulate` draws the demand once from the seed, runs each policy on that same matrix
(:func:`mbcas.sim.engine.run_policy`), computes the metrics (:mod:`mbcas.sim.metrics`) and returns
a :class:`SimulationResult` holding the traces (for plots) and the JSON-ready results::

    {"scenario": str, "seed": int, "policies": {"static": M, "static2x": M, "hpa": M, "vpa": M,
     "regret": M, "cpuburst": M, "mbcas": M, "unlimited": M}}

plus ``"scenario_info"`` (description, duration, pods, capacity, and ``min_stall_share``: the
least unserved share any policy can reach, which bounds what a contention target can ask) and
``"targets"`` (the checks of :mod:`mbcas.sim.targets` that apply to the scenario's tags).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mbcas.sim.engine import RunTrace, context_for, run_policy
from mbcas.sim.metrics import add_gap_closure, compute_metrics, fair_shares
from mbcas.sim.policies import Policy, default_policies
from mbcas.sim.scenario import Scenario
from mbcas.sim.targets import evaluate_targets

__all__ = ["SimulationResult", "simulate"]


def _min_stall_share(demand: npt.NDArray[np.float64], scenario: Scenario) -> float:
    """The least ``stall_share`` any policy can reach: ``Σₜ Σ_nodes max(0, Σ d − C) / Σ d``.

    A policy whose limits never add up to more than the capacity turns all of that excess into
    throttling, so it is also its floor of ``throttled_share``.
    """
    total = float(demand.sum())
    if total <= 0:
        return 0.0
    excess = 0.0
    node = scenario.node_index
    for k, cap in enumerate(scenario.capacities):
        excess += float(np.maximum(demand[:, node == k].sum(axis=1) - cap, 0.0).sum())
    return excess / total


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """The traces of every policy and the JSON-ready results."""

    scenario: Scenario
    seed: int
    traces: dict[str, RunTrace]
    results: dict[str, Any]


def simulate(scenario: Scenario, seed: int = 0, policies: list[Policy] | None = None) -> SimulationResult:
    """Run ``policies`` (default: all of them) on ``scenario`` with ``seed``; deterministic."""
    demand = scenario.demand(seed)
    ctx = context_for(scenario, seed)
    fair = fair_shares(demand, scenario.requests, scenario.node_index, scenario.capacities)
    spikes = scenario.spikes()
    traces: dict[str, RunTrace] = {}
    metrics: dict[str, dict[str, Any]] = {}
    for policy in policies if policies is not None else default_policies():
        trace = run_policy(ctx, policy, demand, threads=scenario.threads)
        traces[policy.name] = trace
        metrics[policy.name] = compute_metrics(trace, spikes=spikes, warmup_s=scenario.warmup_s, fair=fair)
    min_stall = _min_stall_share(demand, scenario)
    add_gap_closure(metrics, min_stall)
    results: dict[str, Any] = {
        "scenario": scenario.name,
        "seed": seed,
        "policies": metrics,
        "scenario_info": {
            "description": scenario.description,
            "duration_s": scenario.duration_s,
            "tick_s": scenario.tick_s,
            "pods": len(scenario.pods),
            "nodes": {n.name: n.capacity for n in scenario.nodes},
            "requests_cores": float(scenario.requests.sum()),
            "mean_demand_cores": float(demand.sum(axis=1).mean()),
            "min_stall_share": min_stall,
            "tags": list(scenario.tags),
            "spikes": len(spikes),
        },
        "targets": evaluate_targets(scenario.tags, metrics, min_stall),
    }
    return SimulationResult(scenario=scenario, seed=seed, traces=traces, results=results)
