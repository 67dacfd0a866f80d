"""Support for the PodAllocation/controller/CLI integration tests: allocation bodies, fast settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

__all__ = ["CRD_PATH", "FAST", "make_allocation", "set_allocation"]

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "podallocations.mbcas.io.yaml"

FAST = {
    "health_port": 0,
    "metrics_port": 0,
    "rules": {"min_interval_s": 1.0, "failure_cooldown_s": 0.5, "failure_cooldown_max_s": 4.0},
    "resync_s": 2.0,
    "lease_duration_s": 4.0,
    "lease_renew_deadline_s": 3.0,
    "lease_renew_s": 1.0,
}


def make_allocation(
    pod: Any,
    cpu: str,
    *,
    mode: str = "enforce",
    decided_at: dt.datetime | None = None,
    node: str | None = None,
    uid: str | None = None,
    owner: bool = True,
    reason: str = "test",
) -> dict[str, Any]:
    """A PodAllocation body for a pod (client model), named by the pod UID, owned by the pod."""
    pod_uid = uid or pod.metadata.uid
    when = (decided_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta: dict[str, Any] = {"name": pod.metadata.uid, "namespace": pod.metadata.namespace}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid}
        ]
    return {
        "apiVersion": "mbcas.io/v1alpha1",
        "kind": "PodAllocation",
        "metadata": meta,
        "spec": {
            "podName": pod.metadata.name,
            "podUID": pod_uid,
            "nodeName": node or pod.spec.node_name,
            "cpuLimit": cpu,
            "mode": mode,
            "reason": reason,
            "decidedAt": when,
        },
    }


def set_allocation(custom: Any, namespace: str, name: str, cpu: str, **spec: Any) -> Any:
    """Merge-patch the allocation's spec (cpuLimit, a fresh decidedAt, any extra fields)."""
    body = {
        "spec": {
            "cpuLimit": cpu,
            "decidedAt": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **spec,
        }
    }
    return custom.patch_namespaced_custom_object(
        "mbcas.io",
        "v1alpha1",
        namespace,
        "podallocations",
        name,
        body,
        _content_type="application/merge-patch+json",
    )
