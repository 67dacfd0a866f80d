"""kopf wiring of the controller: every ``@kopf.on`` decorator lives here and delegates.

The handlers are thin: each takes what kopf hands it and calls a ``handle_<verb>_<thing>``
function, which feeds the :class:`~mbcas.controller.reconciler.Reconciler` found in kopf's
``memo``. What kopf does for us: the watch streams of PodAllocations, pods and nodes (list, watch,
reconnect), the cheap ``when=`` filter that ends the events of pods without an allocation before
anything parses them, the liveness endpoint with its probe, and the operator's lifecycle. What
stays hand-made, and why (docs/controller.md says more):

- the Lease elector (:mod:`mbcas.kube.lease`): kopf peering pauses operators of lower priority
  but is not leader election (no renew deadline, no single actor guaranteed);
- the delaying, de-duplicating work queue and the periodic re-check through it: kopf event
  handlers have no delayed requeue, and kopf's per-object timers always put a finalizer on every
  PodAllocation (hard-coded in kopf), which would make every deletion wait for a running
  controller and need write access to the agent's decisions;
- the login bridge: kopf's own login handlers read ``$KUBECONFIG``/``~/.kube/config`` or the
  process-global client configuration and cannot be told the controller's ``--kubeconfig`` and
  ``--context``; :func:`handle_login` hands kopf the credentials of the client built once here.

Run it with ``mbcas controller`` or, in-process (tests)::

    ctl = Controller(ControllerConfig(kubeconfig=..., health_port=0, metrics_port=0))
    ctl.start()          # kopf + workers in a background thread; waits until ready
    ...
    ctl.stop()

Several replicas may run: the Lease decides which one acts; kopf itself runs standalone (no
KopfPeering CRDs needed). ``/healthz`` on the health port is kopf's liveness endpoint, reporting
the probes below; ``/metrics`` on the metrics port is the controller's own Prometheus registry.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from mbcas.api.models import GROUP, PLURAL, VERSION
from mbcas.controller.config import ControllerConfig
from mbcas.controller.metrics import ControllerMetrics
from mbcas.controller.reconciler import Reconciler
from mbcas.kube.client import Kube, build_kube
from mbcas.kube.discovery import require_support
from mbcas.kube.lease import LeaderElector

__all__ = [
    "Controller",
    "handle_event_allocation",
    "handle_event_node",
    "handle_event_pod",
    "handle_login",
    "handle_probe",
    "handle_startup",
    "tracked_pod",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- handlers


def handle_startup(settings: Any) -> None:
    """Tune kopf: we post our own Events; quick reconnects; no handler-progress annotations."""
    settings.posting.enabled = False
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 70
    settings.watching.reconnect_backoff = 0.5
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 5


def handle_login(kube: Kube) -> kopf.ConnectionInfo:
    """kopf's connection from the once-built client's configuration (same kubeconfig, context and
    user). The token is read through the client's own accessor, so refreshed tokens (in-cluster
    bound tokens, exec and auth-provider plugins) are what kopf gets when it logs in again."""
    cfg: Any = kube.api_client.configuration
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    parts = str(header).split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return kopf.ConnectionInfo(
        server=str(cfg.host),
        ca_path=cfg.ssl_ca_cert or None,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        certificate_path=cfg.cert_file or None,
        private_key_path=cfg.key_file or None,
        scheme=scheme,
        token=token,
    )


def handle_event_allocation(reconciler: Reconciler, event: Mapping[str, Any]) -> None:
    reconciler.on_allocation(str(event.get("type")), event.get("object") or {})


def handle_event_pod(reconciler: Reconciler, event: Mapping[str, Any]) -> None:
    reconciler.on_pod(str(event.get("type")), event.get("object") or {})


def handle_event_node(reconciler: Reconciler, event: Mapping[str, Any]) -> None:
    reconciler.on_node(str(event.get("type")), event.get("object") or {})


def tracked_pod(reconciler: Reconciler, uid: str | None) -> bool:
    """kopf's ``when=`` filter for pod events: does a PodAllocation name this pod? (one lookup)"""
    return reconciler.tracks_pod(uid)


