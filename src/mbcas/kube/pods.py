"""The pods bound to one node: a list-and-watch cache the node agent reads every tick.

:class:`NodePods` lists the pods with the field selector ``spec.nodeName=<node>`` and then
watches from the list's resourceVersion, keeping a local cache of :class:`PodInfo` keyed by UID.
It runs in one background thread; the agent's tick only copies the cache (under a lock), so a
slow or dead apiserver never blocks sensing. On any error (network, 410 Gone, a closed stream)
it relists after a backoff that doubles up to ``backoff_max_s``; the cache keeps its last content
in the meantime and :attr:`NodePods.synced` tells whether it reflects a successful list.

Only pods that can have cgroups are kept: phase ``Running`` (or ``Pending`` with a node, as
containers may already run). A pod being deleted is kept, marked ``terminating``: its containers
run until the kubelet stops them, so its CPU is still in use (the agent never manages it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mbcas.api.contract import managed_limit_mcpu
from mbcas.core.qos import QoSClass
from mbcas.kube.client import Kube
from mbcas.kube.errors import KubeError, translate
from mbcas.kube.podview import PodView
from mbcas.kube.watch import PodWatch
from mbcas.policy.pod_cpu import PodCpu
from mbcas.policy.resize_split import SplitRefusedError, split_basis

__all__ = ["NodePods", "PodInfo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the agent needs of a pod. CPU in millicores; ``None`` = not set."""

    namespace: str
    name: str
    uid: str
    qos: QoSClass
    request_mcpu: int | None
    """The pod's CPU request as the kubelet counts it (containers, native sidecars, the largest
    init phase, pod-level resources: :class:`mbcas.policy.pod_cpu.PodCpu`); None when nothing
    requests CPU."""
    limit_mcpu: int | None
    """The pod's CPU limit as the kubelet counts it; None when it has none."""
    labels: Mapping[str, str]
    resource_version: str
    managed_limits_mcpu: tuple[int | None, int | None] = (None, None)
    """The limit MBCAS manages (:func:`mbcas.api.contract.managed_limit_mcpu`), without and with
    ``RestartContainer`` containers taking part; see :meth:`managed_limit_mcpu`."""
    split_floors_mcpu: tuple[int | None, int | None] = (None, None)
    """The smallest limit the controller's split accepts for the pod (what the containers left
    alone hold plus the others' requests), without and with ``RestartContainer`` containers taking
    part; None when the split refuses the pod (it cannot be managed)."""
    terminating: bool = False
    """Being deleted (``deletionTimestamp`` set, or gone from the API while its cgroup remains)."""

    def managed_limit_mcpu(self, *, allow_restart: bool) -> int | None:
        """The pod-level limit the controller manages (the contract's ``allow_restart`` decides
        whether ``RestartContainer`` containers take part); None when it has none."""
        return self.managed_limits_mcpu[1 if allow_restart else 0]

    def split_floor_mcpu(self, *, allow_restart: bool) -> int | None:
        """The smallest limit the controller can give the pod; None: it cannot resize it at all."""
        return self.split_floors_mcpu[1 if allow_restart else 0]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PodInfo:
        """Parse a pod body (malformed quantities count as unset)."""
        view = PodView.from_body(body)
        labels = (body.get("metadata") or {}).get("labels") or {}
        return cls(
            namespace=view.namespace,
            name=view.name,
            uid=view.uid,
            qos=view.qos,
            request_mcpu=view.cpu.request_mcpu,
            limit_mcpu=view.cpu.limit_mcpu,
            labels={str(k): str(v) for k, v in labels.items()},
            resource_version=view.resource_version,
            managed_limits_mcpu=(
                managed_limit_mcpu(view.cpu, allow_restart=False),
                managed_limit_mcpu(view.cpu, allow_restart=True),
            ),
            split_floors_mcpu=(_split_floor(view.cpu, False), _split_floor(view.cpu, True)),
            terminating=view.deleting,
        )


def _split_floor(pod: PodCpu, allow_restart: bool) -> int | None:
    try:
        return split_basis(pod, allow_restart=allow_restart).floor_mcpu()
    except SplitRefusedError:
        return None


def _eligible(body: Mapping[str, Any]) -> bool:
    return (body.get("status") or {}).get("phase") in ("Running", "Pending")


@dataclass(eq=False)
class NodePods:
    """A watched cache of the pods on ``node`` (see module docs). Thread-safe reads.

    ``errors`` counts failed lists and watches, ``last_error`` says the last one."""

    kube: Kube
    node: str
    watch_timeout_s: int = 300
    backoff_max_s: float = 5.0
    errors: int = field(default=0, init=False)
    last_error: str | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _pods: dict[str, PodInfo] = field(default_factory=dict, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _synced: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _response: Any = field(default=None, init=False, repr=False)

    # ---------------------------------------------------------------- reading

    @property
    def synced(self) -> bool:
        """True once a list succeeded (stays True through later reconnects)."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def pods(self) -> dict[str, PodInfo]:
        """A copy of the cache, keyed by UID."""
        with self._lock:
            return dict(self._pods)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"pods-{self.node}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def sync_once(self) -> str:
        """List the pods now (no watch); returns the list's resourceVersion."""
        listing = self.kube.request_json(
            "GET",
            "/api/v1/pods",
            what=f"list pods on node {self.node}",
            query={"fieldSelector": f"spec.nodeName={self.node}"},
        )
        fresh: dict[str, PodInfo] = {}
        for body in listing.get("items") or []:
            info = self._parse(body)
            if info is not None:
                fresh[info.uid] = info
        with self._lock:
            self._pods = fresh
        self._synced.set()
        return str((listing.get("metadata") or {}).get("resourceVersion", ""))

    # ---------------------------------------------------------------- internals

    def _parse(self, body: Mapping[str, Any]) -> PodInfo | None:
        if not _eligible(body):
            return None
        try:
            return PodInfo.from_body(body)
        except (KeyError, TypeError, ValueError) as exc:  # one odd pod never breaks the cache
            log.warning("skipping a malformed pod on %s: %s", self.node, exc)
            return None

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                rv = self.sync_once()
                self._watch(rv)
                backoff = 0.2
            except Exception as exc:
                if self._stop.is_set():
                    return
                typed = translate(exc, f"watch pods on node {self.node}")
                self.errors += 1
                self.last_error = str(typed or exc)
                log.warning(
                    "pod watch on %s failed (retry in %.1fs): %s", self.node, backoff, self.last_error
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)

    def _watch(self, rv: str) -> None:
        watch = PodWatch(self.kube.core, f"spec.nodeName={self.node}", rv, self.watch_timeout_s)
        self._response = watch
        try:
            for etype, obj in watch:
                if self._stop.is_set():
                    return
                if etype == "ERROR":
                    raise KubeError(f"watch pods on node {self.node}: {obj.get('message', 'error event')}")
                uid = str(obj["metadata"].get("uid", ""))
                info = None if etype == "DELETED" else self._parse(obj)
                with self._lock:
                    if info is None:
                        self._pods.pop(uid, None)
                    else:
                        self._pods[uid] = info
        finally:
            self._response = None
