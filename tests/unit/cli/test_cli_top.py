"""``mbcas top`` without a cluster: parsing an agent's exposition, the pod-proxy source's choice of
agents and its failures, the table and the JSON shape.

Behaviours: per-pod signals come from the agent's series by (namespace, pod) and the node from its
node series; unknown values stay ``None`` (never 0); the pod-proxy source scrapes only the agents
of the nodes asked for, on the container port named ``metrics`` (9100 when unnamed), through the
apiserver path ``/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/metrics``, and turns a failed
list or scrape into an error entry instead of raising; the table marks what is unknown with
``-`` and the JSON keeps ``null``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mbcas.agent.metrics import AgentMetrics
from mbcas.cli import top, top_metrics
from mbcas.demand import Signals
from mbcas.kube.errors import ApiUnavailableError, ForbiddenError
from mbcas.policy.node import NodeInputs, replay
from mbcas.policy.node_config import NodePolicy

# QoS codes of the planner's arrays (0 Guaranteed, 1 Burstable).
BURSTABLE = 1


def agent_text(node: str = "n1") -> str:
    metrics = AgentMetrics()
    inputs = NodeInputs.build(
        ["u1", "u2"],
        [BURSTABLE] * 2,
        request=[0.1, 0.1],
        limit=[0.5, 0.5],
        signals=Signals.build(
            [0.3, 0.1],
            throttled_ratio=[0.25, float("nan")],
            psi_some=[0.2, float("nan")],
            psi_full=[0.1, float("nan")],
        ),
    )
    metrics.observe_plan(
        replay(NodePolicy(), 2.0, 0.2, inputs), [("shop", "web"), ("shop", "api")], node=node
    )
    return metrics.render().decode()


def test_parse_agent_metrics_reads_node_and_pod_signals() -> None:
    node, pods = top_metrics.parse_agent_metrics(agent_text("node-9"))
    assert node == "node-9"
    web, api = pods[("shop", "web")], pods[("shop", "api")]
    assert web.usage_cores == pytest.approx(0.3) and web.throttled_ratio == pytest.approx(0.25)
    assert web.psi_some_ratio == pytest.approx(0.2) and web.psi_full_ratio == pytest.approx(0.1)
    assert web.demand_cores is not None and web.demand_cores > 0
    assert api.usage_cores == pytest.approx(0.1)
    assert api.throttled_ratio is None and api.psi_full_ratio is None  # unknown, not 0
    with pytest.raises(ValueError):
        top_metrics.parse_agent_metrics("this is { not prometheus")


class ProxyKube:
    """Answers the agent-pod list and the proxy GETs; records the paths."""

    def __init__(self, pods: list[dict[str, Any]], texts: dict[str, str | Exception]) -> None:
        self.pods = pods
        self.texts = texts
        self.paths: list[str] = []
        self.list_error: Exception | None = None

    def request_json(self, method: str, path: str, *, what: str, query: Any = None, **_: Any) -> Any:
        self.paths.append(path)
        if self.list_error is not None:
            raise self.list_error
        assert query == {"labelSelector": top_metrics.DEFAULT_AGENT_SELECTOR}
        return {"items": self.pods}

    def request_text(self, path: str, *, what: str, **_: Any) -> str:
        self.paths.append(path)
        answer = self.texts[path]
        if isinstance(answer, Exception):
            raise answer
        return answer


def agent_pod(name: str, node: str, *, port: int | None = 9200, phase: str = "Running") -> dict[str, Any]:
    ports = [] if port is None else [{"name": "metrics", "containerPort": port}]
    return {
        "metadata": {"namespace": "mbcas-system", "name": name},
        "spec": {"nodeName": node, "containers": [{"name": "agent", "ports": ports}]},
        "status": {"phase": phase},
    }


def test_pod_proxy_scrapes_only_the_asked_nodes_agents_on_their_metrics_port() -> None:
    kube = ProxyKube(
        [agent_pod("a1", "n1"), agent_pod("a2", "n2", port=None), agent_pod("a3", "n3", phase="Pending")],
        {
            "/api/v1/namespaces/mbcas-system/pods/a1:9200/proxy/metrics": agent_text("n1"),
            "/api/v1/namespaces/mbcas-system/pods/a2:9100/proxy/metrics": ForbiddenError("no pods/proxy"),
        },
    )
    source = top_metrics.PodProxySource(kube)  # type: ignore[arg-type]
    scrapes = source.scrape(["n1", "n2", "n3"])
    assert kube.paths[0] == "/api/v1/pods"
    by_node = {s.node: s for s in scrapes}
    assert set(by_node) == {"n1", "n2"}  # n3's agent is not running
    assert by_node["n1"].error is None and ("shop", "web") in by_node["n1"].pods
    assert by_node["n1"].source == "pod-proxy mbcas-system/a1"
    assert "no pods/proxy" in (by_node["n2"].error or "") and not by_node["n2"].pods
    kube.paths.clear()
    assert [s.node for s in source.scrape(["n1"])] == ["n1"]
    assert kube.paths == ["/api/v1/pods", "/api/v1/namespaces/mbcas-system/pods/a1:9200/proxy/metrics"]


def test_pod_proxy_failures_become_notes_not_errors() -> None:
    kube = ProxyKube([], {})
    source = top_metrics.PodProxySource(kube, namespace="mbcas-system")  # type: ignore[arg-type]
    [none] = source.scrape(None)
    assert "no running agent pod matches" in (none.error or "") and "namespace mbcas-system" in none.error
    assert kube.paths == ["/api/v1/namespaces/mbcas-system/pods"]
    kube.list_error = ApiUnavailableError("apiserver unreachable")
    [failed] = source.scrape(None)
    assert "cannot list the agent pods" in (failed.error or "")


def snapshot(signals: top_metrics.PodSignals | None) -> top.TopSnapshot:
    row = top.TopRow(
        namespace="shop", pod="web", node="n1", qos="Burstable", mode="enforce", phase="Refused",
        phase_reason="Stale", reason="x" * 80, decided_at="2025-01-01T00:00:00Z", request_mcpu=100,
        limit_mcpu=500, applied_mcpu=None, desired_mcpu=700, signals=signals,
    )  # fmt: skip
    return top.TopSnapshot(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), (row,), (), signals is not None)


def test_table_marks_unknowns_and_shortens_the_reason_unless_wide() -> None:
    text = top.render_table(snapshot(None))
    header, line = text.splitlines()
    assert header.split() == [
        "POD", "NODE", "DEMAND", "USAGE", "DESIRED", "APPLIED", "THROTTLED", "PSI-SOME", "PSI-FULL",
        "PHASE", "REASON",
    ]  # fmt: skip
    assert line.split()[:10] == ["web", "n1", "-", "-", "700m", "-", "-", "-", "-", "Refused/Stale"]
    assert line.endswith("...") and "x" * 80 not in line
    wide = top.render_table(
        snapshot(top_metrics.PodSignals(0.5, 0.4, 0.25, 0.1, 0.05)), namespaces=True, wide=True
    )
    header, line = wide.splitlines()
    assert header.split()[0] == "NAMESPACE" and header.split()[-4:] == ["REQUEST", "LIMIT", "MODE", "QOS"]
    assert "x" * 80 in line and "25%" in line and "0.40" in line
    assert "NODE" not in top.render_table(snapshot(None), nodes=False)


def test_json_shape() -> None:
    doc = top.to_json(snapshot(top_metrics.PodSignals(usage_cores=0.4)))
    assert doc["time"] == "2025-01-01T00:00:00Z"
    assert doc["metrics"] == {"enabled": True, "agents": []}
    [pod] = doc["pods"]
    assert pod == {
        "namespace": "shop", "pod": "web", "node": "n1", "qos": "Burstable", "mode": "enforce",
        "phase": "Refused", "phaseReason": "Stale", "reason": "x" * 80, "decidedAt": "2025-01-01T00:00:00Z",
        "request": "100m", "limit": "500m", "applied": None, "desired": "700m", "demandCores": None,
        "usageCores": 0.4, "throttledRatio": None, "psiSomeRatio": None, "psiFullRatio": None,
    }  # fmt: skip
