"""An in-memory API for reconciler unit tests: pods, PodAllocations, Events, injectable failures.

:class:`FakeApi` answers :meth:`mbcas.kube.client.Kube.request_json` the way the apiserver does
for the requests the reconciler makes: pod GET and ``resize`` PATCH (strategic merge of CPU
limits, resourceVersion precondition, ``generation`` bump, a managedFields entry for the field
manager), PodAllocation GET/LIST/DELETE and ``status`` PATCH, Event POST. ``fail`` can make any
request raise a typed error; ``requests`` records every call.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mbcas.kube.errors import ConflictError, KubeError, NotFoundError, PodGoneError

__all__ = ["FakeApi", "Request", "allocation_body", "pod_body"]

ALLOC_PREFIX = "/apis/mbcas.io/v1alpha1"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any


def pod_body(
    name: str,
    *,
    namespace: str = "ns",
    uid: str | None = None,
    node: str = "n1",
    request: str = "250m",
    limit: str = "500m",
) -> dict[str, Any]:
    """A running Burstable pod with one container, its limit applied."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or str(uuid.uuid4()),
            "resourceVersion": "1",
            "generation": 1,
            "managedFields": [],
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "app",
                    "resources": {
                        "requests": {"cpu": request, "memory": "64Mi"},
                        "limits": {"cpu": limit},
                    },
                }
            ],
        },
        "status": {
            "phase": "Running",
            "qosClass": "Burstable",
            "observedGeneration": 1,
            "conditions": [],
            "containerStatuses": [{"name": "app", "resources": {"limits": {"cpu": limit}}}],
        },
    }


def allocation_body(
    pod: dict[str, Any], cpu: str, *, node: str | None = None, decided_at: dt.datetime | None = None
) -> dict[str, Any]:
    meta = pod["metadata"]
    return {
        "apiVersion": "mbcas.io/v1alpha1",
        "kind": "PodAllocation",
        "metadata": {
            "name": meta["uid"],
            "namespace": meta["namespace"],
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {
            "podName": meta["name"],
            "podUID": meta["uid"],
            "nodeName": node or pod["spec"]["nodeName"],
            "cpuLimit": cpu,
            "mode": "enforce",
            "reason": "test",
            "decidedAt": (decided_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


class FakeApi:
    """Stands in for :class:`mbcas.kube.client.Kube` (``request_json`` and ``host``)."""

    host = "https://fake"

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}  # "ns/name" -> body
        self.allocations: dict[str, dict[str, Any]] = {}  # "ns/name" -> body
        self.events: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self.fail: Callable[[str, str], KubeError | None] = lambda method, path: None
        self.kubelet_applies = True  # a resize is applied at once (status mirrors spec)
        self._rv = itertools.count(2)

    # ------------------------------------------------------------------ helpers for tests

    def add_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        self.pods[f"{body['metadata']['namespace']}/{body['metadata']['name']}"] = body
        return body

    def add_allocation(self, body: dict[str, Any]) -> dict[str, Any]:
        self.allocations[f"{body['metadata']['namespace']}/{body['metadata']['name']}"] = body
        return body

    def resizes(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PATCH" and r.path.endswith("/resize")]

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events]

    def manual_resize(self, key: str, cpu: str, manager: str = "kubectl-patch") -> None:
        """Someone else resizes the pod (spec, status and managedFields as the apiserver keeps them)."""
        pod = self.pods[key]
        self._set_limit(pod, "app", cpu, manager)

    # ------------------------------------------------------------------ the API

    def request_json(self, method: str, path: str, *, what: str, body: Any = None, **kw: Any) -> Any:
        self.requests.append(Request(method, path, copy.deepcopy(body)))
        err = self.fail(method, path)
        if err is not None:
            raise err
        if path.endswith("/events"):
            self.events.append(body)
            return body
        if path.startswith("/api/v1/namespaces/") and "/pods/" in path:
            return self._pod_request(method, path, what, body, kw.get("query") or {})
        if path.startswith(ALLOC_PREFIX):
            return self._allocation_request(method, path, what, body)
        raise NotFoundError(f"{what}: unexpected {method} {path}", status=404)

    def _pod_request(self, method: str, path: str, what: str, body: Any, query: Any) -> Any:
        parts = path.split("/")
        key = f"{parts[4]}/{parts[6]}"
        pod = self.pods.get(key)
        if pod is None:
            raise PodGoneError(f"{what}: pods {parts[6]!r} not found", status=404)
        if method == "GET":
            return copy.deepcopy(pod)
        assert method == "PATCH" and path.endswith("/resize"), path
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv is not None and rv != pod["metadata"]["resourceVersion"]:
            raise ConflictError(f"{what}: the object has been modified", status=409)
        for c in body["spec"]["containers"]:
            self._set_limit(pod, c["name"], c["resources"]["limits"]["cpu"], query.get("fieldManager", ""))
        return copy.deepcopy(pod)

    def _set_limit(self, pod: dict[str, Any], container: str, cpu: str, manager: str) -> None:
        for c in pod["spec"]["containers"]:
            if c["name"] == container:
                c["resources"].setdefault("limits", {})["cpu"] = cpu
        meta = pod["metadata"]
        meta["generation"] += 1
        meta["resourceVersion"] = str(next(self._rv))
        key = f'{{"name":"{container}"}}'
        fields = {"f:spec": {"f:containers": {f"k:{key}": {"f:resources": {"f:limits": {"f:cpu": {}}}}}}}
        meta["managedFields"] = [
            e
            for e in meta["managedFields"]
            if e.get("manager") != manager or e.get("subresource") != "resize"
        ]
        for e in meta["managedFields"]:  # the field moves to the new writer
            e["fieldsV1"]["f:spec"]["f:containers"].pop(f"k:{key}", None)
        meta["managedFields"].append(
            {"manager": manager, "operation": "Update", "subresource": "resize", "fieldsV1": fields}
        )
        if self.kubelet_applies:
            for cs in pod["status"]["containerStatuses"]:
                if cs["name"] == container:
                    cs["resources"].setdefault("limits", {})["cpu"] = cpu
            pod["status"]["observedGeneration"] = meta["generation"]

    def _allocation_request(self, method: str, path: str, what: str, body: Any) -> Any:
        rest = path[len(ALLOC_PREFIX) :].strip("/").split("/")
        if rest[0] == "podallocations" or (len(rest) == 3 and method == "GET"):
            ns = rest[1] if rest[0] == "namespaces" else None
            items = [
                copy.deepcopy(a)
                for a in self.allocations.values()
                if ns is None or a["metadata"]["namespace"] == ns
            ]
            return {"metadata": {"resourceVersion": str(next(self._rv))}, "items": items}
        key = f"{rest[1]}/{rest[3]}"
        current = self.allocations.get(key)
        if current is None:
            raise NotFoundError(f"{what}: podallocations {rest[3]!r} not found", status=404)
        if method == "GET":
            return copy.deepcopy(current)
        if method == "DELETE":
            pre = ((body or {}).get("preconditions") or {}).get("uid")
            if pre is not None and pre != current["metadata"]["uid"]:
                raise ConflictError(f"{what}: precondition failed", status=409)
            return self.allocations.pop(key)
        assert method == "PATCH" and rest[-1] == "status", path
        current["status"] = copy.deepcopy(body["status"])
        current["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(current)
