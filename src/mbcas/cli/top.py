"""``mbcas top``: the demo's live table on any cluster (also ``kubectl mbcas top``).

::

    mbcas top [-n NS | -A] [--node NODE] [-w [--interval 2]] [-o table|wide|json]
              [--no-metrics | --metrics-url URL ...] [--agent-selector SEL] [--agent-namespace NS]

One row per PodAllocation (a pod MBCAS manages in ``enforce`` or ``recommend`` mode). The table
comes from two places:

1. **PodAllocations and pods** (always): the agent's decision (``DESIRED``), the CPU limit the
   kubelet reports applied in the pod's status (``APPLIED``; the controller's record
   ``status.appliedCPULimit`` while the pod is not readable), the controller's ``PHASE`` and the
   agent's ``REASON``, as the API holds them: no raw metric is in the custom resource, and the
   reason is shown as written, never parsed.
2. **The agents' ``/metrics``** (when reachable; :mod:`mbcas.cli.top_metrics`): the demand
   estimate, usage, throttled-period ratio and PSI ``some``/``full`` of each pod over the agent's
   last tick. By default each node's agent pod (found with ``--agent-selector``, the chart's pod
   labels) is scraped through the apiserver's pod proxy,
   ``GET /api/v1/namespaces/<ns>/pods/<agent-pod>:<port>/proxy/metrics`` (``<port>`` is the
   container port named ``metrics``), which works wherever ``kubectl`` works and needs the RBAC
   verb ``get`` on ``pods/proxy`` in the agents' namespace. ``--metrics-url`` scrapes given URLs
   instead (e.g. after ``kubectl port-forward``); ``--no-metrics`` skips it. A missing agent, a
   denied proxy or a timeout never fails the command: those columns show ``-`` and a note says
   why.

``-o json`` prints one document (with ``--watch``, one compact document per line per refresh)::

    {
      "time": "2025-01-01T12:00:00Z",
      "metrics": {"enabled": true,
                  "agents": [{"source": "pod-proxy mbcas-system/mbcas-agent-x7k2p", "node": "node-1",
                              "pods": 12, "error": null}]},
      "pods": [{"namespace": "shop", "pod": "web-0", "node": "node-1", "qos": "Burstable",
                "mode": "enforce", "phase": "Applied", "phaseReason": "Applied",
                "reason": "burst envelope 0.82 cores ...", "decidedAt": "2025-01-01T11:59:58Z",
                "request": "250m", "limit": "900m", "applied": "900m", "desired": "900m",
                "demandCores": 0.71, "usageCores": 0.68, "throttledRatio": 0.02,
                "psiSomeRatio": 0.05, "psiFullRatio": 0.01}]
    }

CPU quantities are Kubernetes quantity strings (``null`` when unset or unknown); ``*Cores`` and
``*Ratio`` come from the agent's metrics (``null`` when its agent was not reached or the pod had
no sample). ``phaseReason`` is the reason of the allocation's ``Applied`` condition (e.g.
``Stale``, ``Infeasible``); ``pods`` is sorted by namespace and pod name.

``mbcas demo`` prints this table, with its in-process agent as the metrics source.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from mbcas.api.models import GROUP, PLURAL, VERSION
from mbcas.cli.kubectl_cmds import EXIT_OK, format_table, kube_command, kube_flags
from mbcas.cli.top_metrics import (
    DEFAULT_AGENT_SELECTOR,
    AgentScrape,
    MetricsSource,
    PodKey,
    PodProxySource,
    PodSignals,
    UrlSource,
)
from mbcas.controller.metrics import applied_condition_reason
from mbcas.core.units import QuantityError, format_cpu, parse_cpu
from mbcas.kube.client import Kube
from mbcas.kube.discovery import check_crd_installed
from mbcas.kube.errors import CrdNotInstalledError
from mbcas.kube.podview import PodView

__all__ = ["TopRow", "TopSnapshot", "collect", "register", "render_table", "to_json"]

_REASON_WIDTH = 60


# ------------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class TopRow:
    """One PodAllocation with its pod and (when reached) its agent's numbers."""

    namespace: str
    pod: str
    node: str | None
    qos: str | None
    mode: str
    phase: str
    phase_reason: str
    reason: str
    decided_at: str | None
    request_mcpu: int | None
    limit_mcpu: int | None
    applied_mcpu: int | None
    desired_mcpu: int | None
    signals: PodSignals | None


@dataclass(frozen=True, slots=True)
class TopSnapshot:
    """One refresh of ``mbcas top``."""

    taken_at: dt.datetime
    rows: tuple[TopRow, ...]
    agents: tuple[AgentScrape, ...]
    metrics_enabled: bool

    def row(self, namespace: str, pod: str) -> TopRow | None:
        return next((r for r in self.rows if r.namespace == namespace and r.pod == pod), None)

    @property
    def metrics_notes(self) -> list[str]:
        """Why some columns may be empty (one line per agent that failed)."""
        return [f"{a.source}: {a.error}" for a in self.agents if a.error]


