"""All Prometheus metrics of the node agent, on a registry of its own per agent.

Per-pod and per-node values are not pushed into labelled gauges every tick (that would cost
Python work per pod per tick): the agent hands each tick's plan to :meth:`AgentMetrics.observe_plan`
(one reference swap) and a custom collector renders it when ``/metrics`` is scraped. So a pod's
series exist exactly while the pod is in the agent's latest plan: they vanish at the first
scrape after the pod left the node (no stale series, no per-pod bookkeeping).

Per pod (labels ``namespace`` and ``pod`` only, never the pod's own labels; the scrape adds the
agent's ``node`` as a target label, see docs/metrics.md):

- ``mbcas_agent_pod_demand_cores`` — the burst envelope, the pod's largest usage over the planner's
  window (every pod with a sample);
- ``mbcas_agent_pod_allocation_cores`` — the agent's decided limit (managed pods);
- ``mbcas_agent_pod_limit_cores`` — the pod's current CPU limit as the agent sees it in its pod
  watch cache (Σ of the containers' spec limits; managed pods with a limit);
- ``mbcas_agent_pod_usage_cores`` — CPU used over the last tick (managed pods);
- ``mbcas_agent_pod_throttled_ratio`` — share of the last tick's CFS periods that were throttled;
- ``mbcas_agent_pod_psi_some_ratio``, ``mbcas_agent_pod_psi_full_ratio`` — share of the last
  tick in which some / all of the pod's runnable tasks waited for CPU (PSI).

Per node (label ``node``):

- ``mbcas_agent_node_capacity_cores`` — CPU the managed pods share (allocatable − reserve −
  unmanaged pods);
- ``mbcas_agent_node_limits_cores`` — Σ of the managed pods' decided limits;
- ``mbcas_agent_node_limit_bound_cores`` — the bound on that sum (``limit_overcommit`` × shareable
  CPU, :attr:`mbcas.policy.node.NodePlan.limit_bound`);
- ``mbcas_agent_node_limit_bound_ratio`` — the first over the second (1 = at the bound);
- ``mbcas_agent_node_usage_cores`` — Σ usage of the managed pods over the last tick;
- ``mbcas_agent_nsw_objective`` — the potential ``Σ w·log x`` (flat or rising while demand is steady);
- ``mbcas_agent_managed_pods``, ``mbcas_agent_infeasible`` (1 while floors exceed capacity);
- ``mbcas_agent_last_tick_timestamp_seconds`` — Unix time of the last completed tick.

Agent process:

- ``mbcas_agent_build_info{version}`` — always 1;
- ``mbcas_agent_tick_seconds`` — CPU-bound work per tick (sense + plan, no API I/O);
- ``mbcas_agent_solve_seconds`` — the pure plan (demand, capacity, solve, stability);
- ``mbcas_agent_read_errors_total{kind}`` — cgroup read errors by kind;
- ``mbcas_agent_api_writes_total{op,result}`` — PodAllocation creates/updates/deletes;
- ``mbcas_agent_config_reloads_total{result}`` — live ConfigMap reloads;
- ``mbcas_agent_config_unknown_keys{key}`` — 1 for each key of the live ConfigMap the agent does
  not know (ignored, with a warning naming it);
- ``mbcas_agent_config_read_errors_total{code}`` — reads of the live ConfigMap that failed
  (``NotFound``, ``Forbidden``, ``ApiUnavailable`` ...): the last good config stays in force;
- ``mbcas_agent_config_loaded`` — 1 once the live ConfigMap has been read; 0 while the agent
  observes only because it has not read it yet.

docs/metrics.md lists every series of the agent and the controller.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mbcas import __version__
from mbcas.policy.node import NodePlan

__all__ = ["AgentMetrics"]

_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_POD = ["namespace", "pod"]
_NODE = ["node"]


@dataclass(frozen=True, slots=True)
class _Published:
    """One tick, published as a whole so a scrape never mixes two ticks."""

    plan: NodePlan | None = None
    names: Sequence[tuple[str, str]] = ()
    node: str = ""
    at: float = math.nan


def _pod_family(name: str, doc: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=_POD)


def _node_family(name: str, doc: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=_NODE)


class _PlanCollector(Collector):
    def __init__(self) -> None:
        self.published = _Published()

    def collect(self) -> Iterator[Metric]:
        pub = self.published
        demand = _pod_family(
            "mbcas_agent_pod_demand_cores",
            "Burst envelope: largest CPU use per pod over the planner's window, cores",
        )
        alloc = _pod_family(
            "mbcas_agent_pod_allocation_cores", "CPU limit the agent decided per managed pod, cores"
        )
        limit = _pod_family(
            "mbcas_agent_pod_limit_cores",
            "Current CPU limit of a managed pod as the agent sees it (sum of its containers' spec "
            "limits, from the pod watch cache), cores",
        )
        usage = _pod_family(
            "mbcas_agent_pod_usage_cores", "CPU used by a managed pod over the last tick, cores"
        )
        throttled = _pod_family(
            "mbcas_agent_pod_throttled_ratio",
            "Share of a managed pod's CFS periods throttled over the last tick (0..1)",
        )
        psi_some = _pod_family(
            "mbcas_agent_pod_psi_some_ratio",
            "Share of the last tick in which some of a managed pod's tasks waited for CPU (PSI some, 0..1)",
        )
        psi_full = _pod_family(
            "mbcas_agent_pod_psi_full_ratio",
            "Share of the last tick in which all of a managed pod's runnable tasks waited for CPU "
            "(PSI full, 0..1)",
        )
        capacity = _node_family(
            "mbcas_agent_node_capacity_cores",
            "CPU the managed pods share: allocatable minus reserve minus unmanaged pods, cores",
        )
        limits = _node_family(
            "mbcas_agent_node_limits_cores", "Sum of the managed pods' decided CPU limits, cores"
        )
        bound = _node_family(
            "mbcas_agent_node_limit_bound_cores",
            "Bound on the sum of managed limits: limit_overcommit times the shareable CPU, cores",
        )
        ratio = _node_family(
            "mbcas_agent_node_limit_bound_ratio",
            "Sum of managed limits over its bound (1 = at the overcommit bound)",
        )
        node_usage = _node_family(
            "mbcas_agent_node_usage_cores", "CPU used by the managed pods over the last tick, cores"
        )
        objective = _node_family(
            "mbcas_agent_nsw_objective", "NSW potential sum(w*log x) of the managed allocations"
        )
        managed = _node_family("mbcas_agent_managed_pods", "Pods the agent manages")
        infeasible = _node_family(
            "mbcas_agent_infeasible", "1 while the managed pods' floors exceed the capacity"
        )
        last_tick = _node_family(
            "mbcas_agent_last_tick_timestamp_seconds", "Unix time of the agent's last completed tick"
        )
        plan = pub.plan
        if plan is not None:
            node = [pub.node]
            inp = plan.inputs
            sig = inp.signals
            dem = plan.demand.tolist()
            for (ns, name), d in zip(pub.names, dem, strict=False):
                if not math.isnan(d):
                    demand.add_metric([ns, name], d)
            idx = np.flatnonzero(plan.managed)
            per_pod = (
                (alloc, plan.allocation_mcpu[idx] / 1000.0),
                (limit, inp.limit[idx]),
                (usage, sig.usage[idx]),
                (throttled, sig.throttled_ratio[idx]),
                (psi_some, sig.psi_some[idx]),
                (psi_full, sig.psi_full[idx]),
            )
            keys = [list(pub.names[i]) for i in idx.tolist()]
            for family, values in per_pod:
                for key, v in zip(keys, values.tolist(), strict=True):
                    # NaN: unknown this tick; a non-positive allocation: none decided yet.
                    if math.isfinite(v) and (family is not alloc or v > 0):
                        family.add_metric(key, v)
            lim_total, lim_bound = plan.limits_total, plan.limit_bound
            capacity.add_metric(node, plan.capacity_mcpu / 1000.0)
            limits.add_metric(node, lim_total)
            bound.add_metric(node, lim_bound)
            if lim_bound > 0:
                ratio.add_metric(node, lim_total / lim_bound)
            node_usage.add_metric(node, float(np.nansum(sig.usage[idx])))
            if math.isfinite(plan.objective):
                objective.add_metric(node, plan.objective)
            managed.add_metric(node, float(idx.size))
            infeasible.add_metric(node, 1.0 if plan.infeasible else 0.0)
            last_tick.add_metric(node, pub.at)
        yield from (demand, alloc, limit, usage, throttled, psi_some, psi_full)
        yield from (capacity, limits, bound, ratio, node_usage, objective, managed, infeasible, last_tick)


class AgentMetrics:
    """The agent's metrics on a private registry."""

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._wall_clock = wall_clock
        self._plan = _PlanCollector()
        self.registry.register(self._plan)
        Gauge(
            "mbcas_agent_build_info", "MBCAS agent version (always 1)", ["version"], registry=self.registry
        ).labels(__version__).set(1)
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
        self.config_read_errors = Counter(
            "mbcas_agent_config_read_errors",
            "Failed reads of the live ConfigMap by error code (the last good config stays in force)",
            ["code"],
            registry=self.registry,
        )
        self.config_loaded = Gauge(
            "mbcas_agent_config_loaded",
            "1 once the live ConfigMap has been read; 0 while the agent only observes until it is",
            registry=self.registry,
        )
        self.config_unknown_keys = Gauge(
            "mbcas_agent_config_unknown_keys",
            "1 for each key of the live ConfigMap the agent does not know (ignored)",
            ["key"],
            registry=self.registry,
        )

    def observe_plan(self, plan: NodePlan, names: Sequence[tuple[str, str]], *, node: str = "") -> None:
        """Publish a tick's plan (rendered at scrape time); ``names`` are the pods' (namespace,
        name) aligned with ``plan.uids``, ``node`` the agent's node."""
        # One assignment, so a scrape never pairs one tick's names with another tick's plan.
        self._plan.published = _Published(plan, tuple(names), node, self._wall_clock())

    def render(self) -> bytes:
        """The text exposition format of this registry."""
        return generate_latest(self.registry)
