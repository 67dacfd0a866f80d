"""The emulated Node objects: registration, status and heartbeats.

:class:`NodeSpec` is one emulated node as given on the command line (``NAME[:CPU[:MEMORY]]``).
:class:`EmulatedNodes` makes each look like a real kubelet's node: it registers the Node with the
labels a kubelet sets (``kubernetes.io/os=linux``, hostname, ...), capacity and allocatable, the
pressure and ``Ready`` conditions and node info, and (in kernel mode) annotates it with the cgroup
prefix and root of the emulator's sandbox so that an agent knows where its pods' cgroups are. Its
heartbeat renews each node's Lease in ``kube-node-lease`` every ``heartbeat`` seconds and posts the
whole status again every sixth beat, as the kubelet's node status updates do.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from mbcas.local.emulator.pods import timestamp
from mbcas.local.kernel import KernelSandbox
from mbcas.local.podres import Json, Resources, cpu_millis, memory_bytes
from mbcas.local.versions import KUBERNETES_VERSION

__all__ = ["EMULATED_LABEL", "PREFIX_ANNOTATION", "ROOT_ANNOTATION", "EmulatedNodes", "NodeSpec"]

EMULATED_LABEL = "mbcas.io/emulated"
PREFIX_ANNOTATION = "mbcas.io/emulator-cgroup-prefix"
ROOT_ANNOTATION = "mbcas.io/emulator-cgroup-root"


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


class EmulatedNodes:
    """The Node objects and Leases of the emulated nodes, written through ``core``."""

    def __init__(self, core: Any, specs: Sequence[NodeSpec], sandbox: KernelSandbox | None) -> None:
        self._core = core
        self.specs = tuple(specs)
        self._sandbox = sandbox

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.specs]

    def spec(self, name: str) -> NodeSpec:
        """The spec of the emulated node ``name``."""
        return next(n for n in self.specs if n.name == name)

    def register_all(self) -> None:
        """Create (or update) every Node with its status and Lease."""
        for index, node in enumerate(self.specs):
            self.register(index, node)

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

    @staticmethod
    def _node_status(node: NodeSpec) -> Json:
        now = timestamp()
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

    def register(self, index: int, node: NodeSpec) -> None:
        """Create the Node (or update its labels and annotations), post its status, renew its Lease."""
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
        self.renew_lease(node.name)

    def renew_lease(self, name: str) -> None:
        """Renew (or create) the node's Lease in ``kube-node-lease``."""
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

    def heartbeat_loop(
        self, stop: threading.Event, heartbeat: float, note_error: Callable[[str, BaseException], None]
    ) -> None:
        """Renew the Leases every ``heartbeat`` seconds and the statuses every sixth time, until ``stop``."""
        last_status = time.monotonic()
        while not stop.wait(heartbeat):
            for index, node in enumerate(self.specs):
                try:
                    self.renew_lease(node.name)
                    if time.monotonic() - last_status >= 6 * heartbeat:
                        self.register(index, node)
                except Exception as exc:
                    note_error(f"heartbeat of {node.name}", exc)
            if time.monotonic() - last_status >= 6 * heartbeat:
                last_status = time.monotonic()
