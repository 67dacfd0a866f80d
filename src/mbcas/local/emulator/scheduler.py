"""The emulator's scheduler: binding unscheduled pods and admitting pods onto a node.

No kube-scheduler runs on the local control plane, so :class:`Scheduler` binds each pod that names
no node to the least-loaded emulated node that fits its requests (most free CPU wins), through the
``pods/binding`` subresource; a pod that fits nowhere stays Pending, as with a real scheduler and
a full cluster. :func:`admission_failure` is the kubelet's admission check for a pod bound to a
node: ``OutOfcpu`` or ``OutOfmemory`` when its requests do not fit next to what is already
allocated there. Both count requests only, never limits, as Kubernetes does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from mbcas.local.emulator.nodes import EmulatedNodes, NodeSpec
from mbcas.local.podres import Json, Resources, pod_requests

__all__ = ["Scheduler", "admission_failure"]


def admission_failure(node: NodeSpec, used: Resources, want: Resources) -> tuple[str, str] | None:
    """``(reason, message)`` when a pod wanting ``want`` cannot be admitted next to ``used``, else None."""
    alloc = node.allocatable
    failed: tuple[str, str] | None = None
    if (used.cpu or 0) + (want.cpu or 0) > (alloc.cpu or 0):
        failed = ("OutOfcpu", f"Node didn't have enough resource: cpu, requested: {want.cpu}m")
    elif (used.memory or 0) + (want.memory or 0) > (alloc.memory or 0):
        failed = ("OutOfmemory", f"Node didn't have enough resource: memory, requested: {want.memory}")
    return failed


class Scheduler:
    """Binds unscheduled pods to the emulated nodes; ``used(node)`` is what is allocated there."""

    def __init__(self, core: Any, nodes: EmulatedNodes, used: Callable[[str], Resources]) -> None:
        self._core = core
        self._nodes = nodes
        self._used = used

    def bind(self, pod: Json) -> None:
        """Bind ``pod`` to the fitting node with the most free CPU; leave it Pending if none fits."""
        want = pod_requests(pod)
        best: tuple[int, str] | None = None
        for node in self._nodes.specs:
            used = self._used(node.name)
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
