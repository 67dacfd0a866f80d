"""The agent's side of PodAllocation objects: create, update, delete and list those of one node.

One PodAllocation per managed pod, named by the pod's UID, in the pod's namespace, labelled
``mbcas.io/node=<node>`` (so the agent lists only its own) and owned by the pod (ownerReference,
so the garbage collector removes it with the pod).

:class:`AllocationStore` remembers its last successful write per pod and skips a write that
would change nothing the controller acts on (same ``cpuLimit`` and ``mode``): reasons and
timestamps alone never cause a write. Updates are JSON merge patches of ``spec`` only, so they
never conflict with the controller's ``status`` writes and need no resourceVersion; a create that
finds the object already there (an agent restart) becomes a patch, and a patch that finds it
gone becomes a create. Errors are typed :class:`~mbcas.kube.errors.KubeError`; the caller decides
about backoff (the agent never queues old decisions: it writes the current tick's plan or nothing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mbcas.api.models import GROUP, PLURAL, VERSION, PodAllocation, PodAllocationSpec
from mbcas.kube.client import Kube
from mbcas.kube.errors import ConflictError, NotFoundError

__all__ = ["NODE_LABEL", "AllocationStore", "StoredAllocation", "WriteResult"]

log = logging.getLogger(__name__)

NODE_LABEL = "mbcas.io/node"


class WriteResult(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class StoredAllocation:
    """What the store knows an allocation holds (its last write or what it listed)."""

    namespace: str
    pod_name: str
    cpu_limit_mcpu: int
    mode: str
    decided_at: float
    """Unix seconds."""


def _base(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"


class AllocationStore:
    """PodAllocations of ``node`` (see module docs). Not thread-safe: one per agent loop."""

    def __init__(self, kube: Kube, node: str) -> None:
        self.kube = kube
        self.node = node
        self._last: dict[str, StoredAllocation] = {}

    @property
    def known(self) -> dict[str, StoredAllocation]:
        """The last known allocation per pod UID (a copy)."""
        return dict(self._last)

    def list(self) -> dict[str, StoredAllocation]:
        """List this node's allocations from the API and remember them (replaces the memory)."""
        body = self.kube.request_json(
            "GET",
            f"/apis/{GROUP}/{VERSION}/{PLURAL}",
            what=f"list podallocations of node {self.node}",
            query={"labelSelector": f"{NODE_LABEL}={self.node}"},
        )
        found: dict[str, StoredAllocation] = {}
        for item in body.get("items") or []:
            try:
                obj = PodAllocation.from_body(item)
            except ValueError as exc:
                log.warning("ignoring a malformed PodAllocation: %s", exc)
                continue
            spec = obj.spec
            if spec.node_name != self.node:
                continue
            found[spec.pod_uid] = StoredAllocation(
                namespace=str(obj.metadata.get("namespace", "")),
                pod_name=spec.pod_name,
                cpu_limit_mcpu=spec.cpu_limit_mcpu,
                mode=spec.mode.value,
                decided_at=spec.decided_at.timestamp(),
            )
        self._last = found
        return dict(found)

    def write(self, namespace: str, spec: PodAllocationSpec, *, force: bool = False) -> WriteResult:
        """Create or update the allocation of ``spec.pod_uid``; skip it if nothing would change
        (``force`` writes anyway, e.g. to refresh ``decidedAt``)."""
        uid = spec.pod_uid
        last = self._last.get(uid)
        if (
            not force
            and last is not None
            and last.namespace == namespace
            and last.cpu_limit_mcpu == spec.cpu_limit_mcpu
            and last.mode == spec.mode.value
        ):
            return WriteResult.SKIPPED
        result = WriteResult.UPDATED
        if last is None:
            try:
                self._create(namespace, spec)
                result = WriteResult.CREATED
            except ConflictError:  # already there (e.g. written before a restart): update it
                self._patch(namespace, spec)
        else:
            try:
                self._patch(namespace, spec)
            except NotFoundError:  # deleted behind our back: recreate
                self._create(namespace, spec)
                result = WriteResult.CREATED
        self._last[uid] = StoredAllocation(
            namespace=namespace,
            pod_name=spec.pod_name,
            cpu_limit_mcpu=spec.cpu_limit_mcpu,
            mode=spec.mode.value,
            decided_at=spec.decided_at.timestamp(),
        )
        return result

    def delete(self, namespace: str, uid: str) -> bool:
        """Delete the allocation of pod ``uid``; False if it was already gone."""
        self._last.pop(uid, None)
        try:
            self.kube.request_json(
                "DELETE", f"{_base(namespace)}/{uid}", what=f"delete podallocation {namespace}/{uid}"
            )
        except NotFoundError:
            return False
        return True

    def forget(self, uid: str) -> None:
        """Drop the memory of ``uid`` (the next write goes to the API)."""
        self._last.pop(uid, None)

    def _create(self, namespace: str, spec: PodAllocationSpec) -> None:
        obj = PodAllocation(metadata={"name": spec.pod_uid, "namespace": namespace}, spec=spec)
        body: dict[str, Any] = obj.to_body(owner_uid=spec.pod_uid)
        body["metadata"]["labels"] = {NODE_LABEL: self.node} if len(self.node) <= 63 else {}
        self.kube.request_json(
            "POST", _base(namespace), what=f"create podallocation {namespace}/{spec.pod_uid}", body=body
        )

    def _patch(self, namespace: str, spec: PodAllocationSpec) -> None:
        self.kube.request_json(
            "PATCH",
            f"{_base(namespace)}/{spec.pod_uid}",
            what=f"update podallocation {namespace}/{spec.pod_uid}",
            body={"spec": spec.to_body()},
            content_type="application/merge-patch+json",
        )
