"""Where ``mbcas top`` gets the agents' numbers: their ``/metrics``, scraped and parsed.

:func:`parse_agent_metrics` reads an agent's exposition text into its node and one
:class:`PodSignals` per pod (demand, usage, throttled-period ratio, PSI ``some``/``full`` over
its last tick; series in docs/metrics.md). A :class:`MetricsSource` scrapes a set of agents into
:class:`AgentScrape` results: :class:`PodProxySource` finds each node's agent pod by label and
reads it through the apiserver's pod proxy (the default of ``mbcas top``), :class:`UrlSource`
reads given URLs (e.g. ``kubectl port-forward`` ones), :class:`FunctionSource` an in-process
agent (``mbcas demo``). A scrape never raises for an unreachable agent, a denied proxy, a
timeout or unparsable text: its :attr:`AgentScrape.error` says why.
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from mbcas.kube.client import Kube
from mbcas.kube.errors import KubeError

__all__ = [
    "DEFAULT_AGENT_SELECTOR",
    "AgentScrape",
    "FunctionSource",
    "MetricsSource",
    "PodKey",
    "PodProxySource",
    "PodSignals",
    "UrlSource",
    "parse_agent_metrics",
]

#: The chart's agent pod labels.
DEFAULT_AGENT_SELECTOR = "app.kubernetes.io/part-of=mbcas,app.kubernetes.io/component=agent"
DEFAULT_AGENT_PORT = 9100
_SCRAPE_TIMEOUT = (3.0, 5.0)

# Agent series -> PodSignals field (labels namespace, pod); see docs/metrics.md.
_POD_SERIES = {
    "mbcas_agent_pod_demand_cores": "demand_cores",
    "mbcas_agent_pod_usage_cores": "usage_cores",
    "mbcas_agent_pod_throttled_ratio": "throttled_ratio",
    "mbcas_agent_pod_psi_some_ratio": "psi_some_ratio",
    "mbcas_agent_pod_psi_full_ratio": "psi_full_ratio",
}
_NODE_SERIES = "mbcas_agent_last_tick_timestamp_seconds"

PodKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PodSignals:
    """One pod's numbers from its agent's last tick (``None``: not exported this tick)."""

    demand_cores: float | None = None
    usage_cores: float | None = None
    throttled_ratio: float | None = None
    psi_some_ratio: float | None = None
    psi_full_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class AgentScrape:
    """What one agent's ``/metrics`` gave (or why it gave nothing)."""

    source: str
    node: str | None = None
    pods: Mapping[PodKey, PodSignals] = field(default_factory=dict)
    error: str | None = None


def parse_agent_metrics(text: str) -> tuple[str | None, dict[PodKey, PodSignals]]:
    """The agent's node and per-pod signals from its exposition text.

    Raises:
        ValueError: the text is not in the Prometheus text format.
    """
    from prometheus_client.parser import text_string_to_metric_families

    node: str | None = None
    values: dict[PodKey, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            attr = _POD_SERIES.get(sample.name)
            if attr is not None and math.isfinite(sample.value):
                key = (sample.labels.get("namespace", ""), sample.labels.get("pod", ""))
                values.setdefault(key, {})[attr] = float(sample.value)
            elif sample.name == _NODE_SERIES:
                node = sample.labels.get("node") or node
    return node, {key: PodSignals(**fields) for key, fields in values.items()}


def _scrape_text(source: str, fetch: Callable[[], str], node: str | None = None) -> AgentScrape:
    try:
        text = fetch()
        found, pods = parse_agent_metrics(text)
    except (KubeError, OSError, ValueError) as exc:
        return AgentScrape(source, node, error=str(exc) or type(exc).__name__)
    return AgentScrape(source, found or node, pods)


class MetricsSource(Protocol):
    """Where ``top`` gets agent metrics; ``nodes`` narrows the agents to ask (``None``: all)."""

    def scrape(self, nodes: Collection[str] | None) -> list[AgentScrape]: ...


class PodProxySource:
    """Each node's agent pod, through the apiserver's pod proxy (see module docs)."""

    def __init__(
        self,
        kube: Kube,
        *,
        selector: str = DEFAULT_AGENT_SELECTOR,
        namespace: str | None = None,
        timeout: tuple[float, float] = _SCRAPE_TIMEOUT,
    ) -> None:
        self.kube = kube
        self.selector = selector
        self.namespace = namespace
        self.timeout = timeout

    def agents(self) -> list[tuple[str, str, str, int]]:
        """The running agent pods as (namespace, pod, node, metrics port)."""
        path = f"/api/v1/namespaces/{self.namespace}/pods" if self.namespace else "/api/v1/pods"
        doc = self.kube.request_json(
            "GET", path, what="find the MBCAS agent pods", query={"labelSelector": self.selector}
        )
        found = []
        for body in doc.get("items") or []:
            meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
            if status.get("phase") != "Running" or not spec.get("nodeName"):
                continue
            port = next(
                (
                    int(p["containerPort"])
                    for c in spec.get("containers") or []
                    for p in c.get("ports") or []
                    if p.get("name") == "metrics" and p.get("containerPort")
                ),
                DEFAULT_AGENT_PORT,
            )
            found.append((str(meta.get("namespace")), str(meta.get("name")), str(spec["nodeName"]), port))
        return found

    def scrape(self, nodes: Collection[str] | None) -> list[AgentScrape]:
        try:
            agents = self.agents()
        except KubeError as exc:
            hint = "" if self.namespace else " (try --agent-namespace, e.g. mbcas-system)"
            return [AgentScrape("pod-proxy", error=f"cannot list the agent pods: {exc}{hint}")]
        if not agents:
            where = f"namespace {self.namespace}" if self.namespace else "any namespace"
            return [
                AgentScrape("pod-proxy", error=f"no running agent pod matches {self.selector!r} in {where}")
            ]
        if nodes is not None:
            agents = [a for a in agents if a[2] in nodes]

        def one(agent: tuple[str, str, str, int]) -> AgentScrape:
            ns, pod, node, port = agent
            path = f"/api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy/metrics"
            return _scrape_text(
                f"pod-proxy {ns}/{pod}",
                lambda: self.kube.request_text(
                    path, what=f"scrape agent {ns}/{pod} through the apiserver", timeout=self.timeout
                ),
                node,
            )

        if not agents:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(agents))) as pool:
            return list(pool.map(one, agents))


class UrlSource:
    """Agents' ``/metrics`` at given URLs (e.g. ``kubectl port-forward`` ones)."""

    def __init__(self, urls: Sequence[str], timeout: float = 5.0) -> None:
        self.urls = tuple(urls)
        self.timeout = timeout

    def _get(self, url: str) -> str:
        with urllib.request.urlopen(url, timeout=self.timeout) as resp:
            body: bytes = resp.read()
        return body.decode("utf-8", errors="replace")

    def scrape(self, nodes: Collection[str] | None) -> list[AgentScrape]:
        scrapes = [_scrape_text(url, partial(self._get, url)) for url in self.urls]
        return [s for s in scrapes if nodes is None or s.node is None or s.node in nodes]


class FunctionSource:
    """An in-process agent's registry (``mbcas demo``): ``render`` returns its exposition."""

    def __init__(self, render: Callable[[], bytes], name: str = "in-process agent") -> None:
        self.render = render
        self.name = name

    def scrape(self, nodes: Collection[str] | None) -> list[AgentScrape]:
        return [_scrape_text(self.name, lambda: self.render().decode())]
