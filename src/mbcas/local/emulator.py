"""A node emulator: a kubelet stand-in that makes a local control plane look like a real cluster.

No kubelet can run on the development machine, so :class:`NodeEmulator` does the parts of its job
that MBCAS depends on, through the real API:

* registers Nodes that look real (``kubernetes.io/os=linux``, hostname label, capacity and
  allocatable, ``Ready``, node info) and renews their Leases;
* binds pods that name no node to the least-loaded emulated node that fits, through the
  ``pods/binding`` subresource (no scheduler runs);
* admits pods bound to its nodes (``OutOfcpu``/``OutOfmemory`` as the kubelet does when the node
  is full), then marks them Running with container statuses carrying ``resources`` and
  ``allocatedResources``, ``qosClass``, IPs and conditions;
* handles in-place resize like the kubelet's allocation manager: when the spec's resources differ
  from what is allocated it sets ``PodResizePending`` (``Infeasible`` when the pod could never fit
  the node's allocatable, ``Deferred`` when it does not fit the room left now), or accepts the
  resize, sets ``PodResizeInProgress``, actuates (in kernel mode: writes the quota), and after
  ``resize_delay`` seconds (the kubelet's PLEG relist is ~1 s) reports the new resources and
  clears the condition. Deferred resizes are retried whenever room is freed on the node;
* finalises deleted pods (gracefully deleting pods stay ``Terminating`` without a kubelet).

With a :class:`~mbcas.local.kernel.KernelMode`, each container also runs a real CPU burner in a
real cgroup laid out like a systemd-driver node (see :mod:`mbcas.local.kernel`).

It runs in background threads (``start()``/``stop()`` or a ``with`` block) or as a process:
``python -m mbcas.local.emulator --kubeconfig K --node NAME:CPU:MEMORY``. Every difference from a
real kubelet is listed in ``docs/local-control-plane.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import heapq
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from mbcas.kube.watch import PodWatch
from mbcas.local.kernel import ContainerSpec, KernelMode, KernelSandbox
from mbcas.local.podres import (
    Json,
    Resources,
    cpu_millis,
    memory_bytes,
    pod_requests,
    qos_class,
)
from mbcas.local.versions import KUBERNETES_VERSION

__all__ = ["DEMAND_ANNOTATION", "NodeEmulator", "NodeSpec", "main"]

log = logging.getLogger(__name__)

DEMAND_ANNOTATION = "mbcas.io/emulator-demand"
EMULATED_LABEL = "mbcas.io/emulated"
PREFIX_ANNOTATION = "mbcas.io/emulator-cgroup-prefix"
ROOT_ANNOTATION = "mbcas.io/emulator-cgroup-root"
_UNSCHEDULED = ""
_OUR_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodResizePending",
    "PodResizeInProgress",
)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(pod: Json) -> str:
    meta = pod["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


@dataclass(frozen=True)
class NodeSpec:
    """An emulated node: its name, allocatable CPU/memory/pods and extra labels."""

    name: str
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 110
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> NodeSpec:
        """``NAME[:CPU[:MEMORY]]`` as given on the command line."""
        parts = text.split(":")
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"node spec {text!r} is not NAME[:CPU[:MEMORY]]")
        cpu = parts[1] if len(parts) > 1 else "4"
        memory = parts[2] if len(parts) > 2 else "8Gi"
        spec = cls(parts[0], cpu, memory)
        cpu_millis(spec.cpu)
        memory_bytes(spec.memory)
        return spec

    @property
    def allocatable(self) -> Resources:
        return Resources(cpu_millis(self.cpu), memory_bytes(self.memory))


@dataclass
class _Container:
    name: str
    container_id: str
    requests: Resources
    limits: Resources
    raw: Json  # the resources block as allocated, echoed into status
    started_at: str
    restart_count: int = 0


@dataclass
class _PodState:
    """What the emulated kubelet remembers about one admitted pod."""

    uid: str
    key: str
    node: str
    pod_ip: str
    started_at: str
    containers: dict[str, _Container]
    allocated: dict[str, Json]  # container name -> resources block allocated
    actuated: dict[str, Json]  # container name -> resources block reported as running
    in_progress_generation: int | None = None
    in_progress_since: float = 0.0
    pending: tuple[str, str] | None = None  # (reason, message)
    pending_generation: int = 0
    demand: str | None = None
    done: bool = False
    failed: tuple[str, str] | None = None
    last_written: Json | None = None  # comparable form of our last status write
    last_written_rv: str = ""

    def allocated_requests(self) -> dict[str, Resources]:
        return {n: Resources.from_list(r.get("requests")) for n, r in self.allocated.items()}


def _resources_block(container: Json) -> Json:
    """The CPU/memory part of a container's spec resources (what the kubelet reports)."""
    res = container.get("resources") or {}
    out: Json = {}
    for part in ("requests", "limits"):
        values = {k: v for k, v in (res.get(part) or {}).items() if k in ("cpu", "memory")}
        if values:
            out[part] = values
    return out