def _quantity(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return parse_cpu(value)
    except (QuantityError, ValueError, TypeError):
        return None


def _items(kube: Kube, path: str, what: str, query: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    doc = kube.request_json("GET", path, what=what, query=query)
    return list((doc or {}).get("items") or [])


def collect(
    kube: Kube,
    *,
    namespace: str | None,
    node: str | None = None,
    metrics: MetricsSource | None = None,
) -> TopSnapshot:
    """Read PodAllocations and pods (``namespace=None``: all namespaces; ``node``: only that
    node) and, with a ``metrics`` source, the agents of the nodes they are on.

    Raises:
        CrdNotInstalledError: the PodAllocation CRD is not served.
        KubeError: listing PodAllocations or pods failed.
    """
    if not check_crd_installed(kube):
        raise CrdNotInstalledError(f"the {PLURAL}.{GROUP} CRD is not installed (mbcas check)")
    scope = f"/namespaces/{namespace}" if namespace else ""
    allocations = _items(kube, f"/apis/{GROUP}/{VERSION}{scope}/{PLURAL}", f"list {PLURAL}")
    if node:
        allocations = [a for a in allocations if (a.get("spec") or {}).get("nodeName") == node]
    query = {"fieldSelector": f"spec.nodeName={node}"} if node else None
    pods = {
        (view.namespace, view.name): view
        for view in (PodView.from_body(b) for b in _items(kube, f"/api/v1{scope}/pods", "list pods", query))
    }
    taken_at = dt.datetime.now(dt.UTC)
    partial: list[tuple[TopRow, PodKey]] = []
    for pa in allocations:
        meta, spec, status = pa.get("metadata") or {}, pa.get("spec") or {}, pa.get("status") or {}
        key = (str(meta.get("namespace", "")), str(spec.get("podName", "")))
        view = pods.get(key)
        if view is not None and view.uid != spec.get("podUID"):
            view = None  # a pod recreated under the same name is not the one decided for
        applied = view.applied_limit_mcpu() if view is not None else None
        row = TopRow(
            namespace=key[0],
            pod=key[1],
            node=(view.node_name if view is not None else None) or spec.get("nodeName"),
            qos=view.qos.value if view is not None else None,
            mode=str(spec.get("mode") or "enforce"),
            phase=str(status.get("phase") or "Pending"),
            phase_reason=applied_condition_reason(status),
            reason=str(spec.get("reason") or ""),
            decided_at=spec.get("decidedAt"),
            request_mcpu=view.cpu.request_mcpu if view is not None else None,
            limit_mcpu=view.cpu.limit_mcpu if view is not None else None,
            applied_mcpu=applied if applied is not None else _quantity(status.get("appliedCPULimit")),
            desired_mcpu=_quantity(spec.get("cpuLimit")),
            signals=None,
        )
        partial.append((row, key))
    agents: tuple[AgentScrape, ...] = ()
    if metrics is not None:
        nodes = {r.node for r, _ in partial if r.node}
        if node:
            nodes = {node}
        agents = tuple(metrics.scrape(sorted(nodes)) if nodes else ())
    signals: dict[PodKey, PodSignals] = {}
    for scrape in agents:
        signals.update(scrape.pods)
    rows = tuple(
        sorted(
            (_with_signals(row, signals.get(key)) for row, key in partial),
            key=lambda r: (r.namespace, r.pod),
        )
    )
    return TopSnapshot(taken_at, rows, agents, metrics is not None)


def _with_signals(row: TopRow, signals: PodSignals | None) -> TopRow:
    return row if signals is None else replace(row, signals=signals)


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _fmt_mcpu(value: int | None) -> str:
    return "-" if value is None else format_cpu(value)


def render_table(
    snapshot: TopSnapshot, *, namespaces: bool = False, nodes: bool = True, wide: bool = False
) -> str:
    """The table (``namespaces``: a NAMESPACE column; ``nodes``: a NODE column; ``wide``: request,
    limit, mode, QoS and the whole reason)."""
    headers = ["POD", "NODE", "DEMAND", "USAGE", "DESIRED", "APPLIED", "THROTTLED", "PSI-SOME", "PSI-FULL"]
    headers += ["PHASE", "REASON"]
    if not nodes:
        headers.remove("NODE")
    if namespaces:
        headers.insert(0, "NAMESPACE")
    if wide:
        headers += ["REQUEST", "LIMIT", "MODE", "QOS"]
    rows = []
    for r in snapshot.rows:
        s = r.signals or PodSignals()
        reason = r.reason if wide or len(r.reason) <= _REASON_WIDTH else r.reason[: _REASON_WIDTH - 3] + "..."
        phase = r.phase if not r.phase_reason or r.phase_reason == r.phase else f"{r.phase}/{r.phase_reason}"
        row = [r.pod, r.node or "-", _cores(s.demand_cores), _cores(s.usage_cores), _fmt_mcpu(r.desired_mcpu)]
        row += [_fmt_mcpu(r.applied_mcpu), _percent(s.throttled_ratio), _percent(s.psi_some_ratio)]
        row += [_percent(s.psi_full_ratio), phase, reason or "-"]
        if not nodes:
            del row[1]
        if namespaces:
            row.insert(0, r.namespace)
        if wide:
            row += [_fmt_mcpu(r.request_mcpu), _fmt_mcpu(r.limit_mcpu), r.mode, r.qos or "-"]
        rows.append(row)
    return format_table(headers, rows)


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_json(snapshot: TopSnapshot) -> dict[str, Any]:
    """The ``-o json`` document (shape in the module docs)."""

    def quantity(value: int | None) -> str | None:
        return None if value is None else format_cpu(value)

    pods = []
    for r in snapshot.rows:
        s = r.signals or PodSignals()
        pods.append(
            {
                "namespace": r.namespace,
                "pod": r.pod,
                "node": r.node,
                "qos": r.qos,
                "mode": r.mode,
                "phase": r.phase,
                "phaseReason": r.phase_reason or None,
                "reason": r.reason,
                "decidedAt": r.decided_at,
                "request": quantity(r.request_mcpu),
                "limit": quantity(r.limit_mcpu),
                "applied": quantity(r.applied_mcpu),
                "desired": quantity(r.desired_mcpu),
                "demandCores": s.demand_cores,
                "usageCores": s.usage_cores,
                "throttledRatio": s.throttled_ratio,
                "psiSomeRatio": s.psi_some_ratio,
                "psiFullRatio": s.psi_full_ratio,
            }
        )
    return {
        "time": _stamp(snapshot.taken_at),
        "metrics": {
            "enabled": snapshot.metrics_enabled,
            "agents": [
                {"source": a.source, "node": a.node, "pods": len(a.pods), "error": a.error}
                for a in snapshot.agents
            ],
        },
        "pods": pods,
    }


# ------------------------------------------------------------------------------- the command


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "top",
        help="live table of managed pods: decision, applied limit, phase, and usage/throttling/PSI",
        description=(
            "One row per PodAllocation: the agent's decision, the limit the kubelet applied, the "
            "controller's phase and the agent's reason, plus demand, usage, throttling and PSI from "
            "the agents' /metrics when they are reachable (through the apiserver's pod proxy by "
            "default). See docs/cli.md for the JSON shape."
        ),
    )
    kube_flags(p, output=False)
    p.add_argument("-o", "--output", choices=("table", "wide", "json"), default="table")
    p.add_argument("--node", help="only pods on this node (and only its agent is scraped)")
    p.add_argument("-w", "--watch", action="store_true", help="refresh until Ctrl-C")
    p.add_argument("--interval", type=float, default=2.0, help="refresh interval with --watch (seconds)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--no-metrics", action="store_true", help="PodAllocations and pods only")
    group.add_argument(
        "--metrics-url",
        action="append",
        default=[],
        metavar="URL",
        help="scrape this agent /metrics URL instead of the pod proxy (repeatable)",
    )
    p.add_argument(
        "--agent-selector", default=DEFAULT_AGENT_SELECTOR, help="label selector of the agent pods"
    )
    p.add_argument("--agent-namespace", default=None, help="namespace of the agent pods (default: any)")
    p.set_defaults(func=kube_command(cmd_top))


def metrics_source(args: argparse.Namespace, kube: Kube) -> MetricsSource | None:
    if args.no_metrics:
        return None
    if args.metrics_url:
        return UrlSource(args.metrics_url)
    return PodProxySource(kube, selector=args.agent_selector, namespace=args.agent_namespace)


def _print(snapshot: TopSnapshot, args: argparse.Namespace, *, watching: bool) -> None:
    if args.output == "json":
        doc = to_json(snapshot)
        print(json.dumps(doc, sort_keys=True) if watching else json.dumps(doc, indent=2, sort_keys=True))
        return
    body = (
        render_table(
            snapshot, namespaces=args.all_namespaces, nodes=not args.node, wide=args.output == "wide"
        )
        if snapshot.rows
        else "No resources found."
    )
    notes = [f"note: no usage/throttling/PSI from {n}" for n in snapshot.metrics_notes]
    if watching:
        if sys.stdout.isatty():
            print("\033[2J\033[H", end="")
        print(f"Every {args.interval:g}s: mbcas top    {snapshot.taken_at.astimezone():%H:%M:%S}\n")
        print("\n".join([body, *notes]), flush=True)
        return
    print(body)
    for note in notes:
        print(note, file=sys.stderr)


def cmd_top(args: argparse.Namespace, kube: Kube) -> int:
    if args.watch and not args.interval > 0:
        print("mbcas top: --interval must be > 0", file=sys.stderr)
        return 2
    namespace = None if args.all_namespaces else args.namespace
    source = metrics_source(args, kube)
    try:
        while True:
            snapshot = collect(kube, namespace=namespace, node=args.node, metrics=source)
            _print(snapshot, args, watching=args.watch)
            if not args.watch:
                return EXIT_OK
            time.sleep(args.interval)
    except KeyboardInterrupt:
        if args.watch:
            return EXIT_OK
        raise
