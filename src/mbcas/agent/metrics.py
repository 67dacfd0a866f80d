"""All Prometheus metrics of the node agent, on a registry of its own per agent.

Per-pod and per-node values are not pushed into labelled gauges every tick (that would cost
Python work per pod per tick): the agent hands each tick's plan to :meth:`AgentMetrics.observe_plan`
(one reference swap) and a custom collector renders it when ``/metrics`` is scraped.

- ``mbcas_agent_pod_demand_cores{namespace,pod}`` — smoothed demand estimate;
- ``mbcas_agent_pod_allocation_cores{namespace,pod}`` — the agent's allocation (managed pods);
- ``mbcas_agent_node_capacity_cores`` — CPU the managed pods share;
- ``mbcas_agent_nsw_objective`` — the potential ``Σ w·log x`` (flat or rising while demand is steady);
- ``mbcas_agent_managed_pods``, ``mbcas_agent_infeasible`` (1 while floors exceed capacity);
- ``mbcas_agent_tick_seconds`` — CPU-bound work per tick (sense + plan, no API I/O);
- ``mbcas_agent_solve_seconds`` — the pure plan (demand, capacity, solve, stability);
- ``mbcas_agent_read_errors_total{kind}`` — cgroup read errors by kind;
- ``mbcas_agent_api_writes_total{op,result}`` — PodAllocation creates/updates/deletes;
- ``mbcas_agent_config_reloads_total{result}`` — live ConfigMap reloads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mbcas.policy.node import NodePlan

__all__ = ["AgentMetrics"]

_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class _PlanCollector(Collector):
    def __init__(self) -> None:
        self.published: tuple[NodePlan | None, Sequence[tuple[str, str]]] = (None, ())

    def collect(self) -> Iterator[Metric]:
        plan, names = self.published
        demand = GaugeMetricFamily(
            "mbcas_agent_pod_demand_cores",
            "Smoothed CPU demand estimate per pod",
            labels=["namespace", "pod"],
        )
        alloc = GaugeMetricFamily(
            "mbcas_agent_pod_allocation_cores", "CPU allocation per managed pod", labels=["namespace", "pod"]
        )
        capacity = GaugeMetricFamily("mbcas_agent_node_capacity_cores", "CPU shared by the managed pods")
        objective = GaugeMetricFamily("mbcas_agent_nsw_objective", "NSW potential of the allocations")
        managed = GaugeMetricFamily("mbcas_agent_managed_pods", "Pods the agent manages")
        infeasible = GaugeMetricFamily("mbcas_agent_infeasible", "1 while the floors exceed the capacity")
        if plan is not None:
            dem = plan.demand.tolist()
            mc = plan.allocation_mcpu.tolist()
            for (ns, name), d, m in zip(names, dem, mc, strict=False):
                if not math.isnan(d):
                    demand.add_metric([ns, name], d)
                if m > 0:
                    alloc.add_metric([ns, name], m / 1000.0)
            capacity.add_metric([], plan.capacity_mcpu / 1000.0)
            if math.isfinite(plan.objective):
                objective.add_metric([], plan.objective)
            managed.add_metric([], float(plan.managed.sum()))
            infeasible.add_metric([], 1.0 if plan.infeasible else 0.0)
        yield from (demand, alloc, capacity, objective, managed, infeasible)


class AgentMetrics:
    """The agent's metrics on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._plan = _PlanCollector()
        self.registry.register(self._plan)
        self.tick_seconds = Histogram(
            "mbcas_agent_tick_seconds",
            "CPU-bound work per tick: sense and plan (no API I/O)",
            buckets=_FAST_BUCKETS,
            registry=self.registry,
        )
        self.solve_seconds = Histogram(
            "mbcas_agent_solve_seconds",
            "The pure plan: demand, capacity, NSW solve, stability",
            buckets=_FAST_BUCKETS,
            registry=self.registry,
        )
        self.read_errors = Counter(
            "mbcas_agent_read_errors", "cgroup read errors by kind", ["kind"], registry=self.registry
        )
        self.api_writes = Counter(
            "mbcas_agent_api_writes",
            "PodAllocation writes by operation and result",
            ["op", "result"],
            registry=self.registry,
        )
        self.config_reloads = Counter(
            "mbcas_agent_config_reloads",
            "Live ConfigMap reloads by result",
            ["result"],
            registry=self.registry,
        )

    def observe_plan(self, plan: NodePlan, names: Sequence[tuple[str, str]]) -> None:
        """Publish a tick's plan (rendered at scrape time)."""
        # One assignment, so a scrape never pairs one tick's names with another tick's plan.
        self._plan.published = (plan, names)

    def render(self) -> bytes:
        return generate_latest(self.registry)
