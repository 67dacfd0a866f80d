"""Fakes for the agent unit tests: an in-memory API, a pod source and a simulated node.

:class:`FakeKube` answers the few raw requests the agent makes (PodAllocation create, patch,
delete, list; the ConfigMap; Events) from dicts and records each one. :class:`FakeNode` keeps pod
cgroups in a :class:`fake_cgroupfs.FakeCgroupFS` (cgroup v2, cgroupfs driver) and advances their
counters one interval at a time: a pod uses ``min(demand, limit)`` and is throttled in every period
while its demand exceeds its limit. Pods are pod bodies parsed by :meth:`PodInfo.from_body`, as the
agent's watch cache parses them; a pod may carry a native sidecar with a CPU limit, which the split
leaves alone (its limit is part of the pod's). :meth:`FakeNode.apply` plays the controller: each
enforce decision becomes the pod's limit, the ``app`` container getting what the sidecar does not
hold.
"""

from __future__ import annotations

import copy
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fake_cgroupfs import FakeCgroupFS

from mbcas.cgroups import LayoutKind
from mbcas.cgroups.reader import CgroupReader
from mbcas.core.units import parse_cpu
from mbcas.kube.errors import ConflictError, NotFoundError
from mbcas.kube.pods import PodInfo

__all__ = ["FakeKube", "FakeNode", "FakePods", "Request"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any


class FakeKube:
    """Stands in for :class:`mbcas.kube.client.Kube` (``request_json`` only)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}  # "namespace/name" -> PodAllocation body
        # Body of the live ConfigMap (None = absent): present and empty unless a test says otherwise.
        self.config_map: dict[str, Any] | None = {"data": {}}
        self.config_error: Exception | None = None  # raised by a read of the ConfigMap
        self.requests: list[Request] = []

    def writes(self) -> list[Request]:
        """Requests that changed PodAllocations."""
        return [
            r for r in self.requests if r.method in ("POST", "PATCH", "DELETE") and "podallocations" in r.path
        ]

    def request_json(self, method: str, path: str, *, what: str, body: Any = None, **_: Any) -> Any:
        self.requests.append(Request(method, path, body))
        if "/configmaps/" in path:
            if self.config_error is not None:
                raise self.config_error
            if self.config_map is None:
                raise NotFoundError(f"{what}: not found", status=404)
            return self.config_map
        if "/events" in path:
            return {}
        if "podallocations" not in path:
            raise NotFoundError(f"{what}: unexpected request {method} {path}", status=404)
        parts = path.split("/")
        if method == "GET":
            return {"items": list(self.objects.values())}
        namespace = parts[parts.index("namespaces") + 1]
        if method == "POST":
            key = f"{namespace}/{body['metadata']['name']}"
            if key in self.objects:
                raise ConflictError(f"{what}: already exists", status=409)
            self.objects[key] = body
            return body
        key = f"{namespace}/{parts[-1]}"
        if key not in self.objects:
            raise NotFoundError(f"{what}: not found", status=404)
        if method == "DELETE":
            return self.objects.pop(key)
        self.objects[key]["spec"].update(body["spec"])  # merge patch of spec
        return self.objects[key]

    def spec(self, uid: str) -> dict[str, Any]:
        (found,) = [o["spec"] for o in self.objects.values() if o["spec"]["podUID"] == uid]
        return found


class FakePods:
    """A :class:`mbcas.agent.loop.PodSource` over a dict the test edits."""

    def __init__(self) -> None:
        self.by_uid: dict[str, PodInfo] = {}
        self.synced = True

    def pods(self) -> dict[str, PodInfo]:
        return dict(self.by_uid)


class FakeNode:
    """Pods with fake cgroups burning what they demand, within their CPU limit (see module docs)."""

    def __init__(self, root: Path) -> None:
        self.fs = FakeCgroupFS(root, LayoutKind.V2)
        self.now_ns = 1_000_000_000_000
        self.reader = CgroupReader(root, clock_ns=lambda: self.now_ns)
        self.pods = FakePods()
        self.demand: dict[str, float] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self._limit: dict[str, int | None] = {}  # the pod's limit (the kernel's quota)
        self._held: dict[str, int] = {}  # the sidecar's limit, part of the pod's
        self._usage: dict[str, int] = {}
        self._periods: dict[str, int] = {}
        self._throttled: dict[str, int] = {}

    @property
    def now(self) -> float:
        """Wall-clock seconds for the agent (same time base as the cgroup reader)."""
        return self.now_ns / 1e9

    def add(
        self,
        name: str,
        demand: float,
        *,
        request: str | None = "100m",
        limit: str | None = "400m",
        namespace: str = "shop",
        labels: Mapping[str, str] | None = None,
        sidecar: bool = False,
        bare: bool = False,
    ) -> str:
        """A pod with one ``app`` container (with ``sidecar``, also a native sidecar at 50m/100m the
        split leaves alone; with ``bare``, a second container without CPU resources); returns its
        UID. Its limit (the pod cgroup's quota) is the app's plus the sidecar's."""
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod:{namespace}/{name}"))  # same pod, same UID
        resources: dict[str, dict[str, str]] = {}
        if request is not None:
            resources["requests"] = {"cpu": request}
        if limit is not None:
            resources["limits"] = {"cpu": limit}
        containers: list[dict[str, Any]] = [{"name": "app", "resources": resources}]
        if bare:
            containers.append({"name": "bare", "resources": {"requests": {"memory": "16Mi"}}})
        spec: dict[str, Any] = {"nodeName": "n1", "containers": containers}
        self._held[uid] = 100 if sidecar else 0
        if sidecar:
            spec["initContainers"] = [
                {
                    "name": "sidecar",
                    "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "100m"}},
                }
            ]
        self.bodies[uid] = {
            "metadata": {
                "namespace": namespace,
                "name": name,
                "uid": uid,
                "labels": dict(labels or {}),
                "resourceVersion": "1",
            },
            "spec": spec,
            "status": {"phase": "Running"},
        }
        self.pods.by_uid[uid] = PodInfo.from_body(self.bodies[uid])
        self._limit[uid] = None if limit is None or bare else parse_cpu(limit) + self._held[uid]
        self.demand[uid] = demand
        self._usage[uid] = self._periods[uid] = self._throttled[uid] = 0
        self._write(uid)
        return uid

    def add_body(self, body: dict[str, Any], demand: float, *, limit_mcpu: int | None) -> str:
        """A pod from a whole pod body (any containers); ``limit_mcpu`` is its cgroup's quota."""
        uid = str(body["metadata"]["uid"])
        self.bodies[uid] = body
        self.pods.by_uid[uid] = PodInfo.from_body(body)
        self._limit[uid], self._held[uid], self.demand[uid] = limit_mcpu, 0, demand
        self._usage[uid] = self._periods[uid] = self._throttled[uid] = 0
        self._write(uid)
        return uid

    def relpath(self, uid: str) -> str:
        seg = {"Burstable": "burstable/", "BestEffort": "besteffort/"}.get(self.pods.by_uid[uid].qos, "")
        return f"kubepods/{seg}pod{uid}"

    def _write(self, uid: str) -> None:
        limit = self._limit[uid]
        self.fs.write(
            self.relpath(uid),
            usage_usec=self._usage[uid],
            nr_periods=self._periods[uid],
            nr_throttled=self._throttled[uid],
            throttled_usec=0,
            quota_usec=None if limit is None else limit * 100,
        )

    def advance(self, seconds: float = 1.0) -> None:
        """Let ``seconds`` pass: every pod burns ``min(demand, limit)``."""
        self.now_ns += round(seconds * 1e9)
        periods = round(seconds * 10)  # 100 ms CFS periods
        for uid in self.pods.by_uid:
            demand = self.demand[uid]
            limit = self._limit[uid]
            cap = math.inf if limit is None else limit / 1000.0
            self._usage[uid] += round(min(demand, cap) * seconds * 1e6)
            self._periods[uid] += periods
            if demand > cap:
                self._throttled[uid] += periods
            self._write(uid)

    def set_limit(self, uid: str, mcpu: int) -> None:
        """The pod's CPU limit becomes ``mcpu`` (spec and kernel), as a resize does: the app
        container gets what the sidecar does not hold."""
        body = copy.deepcopy(self.bodies[uid])
        app = mcpu - self._held[uid]
        body["spec"]["containers"][0]["resources"].setdefault("limits", {})["cpu"] = f"{app}m"
        self.bodies[uid] = body
        self.pods.by_uid[uid] = PodInfo.from_body(body)
        self._limit[uid] = mcpu
        self._write(uid)

    def apply(self, kube: FakeKube) -> None:
        """The controller: every enforce decision becomes its pod's limit at once."""
        for obj in kube.objects.values():
            spec = obj["spec"]
            uid = spec["podUID"]
            if spec["mode"] == "enforce" and uid in self.pods.by_uid:
                mcpu = parse_cpu(spec["cpuLimit"])
                if self._limit[uid] != mcpu:
                    self.set_limit(uid, mcpu)

    def limit(self, uid: str) -> int | None:
        """The pod's CPU limit (millicores)."""
        return self._limit[uid]


def make_agent(
    node: FakeNode, kube: FakeKube, *, allocatable: str, reserve: str = "0", mode: Any = None
) -> Any:
    """A NodeAgent over ``node``'s fake cgroups and pods, writing to ``kube``, on the node's clock;
    no ConfigMap, rollout ``mode`` (default enforce)."""
    from mbcas.agent.config import AgentConfig
    from mbcas.api.live import LiveConfig, RolloutMode

    config = AgentConfig(
        node="n1",
        allocatable_cpu=allocatable,
        reserve_cpu=reserve,
        cgroup_root=str(node.fs.root),
        config_map=None,
        live=LiveConfig(mode=mode or RolloutMode.ENFORCE),
    )
    return agent_on(node, kube, config)


def agent_on(node: FakeNode, kube: FakeKube, config: Any) -> Any:
    """A NodeAgent with ``config`` over ``node``'s fake cgroups and pods, writing to ``kube``, on
    the node's clock."""
    from mbcas.agent.loop import NodeAgent

    return NodeAgent(
        config,
        node="n1",
        pods=node.pods,
        reader=node.reader,
        kube=kube,  # type: ignore[arg-type]
        clock=lambda: node.now,
        mono=lambda: node.now,
    )
