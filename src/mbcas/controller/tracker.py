"""What the controller knows of PodAllocations, their pods and their nodes, from watch events.

kopf handlers (in :mod:`mbcas.controller.main`) feed :meth:`Tracker.on_allocation`,
:meth:`Tracker.on_pod` and :meth:`Tracker.on_node` with the bodies they receive; those update what
is known and enqueue the keys of the allocations concerned on the work queue. Only pods that have
a PodAllocation are looked at: :meth:`Tracker.tracks_pod` is one dict lookup on the pod's UID (no
parsing, no lock) and is kopf's ``when=`` filter, so the events of every other pod in the cluster
end there. Tracked pods are parsed outside the lock and kept by UID. A change of a node's
allocatable CPU forgets the infeasible values the resize gate remembers for the pods on it.

Per allocation a :class:`Tracking` remembers what the reconciler
(:class:`~mbcas.controller.reconciler.Reconciler`, a :class:`Tracker`) needs across reconciles;
nothing is persisted: it is rebuilt from the API on restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mbcas.kube.podview import PodView
from mbcas.kube.workqueue import WorkQueue
from mbcas.policy.resize import ResizeGate

__all__ = ["Tracker", "Tracking", "allocation_key", "metadata"]

log = logging.getLogger(__name__)


@dataclass
class Tracking:
    """Per-allocation memory of the reconciler (not persisted: rebuilt from the API on restart)."""

    uid: str = ""  # the allocation object's UID
    pod_uid: str = ""  # spec.podUID (index key)
    generation: int | None = None
    seen_at: float = 0.0  # monotonic time the generation was first seen
    event_at: float = 0.0  # monotonic time of the last watch event (re-list bookkeeping)
    latency_observed: bool = False
    final_failure: str | None = None  # 422 message for this generation
    last_resize_at: float | None = None  # wall time of our last accepted patch
    own_generation: int | None = None  # pod generation our last accepted patch produced


def allocation_key(namespace: str, name: str) -> str:
    """The work-queue key of an allocation."""
    return f"{namespace}/{name}"


def metadata(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``metadata`` of an object body (empty when missing or malformed)."""
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


class Tracker:
    """Allocations, their tracking, the pods they name and the nodes those run on, as last seen.

    ``gate`` is the resize gate whose per-pod memory is forgotten with the pod; ``queue`` gets
    the key of every allocation an event concerns. :attr:`_lock` guards everything here and
    the gate.
    """

    def __init__(self, gate: ResizeGate, queue: WorkQueue, mono: Callable[[], float]) -> None:
        self.gate = gate
        self.queue = queue
        self._mono = mono
        self._lock = threading.RLock()  # everything below, and the gate
        self._allocations: dict[str, dict[str, Any]] = {}
        self._tracking: dict[str, Tracking] = {}
        self._by_uid: dict[str, set[str]] = {}  # pod UID -> allocation keys (read lock-free: tracks_pod)
        self._pods: dict[str, PodView] = {}  # pod UID -> latest pod seen (tracked pods only)
        self._node_cpu: dict[str, str] = {}  # node -> its allocatable CPU as last seen

    def tracks_pod(self, uid: str | None) -> bool:
        """Does a PodAllocation name this pod UID? One dict lookup, no lock (kopf's ``when=``).

        A stale answer only delays an event: the reconcile reads the pod itself when it has none.
        """
        return uid is not None and uid in self._by_uid

    def allocation_keys(self) -> Iterator[str]:
        """The keys of the allocations known (a snapshot)."""
        with self._lock:
            return iter(sorted(self._allocations))

    def _index(self, key: str, pod_uid: str) -> None:
        self._by_uid.setdefault(pod_uid, set()).add(key)

    def _unindex(self, key: str, pod_uid: str) -> None:
        keys = self._by_uid.get(pod_uid)
        if keys is None:
            return
        keys.discard(key)
        if not keys:  # the pod has no allocation left: forget everything about it
            del self._by_uid[pod_uid]
            self._pods.pop(pod_uid, None)
            self.gate.forget(pod_uid)

    def _drop(self, key: str) -> None:
        """Forget allocation ``key`` entirely (deleted, or found gone); a subclass extends it to
        forget its own memory of ``key``."""
        with self._lock:
            self._allocations.pop(key, None)
            track = self._tracking.pop(key, None)
            if track is not None:
                self._unindex(key, track.pod_uid)

    def on_allocation(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A PodAllocation watch event (``ADDED``/``MODIFIED``/``DELETED``, or None for listing)."""
        meta = metadata(body)
        key = allocation_key(str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event_type == "DELETED":
            self._drop(key)
            return
        spec = body.get("spec")
        pod_uid = str((spec if isinstance(spec, Mapping) else {}).get("podUID", ""))
        generation = meta.get("generation")
        with self._lock:
            track = self._tracking.get(key)
            if track is None:
                track = self._tracking[key] = Tracking()
            elif track.pod_uid != pod_uid:
                self._unindex(key, track.pod_uid)
            self._allocations[key] = dict(body)
            track.uid = str(meta.get("uid", ""))
            track.pod_uid = pod_uid
            track.event_at = self._mono()
            self._index(key, pod_uid)
            if generation != track.generation:
                track.generation = generation if isinstance(generation, int) else None
                track.seen_at = self._mono()
                track.latency_observed = False
                track.final_failure = None
        self.queue.add(key)

    def on_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A pod watch event: only pods with an allocation are parsed, cached by UID, and woken."""
        uid = metadata(body).get("uid")
        if not self.tracks_pod(uid):
            return
        assert isinstance(uid, str)
        view = None if event_type == "DELETED" else PodView.from_body(body)  # outside the lock
        with self._lock:
            keys = set(self._by_uid.get(uid, ()))
            if not keys:
                return
            if view is None:
                self._pods.pop(uid, None)
                self.gate.forget(uid)
            else:
                self._pods[uid] = view
        for key in keys:
            self.queue.add(key)

    def allocation_bodies(self) -> list[dict[str, Any]]:
        """A snapshot of the cached PodAllocation bodies (the ``mbcas_controller_allocations`` gauge)."""
        with self._lock:
            return list(self._allocations.values())

    def on_node(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A node watch event: a change of its allocatable CPU forgets the infeasible values
        remembered for the pods on it (the kubelet may fit them now)."""
        name = str(metadata(body).get("name", ""))
        status = body.get("status")
        allocatable = (status if isinstance(status, Mapping) else {}).get("allocatable")
        cpu = str((allocatable if isinstance(allocatable, Mapping) else {}).get("cpu", ""))
        wake: set[str] = set()
        with self._lock:
            if event_type == "DELETED":
                self._node_cpu.pop(name, None)
                return
            before = self._node_cpu.get(name)
            self._node_cpu[name] = cpu
            if before == cpu:
                return
            for uid, pod in self._pods.items():
                if pod.node_name != name:
                    continue
                if before is None:  # first sighting: pods without a limit were waiting for it
                    wake |= self._by_uid.get(uid, set())
                elif self.gate.history(uid).infeasible_mcpu is not None:
                    self.gate.clear_infeasible(uid)
                    wake |= self._by_uid.get(uid, set())
        if wake and before is not None:
            log.info("node %s: allocatable CPU %s -> %s; infeasible values forgotten", name, before, cpu)
        for key in wake:
            self.queue.add(key)
