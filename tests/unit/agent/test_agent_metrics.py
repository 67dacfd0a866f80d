"""The agent's ``/metrics``: what a tick's plan becomes in the exposition format.

Behaviours: per managed pod the signals, the decision and the current limit are exported with the
labels ``namespace`` and ``pod`` only (the pod's own labels never leak into series names or
labels); unmanaged pods get no per-pod signal series; a pod's series disappear at the first scrape
after it left the plan; the node series carry the Σ of decided limits, the bound (read from
``NodePlan.limit_bound``) and their ratio; counters and histograms follow the ``_total`` /
``_seconds`` conventions with help texts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mbcas.agent.metrics import AgentMetrics
from mbcas.demand import Signals
from mbcas.policy.node import NodeInputs, NodePlan, replay
from mbcas.policy.node_config import NodePolicy

Samples = dict[str, list[tuple[dict[str, str], float]]]

# QoS codes of the planner's arrays (0 Guaranteed, 1 Burstable).
GUARANTEED = 0
BURSTABLE = 1


def scrape(metrics: AgentMetrics) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def by_pod(samples: Samples, name: str) -> dict[tuple[str, str], float]:
    return {(lab["namespace"], lab["pod"]): v for lab, v in samples.get(name, [])}


def plan_for(
    uids: list[str], qos: list[int], usage: list[float], *, throttled: float = 0.2, psi: float = 0.1
) -> NodePlan:
    n = len(uids)
    inputs = NodeInputs.build(
        uids,
        qos,
        request=[0.1] * n,
        limit=[0.5] * n,
        signals=Signals.build(
            usage,
            throttled_ratio=[throttled] * n,
            throttled_cores=[0.05] * n,
            psi_some=[psi * 2] * n,
            psi_full=[psi] * n,
        ),
    )
    return replay(NodePolicy(), 2.0, 0.2, inputs)


def test_managed_pods_export_signals_decision_and_limit_with_namespace_and_pod_labels_only() -> None:
    plan = plan_for(["u1", "u2", "u3"], [BURSTABLE, BURSTABLE, GUARANTEED], [0.3, 0.1, 0.4])
    metrics = AgentMetrics()
    metrics.observe_plan(plan, [("ns-a", "web"), ("ns-b", "api"), ("ns-a", "db")], node="n1")
    s = scrape(metrics)
    managed = {("ns-a", "web"), ("ns-b", "api")}
    for name in (
        "mbcas_agent_pod_allocation_cores",
        "mbcas_agent_pod_limit_cores",
        "mbcas_agent_pod_usage_cores",
        "mbcas_agent_pod_throttled_ratio",
        "mbcas_agent_pod_psi_some_ratio",
        "mbcas_agent_pod_psi_full_ratio",
    ):
        assert set(by_pod(s, name)) == managed, name
        assert all(set(labels) == {"namespace", "pod"} for labels, _ in s[name]), name
    assert by_pod(s, "mbcas_agent_pod_usage_cores")[("ns-a", "web")] == pytest.approx(0.3)
    assert by_pod(s, "mbcas_agent_pod_limit_cores")[("ns-b", "api")] == pytest.approx(0.5)
    assert by_pod(s, "mbcas_agent_pod_throttled_ratio")[("ns-a", "web")] == pytest.approx(0.2)
    assert by_pod(s, "mbcas_agent_pod_psi_full_ratio")[("ns-a", "web")] == pytest.approx(0.1)
    assert by_pod(s, "mbcas_agent_pod_psi_some_ratio")[("ns-a", "web")] == pytest.approx(0.2)
    web = plan.uids.index("u1")
    assert by_pod(s, "mbcas_agent_pod_allocation_cores")[("ns-a", "web")] == pytest.approx(
        plan.allocation_mcpu[web] / 1000
    )
    # Demand is estimated for every pod with a sample, managed or not.
    assert ("ns-a", "db") in by_pod(s, "mbcas_agent_pod_demand_cores")


def test_unknown_signals_are_left_out_not_exported_as_zero() -> None:
    inputs = NodeInputs.build(["u1"], [BURSTABLE], request=[0.1], limit=[0.5], signals=Signals.build([0.2]))
    metrics = AgentMetrics()
    metrics.observe_plan(replay(NodePolicy(), 2.0, 0.2, inputs), [("ns", "p")], node="n1")
    s = scrape(metrics)
    assert by_pod(s, "mbcas_agent_pod_usage_cores") == {("ns", "p"): pytest.approx(0.2)}
    for name in ("mbcas_agent_pod_throttled_ratio", "mbcas_agent_pod_psi_full_ratio"):
        assert by_pod(s, name) == {}, name


def test_a_pods_series_disappear_once_it_left_the_plan() -> None:
    metrics = AgentMetrics()
    metrics.observe_plan(
        plan_for(["u1", "u2"], [BURSTABLE] * 2, [0.3, 0.1]), [("ns", "a"), ("ns", "b")], node="n1"
    )
    assert ("ns", "b") in by_pod(scrape(metrics), "mbcas_agent_pod_usage_cores")
    metrics.observe_plan(plan_for(["u1"], [BURSTABLE], [0.3]), [("ns", "a")], node="n1")
    s = scrape(metrics)
    for name, rows in s.items():
        if name.startswith("mbcas_agent_pod_"):
            assert all(labels.get("pod") != "b" for labels, _ in rows), name


def test_node_series_sum_the_decided_limits_against_the_plans_limit_bound() -> None:
    plan = plan_for(["u1", "u2", "u3"], [BURSTABLE] * 3, [1.5, 1.5, 1.5], throttled=0.5, psi=0.3)
    metrics = AgentMetrics(wall_clock=lambda: 1234.5)
    metrics.observe_plan(plan, [("ns", "a"), ("ns", "b"), ("ns", "c")], node="node-7")
    s = scrape(metrics)

    def node_value(name: str) -> float:
        [(labels, value)] = s[name]
        assert labels == {"node": "node-7"}, name
        return value

    limits = float(plan.allocation_mcpu[plan.managed].sum()) / 1000
    assert node_value("mbcas_agent_node_limits_cores") == pytest.approx(limits)
    assert node_value("mbcas_agent_node_limit_bound_cores") == pytest.approx(plan.limit_bound)
    assert node_value("mbcas_agent_node_limit_bound_ratio") == pytest.approx(limits / plan.limit_bound)
    # Three pods under pressure probing to 1.6 cores each; 2.0 × 1.8 shareable cores bound them.
    assert plan.limit_bound == pytest.approx(3.6)
    assert 0.99 <= node_value("mbcas_agent_node_limit_bound_ratio") <= 1.0 + 1e-9
    assert node_value("mbcas_agent_node_capacity_cores") == pytest.approx(plan.capacity_mcpu / 1000)
    assert node_value("mbcas_agent_node_usage_cores") == pytest.approx(4.5)
    assert node_value("mbcas_agent_managed_pods") == 3
    assert node_value("mbcas_agent_infeasible") == 0
    assert node_value("mbcas_agent_last_tick_timestamp_seconds") == 1234.5
    assert math.isfinite(node_value("mbcas_agent_nsw_objective"))


def test_limit_bound_holds_the_decided_limits_and_counts_managed_pods_only() -> None:
    plan = plan_for(["u1", "u2"], [BURSTABLE, GUARANTEED], [0.3, 0.4])
    managed = np.flatnonzero(plan.managed)
    assert managed.tolist() == [plan.uids.index("u1")]
    assert plan.limits_total == pytest.approx(float(plan.allocation_mcpu[managed].sum()) / 1000)
    assert 0 < plan.limits_total <= plan.limit_bound
    assert plan.limit_bound >= plan.capacity_mcpu / 1000


def test_conventions_counters_total_histograms_seconds_help_texts() -> None:
    metrics = AgentMetrics()
    metrics.read_errors.labels("not_found").inc()
    metrics.api_writes.labels("write", "created").inc()
    metrics.config_reloads.labels("applied").inc()
    metrics.config_read_errors.labels("NotFound").inc()
    text = metrics.render().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for family in families.values():
        assert family.name.startswith("mbcas_agent_"), family.name
        assert family.documentation, f"{family.name} has no help text"
        if family.type == "counter":
            assert any(s.name == f"{family.name}_total" for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
    assert families["mbcas_agent_build_info"].samples[0].labels["version"]
    # Before the first tick there is no plan, and no pod or node sample either.
    assert "mbcas_agent_pod_usage_cores{" not in text and "mbcas_agent_node_limits_cores{" not in text
