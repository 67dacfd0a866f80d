"""The emulated kubelet: runs the pods bound to the emulated nodes and handles their resizes.

For each pod on one of its nodes, :meth:`Kubelet.sync` does, through the real API, what MBCAS
needs of a kubelet's pod worker: it finalises a deleted pod; admits a new one (or fails it with
``OutOfcpu``/``OutOfmemory``, :func:`~mbcas.local.emulator.scheduler.admission_failure`), or adopts
what an earlier emulator process reported, and remembers it
(:class:`~mbcas.local.emulator.pods.PodState`); in kernel mode starts a real CPU burner per
container in a real cgroup (:class:`~mbcas.local.kernel.KernelSandbox`) and passes on changes of
the :data:`DEMAND_ANNOTATION`; handles in-place resize as the kubelet's allocation manager does
(``PodResizePending`` ``Infeasible`` or ``Deferred``, else accept, actuate, ``PodResizeInProgress``
for ``resize_delay`` seconds, then report; deferred resizes are retried when room is freed on the
node); and writes the pod's status (:func:`~mbcas.local.emulator.pods.pod_status`) when it
changed. Follow-ups (a resize settling, a retry after write conflicts, a deferred resize) go back
to the emulator's work queue through ``enqueue(key, delay)``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from mbcas.local.emulator.nodes import EmulatedNodes
from mbcas.local.emulator.podcache import PodCache, pod_key
from mbcas.local.emulator.pods import (
    ContainerState,
    PodState,
    comparable_status,
    pod_status,
    resources_block,
    timestamp,
)
from mbcas.local.emulator.scheduler import admission_failure
from mbcas.local.kernel import ContainerSpec, KernelSandbox
from mbcas.local.podres import Json, Resources, pod_requests, qos_class

__all__ = ["DEMAND_ANNOTATION", "Kubelet"]

DEMAND_ANNOTATION = "mbcas.io/emulator-demand"


@dataclass
class Kubelet:
    """The pods admitted on the emulated nodes, and what the kubelet does with them."""

    core: Any
    nodes: EmulatedNodes
    cache: PodCache
    _: KW_ONLY
    sandbox: KernelSandbox | None
    resize_delay: float
    enqueue: Callable[[str, float], None]
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _pods: dict[str, PodState] = field(default_factory=dict, init=False, repr=False)
    _ip_counter: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def pod_view(self, key: str) -> dict[str, Any] | None:
        """What the kubelet remembers about pod ``key`` (allocated/actuated resources, pending)."""
        with self._lock:
            for state in self._pods.values():
                if state.key == key:
                    return {
                        "uid": state.uid,
                        "node": state.node,
                        "allocated": dict(state.allocated),
                        "actuated": dict(state.actuated),
                        "pending": state.pending,
                        "container_ids": {n: c.container_id for n, c in state.containers.items()},
                    }
        return None

    def requeue_pending(self, node: str) -> None:
        """Room was freed on ``node``: retry its deferred resizes (the kubelet does the same)."""
        with self._lock:
            keys = [s.key for s in self._pods.values() if s.node == node and s.pending is not None]
        for key in keys:
            self.enqueue(key, 0.0)

    def state_for(self, key: str) -> PodState | None:
        """The state of the admitted pod ``key``, if any."""
        with self._lock:
            for state in self._pods.values():
                if state.key == key:
                    return state
        return None

    def drop_replaced(self, key: str, pod: Json | None) -> None:
        """Forget pod ``key`` if it is gone or was recreated (another UID) since it was admitted."""
        state = self.state_for(key)
        if state is not None and (pod is None or pod["metadata"]["uid"] != state.uid):
            self.forget(state)

    def sync(self, pod: Json, node: str) -> None:
        """Do for the pod on our ``node`` what the kubelet would: finalise, admit, resize, report."""
        state = self.state_for(pod_key(pod))
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            if state is not None:
                self.forget(state)
            # gracePeriodSeconds goes in the body: this client drops a falsy query parameter.
            options = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
            try:
                self.core.delete_namespaced_pod(
                    meta["name"], meta["namespace"], body=options, _preload_content=False
                )
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
            return
        if state is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            state = self._admit(pod, node)
            if state is None:
                return
        if state.failed is None:
            self._handle_resize(pod, state)
            self._handle_demand(pod, state)
        self._write_status(pod, state)

    def node_used(self, node: str, exclude_uid: str | None = None) -> Resources:
        """The requests allocated on ``node`` (all admitted pods but ``exclude_uid``)."""
        used = Resources(0, 0)
        with self._lock:
            states = [
                s for s in self._pods.values() if s.node == node and s.uid != exclude_uid and not s.failed
            ]
        for s in states:
            pod = self.cache.lookup(s.key)
            if pod is not None:
                used = used + pod_requests(pod, s.allocated_requests())
        return used

    # ---------------------------------------------------------------- admission

    def _admit(self, pod: Json, node_name: str) -> PodState | None:
        meta = pod["metadata"]
        used = self.node_used(node_name, exclude_uid=meta["uid"])
        failed = admission_failure(self.nodes.spec(node_name), used, pod_requests(pod))
        status = pod.get("status") or {}
        adopted = {c["name"]: c for c in status.get("containerStatuses") or []}
        started_at = status.get("startTime") or timestamp()
        containers: dict[str, ContainerState] = {}
        allocated: dict[str, Json] = {}
        actuated: dict[str, Json] = {}
        for c in pod["spec"].get("containers") or []:
            old = adopted.get(c["name"])
            block = resources_block(c)
            if old and old.get("containerID"):  # an emulator restart: adopt what was reported
                cid = old["containerID"].split("://", 1)[-1]
                if old.get("allocatedResources") is not None:
                    block = {**block, "requests": dict(old["allocatedResources"])}
                actuated[c["name"]] = old.get("resources") or block
            else:
                cid = hashlib.sha256(f"{meta['uid']}/{c['name']}/{time.time_ns()}".encode()).hexdigest()
                actuated[c["name"]] = block
            allocated[c["name"]] = block
            req, lim = Resources.from_list(block.get("requests")), Resources.from_list(block.get("limits"))
            containers[c["name"]] = ContainerState(c["name"], cid, req, lim, block, started_at)
        with self._lock:
            index = self.nodes.names.index(node_name)
            self._ip_counter[node_name] = self._ip_counter.get(node_name, 1) + 1
            ip = f"10.244.{index}.{self._ip_counter[node_name] % 250 + 2}"
        pod_ip = status.get("podIP") or ip
        state = PodState(
            meta["uid"], pod_key(pod), node_name, pod_ip, started_at, containers, allocated, actuated
        )
        state.failed = failed
        with self._lock:
            self._pods[state.uid] = state
        if failed is None and self.sandbox is not None and self.sandbox.available:
            state.demand = self._demand_of(pod)
            self.sandbox.start_pod(
                state.uid,
                qos_class(pod),
                [
                    ContainerSpec(
                        c.name, c.container_id, c.requests.cpu, c.limits.cpu, self._demand_for(pod, c.name)
                    )
                    for c in containers.values()
                ],
            )
        return state

    def forget(self, state: PodState) -> None:
        """Drop the pod's state, stop its processes, and retry deferred resizes on its node."""
        with self._lock:
            self._pods.pop(state.uid, None)
        if self.sandbox is not None:
            self.sandbox.stop_pod(state.uid)
        self.requeue_pending(state.node)

    # ---------------------------------------------------------------- demand (kernel mode)

    @staticmethod
    def _demand_of(pod: Json) -> str | None:
        annotations = pod["metadata"].get("annotations") or {}
        found = {k: v for k, v in annotations.items() if k.startswith(DEMAND_ANNOTATION)}
        return json.dumps(found, sort_keys=True) if found else None

    @staticmethod
    def _demand_for(pod: Json, container: str) -> str | None:
        annotations = pod["metadata"].get("annotations") or {}
        specific = annotations.get(f"{DEMAND_ANNOTATION}.{container}")
        return specific if specific is not None else annotations.get(DEMAND_ANNOTATION)

    def _handle_demand(self, pod: Json, state: PodState) -> None:
        if self.sandbox is None or not self.sandbox.available:
            return
        demand = self._demand_of(pod)
        if demand == state.demand:
            return
        state.demand = demand
        for c in state.containers.values():
            self.sandbox.set_demand(state.uid, c.container_id, self._demand_for(pod, c.name))

    # ---------------------------------------------------------------- resize

    def _handle_resize(self, pod: Json, state: PodState) -> None:
        generation = int(pod["metadata"].get("generation") or 1)
        desired = {c["name"]: resources_block(c) for c in pod["spec"].get("containers") or []}
        node = self.nodes.spec(state.node)
        if desired != state.allocated:
            want = pod_requests(pod)
            used = self.node_used(state.node, exclude_uid=state.uid)
            alloc = node.allocatable
            pending: tuple[str, str] | None = None
            for res, need, have, room in (
                ("cpu", want.cpu or 0, alloc.cpu or 0, (alloc.cpu or 0) - (used.cpu or 0)),
                ("memory", want.memory or 0, alloc.memory or 0, (alloc.memory or 0) - (used.memory or 0)),
            ):
                if need > have:
                    pending = (
                        "Infeasible",
                        f"Node didn't have enough capacity: {res}, requested: {need}, capacity: {have}",
                    )
                    break
                if need > room:
                    pending = (
                        "Deferred",
                        f"Node didn't have enough resource: {res}, requested: {need}, "
                        f"used: {have - room}, capacity: {have}",
                    )
                    break
            if pending is not None:
                state.pending = pending
                state.pending_generation = generation
                return
            state.pending = None
            state.allocated = desired
            state.in_progress_generation = generation
            state.in_progress_since = time.monotonic()
            for name, block in desired.items():
                c = state.containers.get(name)
                if c is None:
                    continue
                c.requests = Resources.from_list(block.get("requests"))
                c.limits = Resources.from_list(block.get("limits"))
                c.raw = block
                if self.sandbox is not None and self.sandbox.available:
                    self.sandbox.resize(state.uid, c.container_id, c.requests.cpu, c.limits.cpu)
            self.enqueue(state.key, self.resize_delay)
            self.requeue_pending(state.node)  # a decrease may make room for a deferred resize
            return
        state.pending = None
        if state.in_progress_generation is not None:
            if time.monotonic() - state.in_progress_since >= self.resize_delay - 1e-3:
                state.actuated = {n: dict(b) for n, b in state.allocated.items()}
                state.in_progress_generation = None
            else:
                self.enqueue(state.key, self.resize_delay - (time.monotonic() - state.in_progress_since))

    # ---------------------------------------------------------------- status

    def _write_status(self, pod: Json, state: PodState) -> None:
        for _attempt in range(3):
            desired = pod_status(pod, state)
            wanted = comparable_status(desired)
            if wanted == comparable_status(pod.get("status") or {}):
                return
            if wanted == state.last_written and pod["metadata"]["resourceVersion"] == state.last_written_rv:
                return  # the server normalised our last write; writing again would loop
            body = {**pod, "status": desired}
            meta = pod["metadata"]
            try:
                resp = self.core.replace_namespaced_pod_status(
                    meta["name"], meta["namespace"], body, _preload_content=False
                )
            except ApiException as exc:
                if exc.status == 409:
                    fresh = self.core.read_namespaced_pod(
                        meta["name"], meta["namespace"], _preload_content=False
                    )
                    pod = json.loads(fresh.data)
                    if pod["metadata"]["uid"] != state.uid:
                        return
                    self.cache.remember(pod)
                    continue
                if exc.status == 404:
                    return
                raise
            written = json.loads(resp.data)
            state.last_written, state.last_written_rv = wanted, written["metadata"]["resourceVersion"]
            self.cache.remember(written)
            return
        self.enqueue(state.key, 0.5)