@dataclass
class NodeEmulator:
    """Emulated kubelets for ``nodes``, driven by watches on the real apiserver.

    Give either ``kubeconfig`` (a path) or ``api_client`` (its configuration is reused; each
    thread gets its own client).
    """

    kubeconfig: str | Path | None = None
    nodes: Sequence[NodeSpec] = (NodeSpec("mbcas-node-1"),)
    resize_delay: float = 1.0
    kernel: KernelMode | None = None
    api_client: Any = None
    heartbeat: float = 10.0
    resync: float = 30.0
    bind_unscheduled: bool = True
    delete_nodes_on_stop: bool = True
    _config: Any = field(default=None, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False, repr=False)
    _queue: queue.Queue[str] = field(default_factory=queue.Queue, init=False, repr=False)
    _delayed: list[tuple[float, str]] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _cache: dict[str, dict[str, Json]] = field(default_factory=dict, init=False, repr=False)
    _pods: dict[str, _PodState] = field(default_factory=dict, init=False, repr=False)
    _responses: list[Any] = field(default_factory=list, init=False, repr=False)
    _ip_counter: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _sandbox: KernelSandbox | None = field(default=None, init=False, repr=False)
    _core: Any = field(default=None, init=False, repr=False)
    _failures: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    errors: list[str] = field(default_factory=list, init=False)

    # ---------------------------------------------------------------- public API

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def sandbox(self) -> KernelSandbox | None:
        """The kernel sandbox (cgroups + burners) when kernel mode is on and available."""
        return self._sandbox

    def __enter__(self) -> NodeEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> NodeEmulator:
        """Register the nodes and start the watch, worker and heartbeat threads."""
        if len({n.name for n in self.nodes}) != len(self.nodes):
            raise ValueError("node names must be unique")
        if self.api_client is not None:
            self._config = self.api_client.configuration
        elif self.kubeconfig is not None:
            self._config = k8s.Configuration()
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(self.kubeconfig), client_configuration=self._config
            )
        else:
            raise ValueError("NodeEmulator needs a kubeconfig or an api_client")
        self._stop.clear()
        self._core = self._new_core()
        if self.kernel is not None:
            self._sandbox = KernelSandbox(self.kernel)
            if not self._sandbox.available:
                log.warning("node emulator: kernel mode unavailable, pods run without processes: %s",
                            self._sandbox.reason)  # fmt: skip
        try:
            for index, node in enumerate(self.nodes):
                self._register_node(index, node)
        except BaseException:
            self._close_sandbox()
            raise
        scopes = [*self.node_names]
        if self.bind_unscheduled:
            scopes.append(_UNSCHEDULED)
        for scope in scopes:
            self._cache[scope] = {}
            self._spawn(f"watch-{scope or 'unscheduled'}", self._watch_loop, scope)
        self._spawn("worker", self._worker_loop)
        self._spawn("heartbeat", self._heartbeat_loop)
        return self

    def stop(self) -> None:
        """Stop the threads, kill every process and remove every cgroup; delete the Nodes."""
        self._stop.set()
        self._queue.put("")  # wake the worker
        for watch in list(self._responses):
            watch.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._close_sandbox()
        if self.delete_nodes_on_stop and self._core is not None:
            for name in self.node_names:
                with contextlib.suppress(Exception):
                    self._core.delete_node(name, _request_timeout=5)

    def pod_state(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The emulator's view of a pod (allocated/actuated resources, pending), for tests."""
        with self._lock:
            for state in self._pods.values():
                if state.key == f"{namespace}/{name}":
                    return {
                        "uid": state.uid,
                        "node": state.node,
                        "allocated": dict(state.allocated),
                        "actuated": dict(state.actuated),
                        "pending": state.pending,
                        "container_ids": {n: c.container_id for n, c in state.containers.items()},
                    }
        return None

    # ---------------------------------------------------------------- plumbing

    def _new_core(self) -> Any:
        return k8s.CoreV1Api(k8s.ApiClient(self._config))

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"mbcas-emulator-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _close_sandbox(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()

    def _note_error(self, what: str, exc: BaseException) -> None:
        msg = f"{what}: {exc.__class__.__name__}: {str(exc)[:300]}"
        self.errors.append(msg)
        del self.errors[:-50]
        if not self._stop.is_set():
            log.warning("node emulator: %s", msg)

    # ---------------------------------------------------------------- nodes

    def _node_body(self, index: int, node: NodeSpec) -> Json:
        labels = {
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": node.name,
            "node.kubernetes.io/instance-type": "mbcas-emulated",
            EMULATED_LABEL: "true",
            **dict(node.labels),
        }
        annotations: dict[str, str] = {}
        if self._sandbox is not None and self._sandbox.available:
            annotations[PREFIX_ANNOTATION] = self._sandbox.prefix
            annotations[ROOT_ANNOTATION] = str(self._sandbox.root)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node.name, "labels": labels, "annotations": annotations},
            "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        }

    def _node_status(self, node: NodeSpec) -> Json:
        now = _now()
        resources = {
            "cpu": node.cpu,
            "memory": node.memory,
            "pods": str(node.pods),
            "ephemeral-storage": "100Gi",
        }

        def cond(ctype: str, status: str, reason: str, message: str) -> Json:
            return {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        boot = hashlib.sha256(node.name.encode()).hexdigest()
        return {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "emulated"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "emulated"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "emulated"),
                cond("Ready", "True", "KubeletReady", "mbcas node emulator is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": boot[:32],
                "systemUUID": str(uuid.UUID(boot[:32])),
                "bootID": str(uuid.uuid4()),
                "kernelVersion": os.uname().release,
                "osImage": "MBCAS node emulator",
                "containerRuntimeVersion": "containerd://emulated",
                "kubeletVersion": f"v{KUBERNETES_VERSION}",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def _register_node(self, index: int, node: NodeSpec) -> None:
        body = self._node_body(index, node)
        try:
            self._core.create_node(body, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self._core.patch_node(node.name, {"metadata": body["metadata"]}, _preload_content=False)
        current = json.loads(self._core.read_node(node.name, _preload_content=False).data)
        current["status"] = self._node_status(node)
        self._core.replace_node_status(node.name, current, _preload_content=False)
        self._renew_lease(node.name)

    def _renew_lease(self, name: str) -> None:
        coord: Any = k8s.CoordinationV1Api(self._core.api_client)
        now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
        }
        try:
            coord.patch_namespaced_lease(
                name, "kube-node-lease", {"spec": body["spec"]},
                _content_type="application/merge-patch+json", _preload_content=False,
            )  # fmt: skip
        except ApiException as exc:
            if exc.status != 404:
                raise
            coord.create_namespaced_lease("kube-node-lease", body, _preload_content=False)

    def _heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while not self._stop.wait(self.heartbeat):
            for index, node in enumerate(self.nodes):
                try:
                    self._renew_lease(node.name)
                    if time.monotonic() - last_status >= 6 * self.heartbeat:
                        self._register_node(index, node)
                except Exception as exc:
                    self._note_error(f"heartbeat of {node.name}", exc)
            if time.monotonic() - last_status >= 6 * self.heartbeat:
                last_status = time.monotonic()

    # ---------------------------------------------------------------- watches

    def _watch_loop(self, scope: str) -> None:
        core = self._new_core()
        selector = f"spec.nodeName={scope}"
        backoff = 0.2
        while not self._stop.is_set():
            try:
                listing = json.loads(
                    core.list_pod_for_all_namespaces(field_selector=selector, _preload_content=False).data
                )
                fresh = {_key(p): p for p in listing.get("items") or []}
                with self._lock:
                    gone = set(self._cache[scope]) - set(fresh)
                    self._cache[scope] = fresh
                for key in [*fresh, *gone]:
                    self._queue.put(key)
                rv = listing["metadata"]["resourceVersion"]
                self._stream(core, scope, selector, rv)
                backoff = 0.2
            except Exception as exc:
                if self._stop.is_set():
                    return
                self._note_error(f"watch {selector}", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _stream(self, core: Any, scope: str, selector: str, rv: str) -> None:
        watch = PodWatch(core, selector, rv, max(1, int(self.resync)))
        self._responses.append(watch)
        try:
            for etype, obj in watch:
                if self._stop.is_set():
                    return
                if etype == "ERROR":
                    return  # e.g. 410 Gone: relist
                key = _key(obj)
                with self._lock:
                    if etype == "DELETED":
                        self._cache[scope].pop(key, None)
                    else:
                        self._cache[scope][key] = obj
                self._queue.put(key)
        finally:
            with contextlib.suppress(ValueError):
                self._responses.remove(watch)

    def _lookup(self, key: str) -> Json | None:
        with self._lock:
            for scope in self.node_names:
                pod = self._cache.get(scope, {}).get(key)
                if pod is not None:
                    return pod
            return self._cache.get(_UNSCHEDULED, {}).get(key)

    def _remember(self, pod: Json) -> None:
        """Store a pod we just wrote, so the next reconcile sees our own write."""
        scope = (pod.get("spec") or {}).get("nodeName") or _UNSCHEDULED
        with self._lock:
            cached = self._cache.get(scope, {}).get(_key(pod))
            if cached is None or int(cached["metadata"]["resourceVersion"]) <= int(
                pod["metadata"]["resourceVersion"]
            ):
                self._cache.setdefault(scope, {})[_key(pod)] = pod

    # ---------------------------------------------------------------- worker

    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            timeout = 0.5
            with self._lock:
                if self._delayed:
                    timeout = max(0.0, min(timeout, self._delayed[0][0] - time.monotonic()))
            keys: set[str] = set()
            try:
                keys.add(self._queue.get(timeout=timeout))
                while True:
                    keys.add(self._queue.get_nowait())
            except queue.Empty:
                pass
            with self._lock:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    keys.add(heapq.heappop(self._delayed)[1])
            keys.discard("")
            for key in sorted(keys):
                if self._stop.is_set():
                    return
                try:
                    self._reconcile(key)
                    self._failures.pop(key, None)
                except Exception as exc:
                    # One bad pod never stops the loop: retry it with backoff (0.5 s .. 30 s).
                    count = self._failures[key] = self._failures.get(key, 0) + 1
                    self._note_error(f"reconcile {key} (attempt {count})", exc)
                    self._after(min(30.0, 0.5 * 2 ** (count - 1)), key)

    def _after(self, delay: float, key: str) -> None:
        with self._lock:
            heapq.heappush(self._delayed, (time.monotonic() + delay, key))

    def _requeue_pending(self, node: str) -> None:
        """Room was freed on ``node``: retry its deferred resizes (the kubelet does the same)."""
        with self._lock:
            keys = [s.key for s in self._pods.values() if s.node == node and s.pending is not None]
        for key in keys:
            self._queue.put(key)

    def _state_for(self, key: str) -> _PodState | None:
        with self._lock:
            for state in self._pods.values():
                if state.key == key:
                    return state
        return None

    def _reconcile(self, key: str) -> None:
        pod = self._lookup(key)
        state = self._state_for(key)
        if state is not None and (pod is None or pod["metadata"]["uid"] != state.uid):
            self._forget(state)
            state = None
        if pod is None:
            return
        spec = pod.get("spec") or {}
        node = spec.get("nodeName") or _UNSCHEDULED
        meta = pod["metadata"]
        if node == _UNSCHEDULED:
            if self.bind_unscheduled and not meta.get("deletionTimestamp"):
                self._bind(pod)
            return
        if node not in self.node_names:
            return
        if meta.get("deletionTimestamp"):
            if state is not None:
                self._forget(state)
            # gracePeriodSeconds goes in the body: this client drops a falsy query parameter.
            options = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
            try:
                self._core.delete_namespaced_pod(
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

    # ---------------------------------------------------------------- binding

    def _node_used(self, node: str, exclude_uid: str | None = None) -> Resources:
        used = Resources(0, 0)
        with self._lock:
            states = [
                s for s in self._pods.values() if s.node == node and s.uid != exclude_uid and not s.failed
            ]
        for s in states:
            pod = self._lookup(s.key)
            if pod is not None:
                used = used + pod_requests(pod, s.allocated_requests())
        return used

    def _bind(self, pod: Json) -> None:
        want = pod_requests(pod)
        best: tuple[int, str] | None = None
        for node in self.nodes:
            used = self._node_used(node.name)
            alloc = node.allocatable
            free_cpu = (alloc.cpu or 0) - (used.cpu or 0)
            free_mem = (alloc.memory or 0) - (used.memory or 0)
            fits = free_cpu >= (want.cpu or 0) and free_mem >= (want.memory or 0)
            if fits and (best is None or free_cpu > best[0]):
                best = (free_cpu, node.name)
        if best is None:
            return  # stays Pending, as with a real scheduler and a full cluster
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": best[1]},
        }
        try:
            self._core.create_namespaced_pod_binding(
                meta["name"], meta["namespace"], body, _preload_content=False
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or bound by someone else meanwhile
                raise

    # ---------------------------------------------------------------- admission and start

    def _admit(self, pod: Json, node_name: str) -> _PodState | None:
        meta = pod["metadata"]
        node = next(n for n in self.nodes if n.name == node_name)
        want = pod_requests(pod)
        used = self._node_used(node_name, exclude_uid=meta["uid"])
        alloc = node.allocatable
        failed: tuple[str, str] | None = None
        if (used.cpu or 0) + (want.cpu or 0) > (alloc.cpu or 0):
            failed = ("OutOfcpu", f"Node didn't have enough resource: cpu, requested: {want.cpu}m")
        elif (used.memory or 0) + (want.memory or 0) > (alloc.memory or 0):
            failed = ("OutOfmemory", f"Node didn't have enough resource: memory, requested: {want.memory}")
        status = pod.get("status") or {}
        adopted = {c["name"]: c for c in status.get("containerStatuses") or []}
        started_at = status.get("startTime") or _now()
        containers: dict[str, _Container] = {}
        allocated: dict[str, Json] = {}
        actuated: dict[str, Json] = {}
        for c in pod["spec"].get("containers") or []:
            old = adopted.get(c["name"])
            block = _resources_block(c)
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
            containers[c["name"]] = _Container(c["name"], cid, req, lim, block, started_at)
        with self._lock:
            index = self.node_names.index(node_name)
            self._ip_counter[node_name] = self._ip_counter.get(node_name, 1) + 1
            ip = f"10.244.{index}.{self._ip_counter[node_name] % 250 + 2}"
        pod_ip = status.get("podIP") or ip
        state = _PodState(
            meta["uid"], _key(pod), node_name, pod_ip, started_at, containers, allocated, actuated
        )
        state.failed = failed
        with self._lock:
            self._pods[state.uid] = state
        if failed is None and self._sandbox is not None and self._sandbox.available:
            state.demand = self._demand_of(pod)
            self._sandbox.start_pod(
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

    def _forget(self, state: _PodState) -> None:
        with self._lock:
            self._pods.pop(state.uid, None)
        if self._sandbox is not None:
            self._sandbox.stop_pod(state.uid)
        self._requeue_pending(state.node)

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

    def _handle_demand(self, pod: Json, state: _PodState) -> None:
        if self._sandbox is None or not self._sandbox.available:
            return
        demand = self._demand_of(pod)
        if demand == state.demand:
            return
        state.demand = demand
        for c in state.containers.values():
            self._sandbox.set_demand(state.uid, c.container_id, self._demand_for(pod, c.name))

    # ---------------------------------------------------------------- resize

    def _handle_resize(self, pod: Json, state: _PodState) -> None:
        generation = int(pod["metadata"].get("generation") or 1)
        desired = {c["name"]: _resources_block(c) for c in pod["spec"].get("containers") or []}
        node = next(n for n in self.nodes if n.name == state.node)
        if desired != state.allocated:
            want = pod_requests(pod)
            used = self._node_used(state.node, exclude_uid=state.uid)
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
                if self._sandbox is not None and self._sandbox.available:
                    self._sandbox.resize(state.uid, c.container_id, c.requests.cpu, c.limits.cpu)
            self._after(self.resize_delay, state.key)
            self._requeue_pending(state.node)  # a decrease may make room for a deferred resize
            return
        state.pending = None
        if state.in_progress_generation is not None:
            if time.monotonic() - state.in_progress_since >= self.resize_delay - 1e-3:
                state.actuated = {n: dict(b) for n, b in state.allocated.items()}
                state.in_progress_generation = None
            else:
                self._after(self.resize_delay - (time.monotonic() - state.in_progress_since), state.key)

    # ---------------------------------------------------------------- status

    def _desired_status(self, pod: Json, state: _PodState) -> Json:
        status = dict(pod.get("status") or {})
        generation = int(pod["metadata"].get("generation") or 1)
        now = _now()
        old_conditions = {c["type"]: c for c in status.get("conditions") or []}

        def cond(ctype: str, value: str, reason: str | None = None, message: str | None = None) -> Json:
            old = old_conditions.get(ctype)
            out: Json = {"type": ctype, "status": value, "lastProbeTime": None}
            out["lastTransitionTime"] = (
                old["lastTransitionTime"]
                if old and old.get("status") == value and old.get("lastTransitionTime")
                else now
            )
            out["observedGeneration"] = generation
            if reason:
                out["reason"] = reason
            if message:
                out["message"] = message
            return out

        conditions = [c for t, c in old_conditions.items() if t not in _OUR_CONDITIONS]
        if "PodScheduled" not in old_conditions:
            conditions.append(cond("PodScheduled", "True"))
        status["qosClass"] = status.get("qosClass") or qos_class(pod)
        status["hostIP"] = "127.0.0.1"
        status["hostIPs"] = [{"ip": "127.0.0.1"}]
        status["observedGeneration"] = generation
        if state.failed is not None:
            status["phase"] = "Failed"
            status["reason"], status["message"] = state.failed
            status["conditions"] = conditions
            return status
        status["phase"] = "Running"
        status["startTime"] = state.started_at
        status["podIP"] = state.pod_ip
        status["podIPs"] = [{"ip": state.pod_ip}]
        conditions += [
            cond("PodReadyToStartContainers", "True"),
            cond("Initialized", "True"),
            cond("Ready", "True"),
            cond("ContainersReady", "True"),
        ]
        if state.pending is not None:
            conditions.append(cond("PodResizePending", "True", state.pending[0], state.pending[1]))
        if state.in_progress_generation is not None:
            conditions.append(cond("PodResizeInProgress", "True"))
        status["conditions"] = conditions
        statuses = []
        for spec_c in pod["spec"].get("containers") or []:
            c = state.containers.get(spec_c["name"])
            if c is None:
                continue
            statuses.append(
                {
                    "name": c.name,
                    "image": spec_c.get("image", ""),
                    "imageID": f"emulated://{spec_c.get('image', '')}",
                    "containerID": f"containerd://{c.container_id}",
                    "ready": True,
                    "started": True,
                    "restartCount": c.restart_count,
                    "state": {"running": {"startedAt": c.started_at}},
                    "lastState": {},
                    "resources": state.actuated.get(c.name, {}),
                    "allocatedResources": dict(state.allocated.get(c.name, {}).get("requests") or {}),
                }
            )
        status["containerStatuses"] = statuses
        init_statuses = []
        completed = {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": state.started_at,
                "finishedAt": state.started_at,
            }
        }
        for spec_c in pod["spec"].get("initContainers") or []:
            sidecar = spec_c.get("restartPolicy") == "Always"  # runs beside the app containers
            init_statuses.append(
                {
                    "name": spec_c["name"],
                    "image": spec_c.get("image", ""),
                    "imageID": f"emulated://{spec_c.get('image', '')}",
                    "containerID": "containerd://"
                    + hashlib.sha256((state.uid + spec_c["name"]).encode()).hexdigest(),
                    "ready": True,
                    "started": sidecar,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": state.started_at}} if sidecar else completed,
                    "lastState": {},
                    **({"resources": _resources_block(spec_c)} if sidecar else {}),
                }
            )
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        return status

    @staticmethod
    def _comparable(status: Json) -> Json:
        """A status without timestamps that only move, to decide whether a write is needed."""
        out = dict(status)
        out["conditions"] = sorted(
            ({k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastProbeTime")}
             for c in status.get("conditions") or []),
            key=lambda c: str(c.get("type")),
        )  # fmt: skip
        return out

    def _write_status(self, pod: Json, state: _PodState) -> None:
        for _attempt in range(3):
            desired = self._desired_status(pod, state)
            wanted = self._comparable(desired)
            if wanted == self._comparable(pod.get("status") or {}):
                return
            if wanted == state.last_written and pod["metadata"]["resourceVersion"] == state.last_written_rv:
                return  # the server normalised our last write; writing again would loop
            body = {**pod, "status": desired}
            meta = pod["metadata"]
            try:
                resp = self._core.replace_namespaced_pod_status(
                    meta["name"], meta["namespace"], body, _preload_content=False
                )
            except ApiException as exc:
                if exc.status == 409:
                    fresh = self._core.read_namespaced_pod(
                        meta["name"], meta["namespace"], _preload_content=False
                    )
                    pod = json.loads(fresh.data)
                    if pod["metadata"]["uid"] != state.uid:
                        return
                    self._remember(pod)
                    continue
                if exc.status == 404:
                    return
                raise
            written = json.loads(resp.data)
            state.last_written, state.last_written_rv = wanted, written["metadata"]["resourceVersion"]
            self._remember(written)
            return
        self._after(0.5, state.key)


# -------------------------------------------------------------------- process entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGTERM/SIGINT (used by ``mbcas cluster up``)."""
    parser = argparse.ArgumentParser(
        prog="python -m mbcas.local.emulator", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", action="append", default=[], help="NAME[:CPU[:MEMORY]] (repeatable)")
    parser.add_argument("--resize-delay", type=float, default=1.0)
    parser.add_argument(
        "--kernel", action="store_true", help="run real burners in real cgroups when possible"
    )
    parser.add_argument("--cgroup-prefix", default=None, help="cgroup prefix for kernel mode")
    parser.add_argument("--cgroup-root", default="/sys/fs/cgroup")
    parser.add_argument(
        "--ready-file", default=None, help="write this file (with the cgroup prefix) once started"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        nodes = [NodeSpec.parse(n) for n in args.node] or [NodeSpec("mbcas-node-1")]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kernel = KernelMode(root=Path(args.cgroup_root), prefix=args.cgroup_prefix) if args.kernel else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emulator = NodeEmulator(
        kubeconfig=args.kubeconfig, nodes=nodes, resize_delay=args.resize_delay, kernel=kernel
    )
    emulator.start()
    try:
        sandbox = emulator.sandbox
        prefix = sandbox.prefix if sandbox is not None and sandbox.available else ""
        log.info(
            "node emulator running for %s (cgroup prefix %s)",
            ", ".join(emulator.node_names),
            prefix or "none",
        )
        if args.ready_file:
            Path(args.ready_file).write_text(json.dumps({"pid": os.getpid(), "cgroup_prefix": prefix}))
        stop.wait()
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
