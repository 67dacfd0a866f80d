"""All Prometheus metrics of the controller, on a registry of their own per controller.

Each :class:`ControllerMetrics` owns a fresh ``CollectorRegistry``, so several controllers in
one process (tests, or a demo) never collide on duplicate registration, and ``/metrics`` of one
controller shows only its own numbers.

- ``mbcas_controller_build_info{version}`` — always 1;
- ``mbcas_controller_resizes_total{result}`` — patches sent (``applied``, ``capped``) and failed
  attempts (``conflict``, ``invalid``, ``error``);
- ``mbcas_controller_refusals_total{reason}`` — allocations refused (``GuaranteedPod``,
  ``UIDMismatch``, ``Stale``, ``Infeasible`` ...);
- ``mbcas_controller_apply_latency_seconds`` — from the controller seeing a new allocation
  generation to the pod status reporting it applied;
- ``mbcas_controller_reconcile_seconds`` — time per reconcile;
- ``mbcas_controller_queue_depth``, ``mbcas_controller_leader`` — gauges;
- ``mbcas_controller_allocations{node,phase,reason}`` — the PodAllocations this replica's cache
  holds, by the node they are for, their status phase and the reason of their ``Applied``
  condition (e.g. ``Stale``); counted at scrape time from the cache (:meth:`track_allocations`),
  so a combination no allocation has any more simply disappears. Every replica watches, so every
  replica reports the same numbers: aggregate with ``max``, not ``sum``.

docs/metrics.md lists every series of the agent and the controller.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mbcas import __version__

__all__ = ["ControllerMetrics", "applied_condition_reason"]

_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

AllocationSource = Callable[[], Iterable[Mapping[str, Any]]]


def applied_condition_reason(status: Mapping[str, Any]) -> str:
    """The reason of a PodAllocation status's ``Applied`` condition (``""`` without one)."""
    for cond in status.get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == "Applied":
            return str(cond.get("reason") or "")
    return ""


class _AllocationCollector(Collector):
    """Counts the cached PodAllocations by node, phase and ``Applied`` reason at scrape time."""

    def __init__(self) -> None:
        self.source: AllocationSource | None = None

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "mbcas_controller_allocations",
            "PodAllocations known to this replica by node, status phase and Applied-condition reason",
            labels=["node", "phase", "reason"],
        )
        source = self.source
        if source is not None:
            tally: Tally[tuple[str, str, str]] = Tally()
            for body in source():
                spec = body.get("spec") or {}
                status = body.get("status") or {}
                tally[
                    (
                        str(spec.get("nodeName") or ""),
                        str(status.get("phase") or "Pending"),
                        applied_condition_reason(status),
                    )
                ] += 1
            for labels, count in sorted(tally.items()):
                family.add_metric(list(labels), float(count))
        yield family


class ControllerMetrics:
    """The controller's metrics on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        Gauge(
            "mbcas_controller_build_info",
            "MBCAS controller version (always 1)",
            ["version"],
            registry=self.registry,
        ).labels(__version__).set(1)
        self.resizes = Counter(
            "mbcas_controller_resizes", "Resize attempts by result", ["result"], registry=self.registry
        )
        self.refusals = Counter(
            "mbcas_controller_refusals", "Allocations refused, by reason", ["reason"], registry=self.registry
        )
        self.apply_latency = Histogram(
            "mbcas_controller_apply_latency_seconds",
            "From a new PodAllocation generation to the pod reporting the limit applied",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "mbcas_controller_reconcile_seconds", "Time spent per reconcile", registry=self.registry
        )
        self.queue_depth = Gauge(
            "mbcas_controller_queue_depth", "Allocations waiting", registry=self.registry
        )
        self.leader = Gauge("mbcas_controller_leader", "1 when this replica acts", registry=self.registry)
        self._allocations = _AllocationCollector()
        self.registry.register(self._allocations)

    def track_allocations(self, source: AllocationSource) -> None:
        """Count ``source()`` (PodAllocation bodies: the controller's cache) at every scrape in
        ``mbcas_controller_allocations``."""
        self._allocations.source = source

    def render(self) -> bytes:
        """The text exposition format of this registry."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0") -> Any:
        """Serve ``/metrics`` on ``addr:port`` in a thread; returns the server (call ``shutdown()``)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
