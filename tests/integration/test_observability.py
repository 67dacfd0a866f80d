"""The dashboard and the alerts against a running agent and controller, scraped over HTTP.

Behaviours: every series the chart's Grafana dashboard and PrometheusRule query is one that a
running agent or controller exports (scraped from their ``/metrics``, not a hand-kept list); the
per-pod series of a managed pod carry the kernel signals with the labels ``namespace`` and ``pod``
only and vanish once the pod is gone; an unmanaged pod gets none; the node series put the Σ of
the managed limits against the bound; the controller counts the allocations it watches by node,
phase and reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mbcas_stack import MANAGED, UNMANAGED, Stack, scrape, stack_fixture, wait_scrape  # noqa: F401
from prometheus_client.parser import text_string_to_metric_families

from helpers import wait_for
from mbcas.core.units import parse_cpu
from mbcas.local import helm
from observability import (
    dashboard_queries,
    exported_series,
    render_monitoring,
    rule_expressions,
    series_names,
)

pytestmark = [pytest.mark.integration, pytest.mark.kernel, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PATHS = helm.repo_paths(ROOT)

Samples = list[tuple[str, dict[str, str], float]]


def samples(text: str) -> Samples:
    return [
        (s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples
    ]


def pods_with(rows: Samples, name: str) -> dict[str, float]:
    return {labels["pod"]: value for n, labels, value in rows if n == name}


def test_dashboard_and_alerts_query_only_series_the_running_agent_and_controller_export(stack: Stack) -> None:
    agent_text = wait_scrape(
        stack.agent_url,
        lambda t: set(MANAGED) <= set(pods_with(samples(t), "mbcas_agent_pod_usage_cores")),
        "per-pod usage of both managed pods on the agent's /metrics",
    )
    # The resize counter has a sample from the controller's first resize on, which may come after
    # the agent's numbers (the market planner steps a busy pod up in resizes 10 s apart).
    controller_text = wait_scrape(
        stack.controller_url,
        lambda t: any(name == "mbcas_controller_resizes_total" for name, _, _ in samples(t)),
        "a resize counted on the controller's /metrics",
        timeout=60,
    )
    exported = exported_series(agent_text) | exported_series(controller_text)
    # The samples are really there, not only declared: per pod, per node and the controller's.
    present = {name for name, _, _ in samples(agent_text) + samples(controller_text)}
    assert {
        "mbcas_agent_pod_allocation_cores",
        "mbcas_agent_pod_limit_cores",
        "mbcas_agent_node_limit_bound_ratio",
        "mbcas_agent_last_tick_timestamp_seconds",
        "mbcas_controller_allocations",
        "mbcas_controller_leader",
        "mbcas_controller_resizes_total",
    } <= present

    docs = render_monitoring(PATHS)
    [cm] = [d for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]]
    [rules] = [d for d in docs if d["kind"] == "PrometheusRule"]
    queries = list(dashboard_queries(json.loads(cm["data"]["mbcas.json"]))) + list(rule_expressions(rules))
    used: dict[str, set[str]] = {}
    for where, expr in queries:
        for name in series_names(expr):
            used.setdefault(name, set()).add(where)
    missing = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert not missing, f"queried but not exported by a running agent or controller: {missing}"
    assert len(used) >= 20


def test_pod_series_carry_signals_with_namespace_and_pod_only_and_vanish_with_the_pod(
    stack: Stack, core_v1: Any
) -> None:
    text = wait_scrape(
        stack.agent_url,
        lambda t: set(MANAGED) <= set(pods_with(samples(t), "mbcas_agent_pod_throttled_ratio")),
        "throttling of both managed pods",
    )
    rows = samples(text)
    for name in (
        "mbcas_agent_pod_usage_cores",
        "mbcas_agent_pod_throttled_ratio",
        "mbcas_agent_pod_allocation_cores",
        "mbcas_agent_pod_limit_cores",
    ):
        assert set(pods_with(rows, name)) == set(MANAGED), name
    for name, labels, _ in rows:
        if name.startswith("mbcas_agent_pod_"):
            assert set(labels) == {"namespace", "pod"}, (name, labels)
            assert labels["namespace"] == stack.namespace
    assert UNMANAGED not in pods_with(rows, "mbcas_agent_pod_usage_cores")

    # The agent's view of each pod's limit is the pod's spec (which the controller resizes).
    def limits_match_specs() -> bool:
        limits = pods_with(samples(scrape(stack.agent_url)), "mbcas_agent_pod_limit_cores")
        specs = {
            pod: parse_cpu(
                core_v1.read_namespaced_pod(pod, stack.namespace).spec.containers[0].resources.limits["cpu"]
            )
            / 1000
            for pod in MANAGED
        }
        return all(limits.get(pod) == pytest.approx(spec) for pod, spec in specs.items())

    wait_for(limits_match_specs, timeout=20, interval=0.5, message="agent's limit series = pod specs")
    node = {
        n: v for n, labels, v in rows if n.startswith("mbcas_agent_node_") and labels == {"node": stack.node}
    }
    assert node["mbcas_agent_node_limits_cores"] == pytest.approx(
        sum(pods_with(rows, "mbcas_agent_pod_allocation_cores").values()), abs=0.002
    )
    assert node["mbcas_agent_node_limit_bound_ratio"] == pytest.approx(
        node["mbcas_agent_node_limits_cores"] / node["mbcas_agent_node_limit_bound_cores"]
    )
    assert 0 < node["mbcas_agent_node_limit_bound_ratio"] <= 1.0 + 1e-9

    controller = samples(scrape(stack.controller_url))
    counted = {
        (labels["node"], labels["phase"]): v
        for n, labels, v in controller
        if n == "mbcas_controller_allocations"
    }
    assert counted.get((stack.node, "Applied"), 0) >= 1

    core_v1.delete_namespaced_pod("calm", stack.namespace, body={"gracePeriodSeconds": 0})
    gone = wait_scrape(
        stack.agent_url,
        lambda t: all(labels.get("pod") != "calm" for _, labels, _ in samples(t)),
        "the deleted pod's series to vanish",
    )
    assert "busy" in pods_with(samples(gone), "mbcas_agent_pod_usage_cores")
