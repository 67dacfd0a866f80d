"""The chart's optional monitoring: Grafana dashboard ConfigMap, PrometheusRule, ServiceMonitors.

Behaviours: nothing of it renders by default (MBCAS never needs Prometheus); enabled, the dashboard
ConfigMap carries the sidecar label and exactly the JSON of deploy/grafana/ (one copy: the chart
reads it with ``.Files.Get``); every dashboard query and alert expression parses and type-checks
as PromQL and reads only series the agent's and controller's registries declare (the same check
against a running agent and controller scraped over HTTP is in
tests/integration/test_observability.py); the rules pass promtool-style checks (names, durations,
severity, summary and description) and take their thresholds from values; the ServiceMonitors keep
the pod series' own labels and give agent series their node; deploy/manifests/monitoring/ holds
exactly these objects, and the default manifests none of them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from mbcas.agent.metrics import AgentMetrics
from mbcas.controller.metrics import ControllerMetrics
from mbcas.demand import Signals
from mbcas.local import helm
from mbcas.policy.node import NodeInputs, replay
from mbcas.policy.node_config import NodePolicy
from observability import (
    dashboard_queries,
    exported_series,
    render_monitoring,
    rule_expressions,
    series_names,
)

ROOT = Path(__file__).resolve().parents[3]
PATHS = helm.repo_paths(ROOT)
DASHBOARD = ROOT / "deploy" / "grafana" / "mbcas.json"
Docs = list[dict[str, Any]]

_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# QoS codes of the planner's arrays (0 Guaranteed, 1 Burstable).
BURSTABLE = 1


def by_kind(docs: Docs, kind: str) -> Docs:
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture(scope="module")
def docs() -> Docs:
    return render_monitoring(PATHS)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


@pytest.fixture(scope="module")
def declared() -> set[str]:
    """Series the agent's and controller's registries declare, in-process."""
    agent = AgentMetrics()
    inputs = NodeInputs.build(["u1"], [BURSTABLE], request=[0.1], limit=[0.5], signals=Signals.build([0.2]))
    agent.observe_plan(replay(NodePolicy(), 2.0, 0.2, inputs), [("ns", "p")], node="n1")
    return exported_series(agent.render().decode()) | exported_series(ControllerMetrics().render().decode())


def test_nothing_of_it_renders_by_default() -> None:
    text = helm.template(paths=PATHS, include_crds=False)
    docs = [d for d in yaml.safe_load_all(text) if d]
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"PrometheusRule", "ServiceMonitor"}
    assert not any("grafana_dashboard" in (d["metadata"].get("labels") or {}) for d in docs)
    manifest = PATHS.manifests.read_text()
    assert "PrometheusRule" not in manifest and "grafana_dashboard" not in manifest


def test_dashboard_configmap_has_the_sidecar_label_and_the_one_dashboard_json(docs: Docs) -> None:
    [cm] = [d for d in by_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == helm.DEFAULT_NAMESPACE
    assert cm["data"]["mbcas.json"] == DASHBOARD.read_text().strip()
    # One copy: deploy/grafana/mbcas.json is the chart's file (a symlink into the chart).
    assert DASHBOARD.resolve() == (PATHS.chart / "dashboards" / "mbcas.json").resolve()
    other = render_monitoring(
        PATHS, "dashboards.namespace=monitoring", "dashboards.annotations.grafana_folder=MBCAS"
    )
    [cm] = [d for d in by_kind(other, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "MBCAS"}


def test_dashboard_is_wellformed_and_covers_the_story(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "mbcas-overview" and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    assert {"node", "namespace", "pod"} <= set(variables)
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"] and p.get("description"), p["title"]
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for series in (
        "mbcas_agent_node_capacity_cores",  # per node: shareable ...
        "mbcas_agent_node_limits_cores",  # ... vs limits ...
        "mbcas_agent_node_usage_cores",  # ... vs usage
        "mbcas_agent_node_limit_bound_ratio",
        "mbcas_agent_pod_demand_cores",  # per pod: demand, allocation, applied limit, throttling
        "mbcas_agent_pod_allocation_cores",
        "mbcas_agent_pod_limit_cores",
        "mbcas_agent_pod_throttled_ratio",
        "mbcas_agent_pod_psi_full_ratio",
        "mbcas_controller_resizes_total",  # resize rate and refusals
        "mbcas_controller_refusals_total",
        "mbcas_agent_last_tick_timestamp_seconds",  # health
        "mbcas_controller_leader",
    ):
        assert series in exprs, series


def test_every_dashboard_query_parses_and_reads_declared_series(
    dashboard: dict[str, Any], declared: set[str]
) -> None:
    queries = list(dashboard_queries(dashboard))
    assert len(queries) > 25
    for where, expr in queries:
        names = series_names(expr)
        assert names, f"{where}: reads no series: {expr}"
        assert names <= declared, f"{where}: {sorted(names - declared)} not exported by MBCAS"


def test_alert_rules_pass_promtool_style_checks(docs: Docs, declared: set[str]) -> None:
    [rule_doc] = by_kind(docs, "PrometheusRule")
    assert rule_doc["apiVersion"] == "monitoring.coreos.com/v1"
    rules = [r for g in rule_doc["spec"]["groups"] for r in g["rules"]]
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    assert {
        "MBCASAgentMissing",
        "MBCASAgentsAbsent",
        "MBCASAgentStalled",
        "MBCASControllerNoLeader",
        "MBCASResizesFailing",
        "MBCASRefusalsHigh",
        "MBCASAllocationsStale",
        "MBCASNodeAtLimitBound",
    } <= set(names)
    for rule in rules:
        name = rule["alert"]
        assert _NAME.match(name), name
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, name
        assert promql_parser.parse_duration(rule["for"]).total_seconds() > 0, name
        assert rule["labels"]["severity"] == "warning", name
        assert all(_NAME.match(k) for k in rule["labels"]), name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        # Go templates in annotations stay for Prometheus (not eaten by Helm).
        text = " ".join(rule["annotations"].values())
        assert text.count("{{") == text.count("}}"), name
    for name, expr in rule_expressions(rule_doc):
        used = series_names(expr)
        assert used and used <= declared, f"{name}: {sorted(used - declared)} not exported by MBCAS"


def test_alert_thresholds_labels_and_durations_come_from_values() -> None:
    docs = render_monitoring(
        PATHS,
        "alerts.limitBoundRatio=0.9",
        "alerts.for.limitBound=2h",
        "alerts.severity=critical",
        "alerts.labels.release=kube-prometheus-stack",
        "alerts.additionalLabels.team=platform",
    )
    [rule_doc] = by_kind(docs, "PrometheusRule")
    assert rule_doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = {r["alert"]: r for g in rule_doc["spec"]["groups"] for r in g["rules"]}
    bound = rules["MBCASNodeAtLimitBound"]
    assert bound["expr"].endswith(">= 0.9") and bound["for"] == "2h"
    assert all(r["labels"] == {"severity": "critical", "team": "platform"} for r in rules.values())


def test_servicemonitors_keep_pod_labels_and_give_agent_series_their_node(docs: Docs) -> None:
    monitors = {d["metadata"]["name"]: d for d in by_kind(docs, "ServiceMonitor")}
    assert set(monitors) == {"mbcas-agent", "mbcas-controller"}
    for monitor in monitors.values():
        assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    [relabel] = monitors["mbcas-agent"]["spec"]["endpoints"][0]["relabelings"]
    assert relabel == {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}
    assert "relabelings" not in monitors["mbcas-controller"]["spec"]["endpoints"][0]


def test_monitoring_manifests_hold_exactly_the_add_ons(docs: Docs) -> None:
    assert PATHS.monitoring_manifests.parent.parent == PATHS.manifests.parent  # a subdirectory
    shipped = [d for d in yaml.safe_load_all(PATHS.monitoring_manifests.read_text()) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in shipped) == [
        ("ConfigMap", "mbcas-dashboard"),
        ("PrometheusRule", "mbcas"),
        ("ServiceMonitor", "mbcas-agent"),
        ("ServiceMonitor", "mbcas-controller"),
    ]
    assert {d["metadata"]["namespace"] for d in shipped} == {helm.DEFAULT_NAMESPACE}
    assert helm.stale_files(paths=PATHS) == [], "run 'make manifests'"


def test_series_names_rejects_what_promtool_rejects() -> None:
    assert series_names('sum by (node) (rate(a_total{x="y"}[5m])) / on (node) b') == {"a_total", "b"}
    for bad in ("rate(a)", "nosuchfunc(a)", "sum(a", '{x="y"}'):
        with pytest.raises(ValueError):
            series_names(bad)


def test_docs_list_every_series_every_panel_and_every_alert(dashboard: dict[str, Any], docs: Docs) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = (ROOT / "docs" / "metrics.md").read_text()
    agent, controller = AgentMetrics(), ControllerMetrics()
    for registry in (agent, controller):
        for family in text_string_to_metric_families(registry.render().decode()):
            name = family.name + ("_total" if family.type == "counter" else "")
            if name.endswith("_created"):  # the client library's creation timestamps
                continue
            assert f"`{name}`" in text, f"docs/metrics.md does not list {name}"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["title"].split(" per pod")[0] in text, f"panel {panel['title']!r} not described"
    [rule_doc] = by_kind(docs, "PrometheusRule")
    for name, _ in rule_expressions(rule_doc):
        assert f"`{name}`" in text, f"alert {name} not described"
