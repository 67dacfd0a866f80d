"""All Prometheus metrics of the controller, on a registry of their own per controller.

Each :class:`ControllerMetrics` owns a fresh ``CollectorRegistry``, so several controllers in
one process (tests, or a demo) never collide on duplicate registration, and ``/metrics`` of one
controller shows only its own numbers.

- ``mbcas_controller_resizes_total{result}`` — patches sent (``applied``, ``capped``) and failed
  attempts (``conflict``, ``invalid``, ``error``);
- ``mbcas_controller_refusals_total{reason}`` — allocations refused (``GuaranteedPod``,
  ``UIDMismatch``, ``Stale``, ``Infeasible`` ...);
- ``mbcas_controller_apply_latency_seconds`` — from the controller seeing a new allocation
  generation to the pod status reporting it applied;
- ``mbcas_controller_reconcile_seconds`` — time per reconcile;
- ``mbcas_controller_queue_depth``, ``mbcas_controller_leader`` — gauges.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ControllerMetrics"]

_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class ControllerMetrics:
    """The controller's metrics on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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

    def render(self) -> bytes:
        """The text exposition format of this registry."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0") -> Any:
        """Serve ``/metrics`` on ``addr:port`` in a thread; returns the server (call ``shutdown()``)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
