"""The agent's side of PodAllocation objects: create, update, delete and list those of one node.

One PodAllocation per managed pod, named by the pod's UID, in the pod's namespace, labelled
``mbcas.io/node=<node>`` (so the agent lists only its own; a node name longer than a label value
may be, 63 characters, is labelled ``sha256-<first 56 hex digits of its hash>`` instead, see
:func:`node_label_value`) and owned by the pod (ownerReference, so the garbage collector removes
it with the pod).

:class:`AllocationStore` is a thin writer: *whether* to write is the contract's write rule
(:func:`mbcas.api.contract.plan_writes`) over the node's
:class:`~mbcas.policy.ledger.DecisionLedger`, which also remembers what was written; the store
keeps no memory of its own. Updates are JSON merge patches of ``spec`` only, so they never
conflict with the controller's ``status`` writes and need no resourceVersion; a create that finds
the object already there (an agent restart) becomes a patch, and a patch that finds it gone
becomes a create. Errors are typed :class:`~mbcas.kube.errors.KubeError`; the caller decides
about backoff (the agent never queues old decisions: it writes the current tick's plan or nothing).
"""

from __future__ import annotations

import hashlib
import logging
from enum import StrEnum
from typing import Any

from mbcas.api.models import GROUP, PLURAL, VERSION, PodAllocation, PodAllocationSpec
from mbcas.kube.client import Kube
from mbcas.kube.errors import ConflictError, NotFoundError
from mbcas.policy.ledger import Written

__all__ = ["NODE_LABEL", "AllocationStore", "WriteResult", "node_label_value"]

log = logging.getLogger(__name__)

NODE_LABEL = "mbcas.io/node"

_LABEL_VALUE_MAX = 63


def node_label_value(node: str) -> str:
    """The ``mbcas.io/node`` label value of ``node``: the name itself when it fits a label value
    (node names are DNS subdomains, so only the length can be too much), else
    ``sha256-`` and the first 56 hex digits of its SHA-256 (63 characters)."""
    if len(node) <= _LABEL_VALUE_MAX:
        return node
    return "sha256-" + hashlib.sha256(node.encode()).hexdigest()[: _LABEL_VALUE_MAX - 7]


class WriteResult(StrEnum):
    CREATED = "created"
    UPDATED = "updated"


def _base(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"


class AllocationStore:
    """PodAllocations of ``node`` (see module docs)."""

    def __init__(self, kube: Kube, node: str) -> None:
        self.kube = kube
        self.node = node

    def list(self) -> dict[str, Written]:
        """This node's allocations in the API, by pod UID (for the ledger after a restart)."""
        body = self.kube.request_json(
            "GET",
            f"/apis/{GROUP}/{VERSION}/{PLURAL}",
            what=f"list podallocations of node {self.node}",
            query={"labelSelector": f"{NODE_LABEL}={node_label_value(self.node)}"},
        )
        found: dict[str, Written] = {}
        for item in body.get("items") or []:
            try:
                obj = PodAllocation.from_body(item)
            except ValueError as exc:
                log.warning("ignoring a malformed PodAllocation: %s", exc)
                continue
            spec = obj.spec
            if spec.node_name != self.node:
                continue
            found[spec.pod_uid] = Written(
                namespace=str(obj.metadata.get("namespace", "")),
                pod_name=spec.pod_name,
                mcpu=spec.cpu_limit_mcpu,
                mode=spec.mode.value,
                decided_at=spec.decided_at.timestamp(),
            )
        return found

    def write(self, namespace: str, spec: PodAllocationSpec, *, exists: bool) -> WriteResult:
        """Create (``exists`` False) or update the allocation of ``spec.pod_uid``."""
        result = WriteResult.UPDATED
        if not exists:
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
        return result

    def delete(self, namespace: str, uid: str) -> bool:
        """Delete the allocation of pod ``uid``; False if it was already gone."""
        try:
            self.kube.request_json(
                "DELETE", f"{_base(namespace)}/{uid}", what=f"delete podallocation {namespace}/{uid}"
            )
        except NotFoundError:
            return False
        return True

    def _create(self, namespace: str, spec: PodAllocationSpec) -> None:
        obj = PodAllocation(metadata={"name": spec.pod_uid, "namespace": namespace}, spec=spec)
        body: dict[str, Any] = obj.to_body(owner_uid=spec.pod_uid)
        body["metadata"]["labels"] = {NODE_LABEL: node_label_value(self.node)}
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