def handle_probe(controller: Controller) -> dict[str, Any]:
    return {
        "leader": controller.is_leader,
        "queue": len(controller.reconciler.queue),
        "apiserver": controller.kube.host,
    }


# ---------------------------------------------------------------------------- kopf decorators


@kopf.on.startup()
def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    handle_startup(settings)


@kopf.on.login()
def _login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    return handle_login(memo["controller"].kube)


@kopf.on.probe(id="mbcas")
def _probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    return handle_probe(memo["controller"])


@kopf.on.event(GROUP, VERSION, PLURAL)
def _allocation_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    handle_event_allocation(memo["controller"].reconciler, event)


def _pod_has_allocation(uid: str | None, memo: kopf.Memo, **_: Any) -> bool:
    return tracked_pod(memo["controller"].reconciler, uid)


@kopf.on.event("", "v1", "pods", when=_pod_has_allocation)
def _pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    handle_event_pod(memo["controller"].reconciler, event)


@kopf.on.event("", "v1", "nodes")
def _node_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    handle_event_node(memo["controller"].reconciler, event)


# ---------------------------------------------------------------------------- the operator


class Controller:
    """One controller instance: client, reconciler, leader election, metrics, and kopf."""

    def __init__(self, config: ControllerConfig, kube: Kube | None = None) -> None:
        self.config = config
        self.kube = kube or build_kube(config.kubeconfig, config.context)
        self.metrics = ControllerMetrics()
        self.elector: LeaderElector | None = None
        if config.leader_election:
            self.elector = LeaderElector(
                self.kube,
                config.lease_namespace,
                config.lease_name,
                config.identity,
                duration_s=config.lease_duration_s,
                renew_deadline_s=config.lease_renew_deadline_s,
                retry_s=config.lease_renew_s,
                on_change=self._leadership,
            )
        self.reconciler = Reconciler(self.kube, config, self.metrics, is_active=lambda: self.is_leader)
        self.metrics.track_allocations(self.reconciler.allocation_bodies)
        self._stop_flag = threading.Event()
        self._ready_flag = threading.Event()
        self._thread: threading.Thread | None = None
        self._metrics_server: Any = None
        self._error: BaseException | None = None

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leader if self.elector is not None else True

    def _leadership(self, leader: bool) -> None:
        self.metrics.leader.set(1 if leader else 0)
        if leader:
            self.reconciler.requeue_all()

    def _operator_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "standalone": True,
            "memo": kopf.Memo(controller=self),
            "stop_flag": self._stop_flag,
            "ready_flag": self._ready_flag,
            # Without it kopf derives one from the login name, which does not exist for the image's
            # uid 65532 (getpwuid KeyError: the controller crashed at start on a real node).
            "identity": self.config.identity,
        }
        if self.config.namespace:
            kwargs["namespaces"] = [self.config.namespace]
        else:
            kwargs["clusterwide"] = True
        if self.config.health_port:
            kwargs["liveness_endpoint"] = (
                f"http://{self.config.bind_address}:{self.config.health_port}/healthz"
            )
        return kwargs

    def _start_side(self) -> None:
        require_support(self.kube)
        if self.config.metrics_port:
            self._metrics_server = self.metrics.serve(self.config.metrics_port, self.config.bind_address)
        self.reconciler.start()
        if self.elector is not None:
            self.elector.start()
        else:
            self.metrics.leader.set(1)

    def _stop_side(self) -> None:
        if self.elector is not None:
            self.elector.stop()
        self.reconciler.stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None

    def run(self) -> None:
        """Run until the stop flag is set (or SIGINT/SIGTERM in the main thread). Blocking."""
        self._start_side()
        try:
            asyncio.run(kopf.operator(**self._operator_kwargs()))
        finally:
            self._stop_side()

    def start(self, timeout: float = 30.0) -> None:
        """Run in a background thread; return once kopf is ready (raise if it failed to start)."""

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:
                self._error = exc
                self._ready_flag.set()

        self._thread = threading.Thread(target=target, name="mbcas-controller", daemon=True)
        self._thread.start()
        if not self._ready_flag.wait(timeout):
            self.stop()
            raise TimeoutError("controller did not become ready")
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 30.0) -> None:
        """Stop kopf and the workers (for :meth:`start`)."""
        self._stop_flag.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
