"""Helpers for tests that talk to the local control plane (pod bodies, waiting, resizing).

Shared by every integration test: add to this module carefully (new functions, no changes to the
behaviour of existing ones). Pod bodies are plain dicts, accepted by the kubernetes client as is.

Note on the installed kubernetes client (v37): it drops falsy query parameters, so
``grace_period_seconds=0`` is silently ignored; put ``{"gracePeriodSeconds": 0}`` in the body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_NODE",
    "condition",
    "make_pod",
    "pod_bound_token",
    "resize_pod",
    "wait_for",
    "wait_for_pod",
    "wait_running",
]

DEFAULT_NODE = "mbcas-node-1"
T = TypeVar("T")


def make_pod(
    name: str,
    cpu_request: str | None = None,
    cpu_limit: str | None = None,
    node: str | None = DEFAULT_NODE,
    *,
    memory_request: str | None = None,
    memory_limit: str | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
    containers: int = 1,
    image: str = "registry.k8s.io/pause:3.10",
) -> dict[str, Any]:
    """A pod body with ``containers`` identical containers (``c0``, ``c1``...).

    ``node=None`` leaves ``spec.nodeName`` empty, so the emulator binds the pod itself.
    ``owner`` is an ownerReference dict (apiVersion, kind, name, uid).
    """
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if cpu_request is not None:
        requests["cpu"] = cpu_request
    if cpu_limit is not None:
        limits["cpu"] = cpu_limit
    if memory_request is not None:
        requests["memory"] = memory_request
    if memory_limit is not None:
        limits["memory"] = memory_limit
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    metadata: dict[str, Any] = {
        "name": name,
        "labels": dict(labels or {}),
        "annotations": dict(annotations or {}),
    }
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": image, "resources": resources} for i in range(containers)],
        "terminationGracePeriodSeconds": 1,
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def wait_for(
    predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.1, message: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; return it, or fail with the last value.

    Exceptions from the predicate count as "not yet" (the last one is reported on timeout).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {message or predicate!r}; last: {last!r}"
            )
        time.sleep(interval)


def condition(pod: Any, ctype: str) -> Any:
    """The pod condition of type ``ctype`` (a client model), or None."""
    for cond in (pod.status.conditions if pod.status else None) or []:
        if cond.type == ctype:
            return cond
    return None


def wait_for_pod(
    core_v1: Any,
    namespace: str,
    name: str,
    predicate: Callable[[Any], Any],
    *,
    timeout: float = 30.0,
    message: str = "",
) -> Any:
    """Re-read the pod until ``predicate(pod)`` is truthy; return the pod."""

    def check() -> Any:
        pod = core_v1.read_namespaced_pod(name, namespace)
        return pod if predicate(pod) else None

    return wait_for(check, timeout=timeout, message=message or f"pod {namespace}/{name}")


def pod_bound_token(core_v1: Any, namespace: str, service_account: str, pod: Any) -> str:
    """A token of ``service_account`` bound to ``pod`` (TokenRequest): the apiserver adds the
    pod's node as the ``authentication.kubernetes.io/node-name`` claim, as for a DaemonSet pod."""
    body = {
        "spec": {
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod.metadata.name,
                "uid": pod.metadata.uid,
            }
        }
    }
    return str(core_v1.create_namespaced_service_account_token(service_account, namespace, body).status.token)


def wait_running(core_v1: Any, namespace: str, name: str, timeout: float = 30.0) -> Any:
    """Wait until the pod is Running with container statuses (the emulator's work)."""
    return wait_for_pod(
        core_v1,
        namespace,
        name,
        lambda p: p.status.phase == "Running" and p.status.container_statuses,
        timeout=timeout,
        message=f"pod {namespace}/{name} Running",
    )


def resize_pod(
    core_v1: Any,
    namespace: str,
    name: str,
    *,
    cpu_request: str | None = None,
    cpu_limit: str | None = None,
    memory_request: str | None = None,
    container: str = "c0",
) -> Any:
    """Change a container's CPU (or memory request) through the pod's ``resize`` subresource
    (strategic merge patch)."""
    resources: dict[str, dict[str, str]] = {}
    if cpu_request is not None:
        resources.setdefault("requests", {})["cpu"] = cpu_request
    if memory_request is not None:
        resources.setdefault("requests", {})["memory"] = memory_request
    if cpu_limit is not None:
        resources["limits"] = {"cpu": cpu_limit}
    body = {"spec": {"containers": [{"name": container, "resources": resources}]}}
    return core_v1.patch_namespaced_pod_resize(
        name, namespace, body, _content_type="application/strategic-merge-patch+json"
    )
