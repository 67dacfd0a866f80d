"""A read-only view of a pod body (a plain dict from the API) with what resizing needs.

:class:`PodView` parses once: identity (namespace, name, UID, node, resourceVersion, generation),
the QoS class, each container's CPU request and limit, memory request and limit and CPU
``resizePolicy`` (as :class:`~mbcas.policy.pod_cpu.ContainerResources`; init containers, native
sidecars and pod-level resources too, as a :class:`~mbcas.policy.pod_cpu.PodCpu`), what the
kubelet reports as actually applied (``status.containerStatuses[].resources.limits.cpu``), and
the resize conditions ``PodResizePending`` (``Deferred`` / ``Infeasible``) and
``PodResizeInProgress``. Malformed quantities become ``None`` rather than exceptions, so one odd
pod never breaks a loop over many.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mbcas.core.qos import QoSClass
from mbcas.core.units import QuantityError, parse_cpu
from mbcas.policy.pod_cpu import ContainerResources, PodCpu
from mbcas.policy.resize_split import LimitPlan, qos_class

__all__ = ["PodView", "ResizeStatus"]


def _cpu(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_cpu(value)
    except (QuantityError, TypeError):
        return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _container(c: Mapping[str, Any]) -> ContainerResources:
    res = c.get("resources") or {}
    req = res.get("requests") or {}
    lim = res.get("limits") or {}
    restart = any(
        p.get("resourceName") == "cpu" and p.get("restartPolicy") == "RestartContainer"
        for p in c.get("resizePolicy") or []
    )
    return ContainerResources(
        name=str(c.get("name", "")),
        cpu_request_mcpu=_cpu(req.get("cpu")),
        cpu_limit_mcpu=_cpu(lim.get("cpu")),
        memory_request=_str(req.get("memory")),
        memory_limit=_str(lim.get("memory")),
        cpu_restart_required=restart,
    )


@dataclass(frozen=True)
class ResizeStatus:
    """The kubelet's view of the pod's last resize request."""

    pending_reason: str | None = None  # "Deferred" or "Infeasible" (PodResizePending)
    pending_message: str = ""
    in_progress: bool = False  # PodResizeInProgress
    error: str | None = None  # PodResizeInProgress reason "Error": its message

    @property
    def settled(self) -> bool:
        return self.pending_reason is None and not self.in_progress


@dataclass(frozen=True)
class PodView:
    """Parsed pod; ``body`` keeps the raw dict."""

    namespace: str
    name: str
    uid: str
    node_name: str | None
    resource_version: str
    generation: int | None
    observed_generation: int | None
    phase: str | None
    qos: QoSClass
    cpu: PodCpu
    """The CPU facts of every container, init containers and pod-level resources included."""
    status_cpu_limits: Mapping[str, int | None]
    resize: ResizeStatus
    deleting: bool = False
    body: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PodView:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        containers = tuple(_container(c) for c in spec.get("containers") or [])
        inits = spec.get("initContainers") or []
        pod_level = spec.get("resources") or {}
        cpu = PodCpu(
            containers=containers,
            init_containers=tuple(_container(c) for c in inits),
            sidecar_names=frozenset(
                str(c.get("name", "")) for c in inits if c.get("restartPolicy") == "Always"
            ),
            pod_request_mcpu=_cpu((pod_level.get("requests") or {}).get("cpu")),
            pod_limit_mcpu=_cpu((pod_level.get("limits") or {}).get("cpu")),
        )
        applied: dict[str, int | None] = {}
        for cs in status.get("containerStatuses") or []:
            limits = (cs.get("resources") or {}).get("limits") or {}
            applied[str(cs.get("name", ""))] = _cpu(limits.get("cpu"))
        pending_reason = None
        pending_message = ""
        in_progress = False
        error = None
        for cond in status.get("conditions") or []:
            if cond.get("status") != "True":
                continue
            if cond.get("type") == "PodResizePending":
                pending_reason = str(cond.get("reason") or "Deferred")
                pending_message = str(cond.get("message") or "")
            elif cond.get("type") == "PodResizeInProgress":
                in_progress = True
                if cond.get("reason") == "Error":
                    error = str(cond.get("message") or "resize failed in the kubelet")
        try:
            qos = QoSClass(str(status.get("qosClass")))
        except ValueError:
            qos = qos_class(cpu.every_container)
        generation = meta.get("generation")
        observed = status.get("observedGeneration")
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            node_name=spec.get("nodeName") or None,
            resource_version=str(meta.get("resourceVersion", "")),
            generation=int(generation) if isinstance(generation, int) else None,
            observed_generation=int(observed) if isinstance(observed, int) else None,
            phase=status.get("phase"),
            qos=qos,
            cpu=cpu,
            status_cpu_limits=applied,
            resize=ResizeStatus(pending_reason, pending_message, in_progress, error),
            deleting=bool(meta.get("deletionTimestamp")),
            body=body,
        )

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def containers(self) -> tuple[ContainerResources, ...]:
        """The regular containers (the ones a resize changes)."""
        return self.cpu.containers

    def container(self, name: str) -> ContainerResources | None:
        return next((c for c in self.containers if c.name == name), None)

    def limits_of(self, plan: LimitPlan) -> tuple[int | None, int | None]:
        """The pod-level limit ``plan`` manages, in the spec and as the kubelet applied it: the
        plan's containers' limits plus what the containers left alone hold (None: unknown or
        unlimited)."""
        names = list(plan.limits)
        spec, applied = self.spec_limit_mcpu(names), self.applied_limit_mcpu(names)
        return (
            None if spec is None else spec + plan.held_mcpu,
            None if applied is None else applied + plan.held_mcpu,
        )

    def spec_limit_mcpu(self, names: list[str] | None = None) -> int | None:
        """Sum of the spec CPU limits of ``names`` (all containers by default); None if any is unlimited."""
        chosen = [c for c in self.containers if names is None or c.name in names]
        if not chosen or any(c.cpu_limit_mcpu is None for c in chosen):
            return None
        return sum(c.cpu_limit_mcpu or 0 for c in chosen)

    def applied_limit_mcpu(self, names: list[str] | None = None) -> int | None:
        """Sum of the CPU limits the kubelet reports as applied; None if unknown or unlimited."""
        chosen = [c.name for c in self.containers if names is None or c.name in names]
        values = [self.status_cpu_limits.get(n) for n in chosen]
        if not values or any(v is None for v in values):
            return None
        return sum(v or 0 for v in values)

    @property
    def generation_observed(self) -> bool:
        """The kubelet has seen the latest spec (``status.observedGeneration >= metadata.generation``).

        True when the server or the node does not report generations at all.
        """
        if self.generation is None or self.observed_generation is None:
            return True
        return self.observed_generation >= self.generation

    def resize_owners(self, container: str) -> frozenset[str]:
        """Field managers whose ``resize`` (subresource) owns ``container``'s CPU limit, from
        ``metadata.managedFields`` (the manager that last changed a field owns it); empty while the
        limit is still the one the pod was created with."""
        key = f'k:{{"name":"{container}"}}'
        owners = set()
        for entry in (self.body.get("metadata") or {}).get("managedFields") or []:
            if not isinstance(entry, Mapping) or entry.get("subresource") != "resize":
                continue
            try:
                limits = entry["fieldsV1"]["f:spec"]["f:containers"][key]["f:resources"]["f:limits"]
            except (KeyError, TypeError):
                continue
            if isinstance(limits, Mapping) and "f:cpu" in limits:
                owners.add(str(entry.get("manager") or ""))
        return frozenset(owners)

    def applied(self, limits: Mapping[str, int]) -> bool:
        """The spec holds ``limits`` and the kubelet reports them applied and settled."""
        for name, value in limits.items():
            c = self.container(name)
            if c is None or c.cpu_limit_mcpu != value or self.status_cpu_limits.get(name) != value:
                return False
        return self.generation_observed and self.resize.settled
