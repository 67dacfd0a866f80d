"""A pod's CPU as the kubelet counts it: per-container facts and the pod's request and limit.

The kubelet does not simply add up ``spec.containers``. For a pod's CPU **request** (what the
scheduler admits and ``cpu.weight`` follows) and its **limit** (the pod cgroup's quota) it counts:

- every regular container, plus every *restartable* init container (a native sidecar,
  ``restartPolicy: Always``), which runs for the pod's whole life;
- an ordinary init container runs alone before the others start, next to the sidecars declared
  before it: the pod's value is the larger of the sum above and the largest such init phase;
- pod-level resources (``spec.resources``) win where they are set.

A pod has a CPU limit (a quota on its cgroup) only when every container, init containers included,
has one, or when a pod-level limit is set. A container's request defaults to its limit when only a
limit is given (as the apiserver does).

:class:`PodCpu` holds those facts for one pod (parsed by :class:`mbcas.kube.podview.PodView`) and
answers both; the split (:mod:`mbcas.policy.resize_split`) reads which containers it may move
from it. Pure: no I/O, millicores throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ContainerResources", "PodCpu"]


@dataclass(frozen=True)
class ContainerResources:
    """What the split needs to know about one container (from the pod spec).

    Memory quantities are the apiserver's canonical strings; they are only compared for equality.
    """

    name: str
    cpu_request_mcpu: int | None = None
    cpu_limit_mcpu: int | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    cpu_restart_required: bool = False

    @property
    def effective_cpu_request_mcpu(self) -> int | None:
        """The CPU request, defaulting to the limit when only a limit is set (as the apiserver does)."""
        return self.cpu_request_mcpu if self.cpu_request_mcpu is not None else self.cpu_limit_mcpu

    @property
    def effective_memory_request(self) -> str | None:
        return self.memory_request if self.memory_request is not None else self.memory_limit


@dataclass(frozen=True)
class PodCpu:
    """One pod's CPU facts: its containers, its init containers in order (``sidecars`` names the
    restartable ones) and its pod-level CPU request and limit (None: not set)."""

    containers: tuple[ContainerResources, ...] = ()
    init_containers: tuple[ContainerResources, ...] = ()
    sidecar_names: frozenset[str] = frozenset()
    pod_request_mcpu: int | None = None
    pod_limit_mcpu: int | None = None

    @property
    def sidecars(self) -> tuple[ContainerResources, ...]:
        """The restartable init containers: they run next to the containers for the pod's life."""
        return tuple(c for c in self.init_containers if c.name in self.sidecar_names)

    @property
    def every_container(self) -> tuple[ContainerResources, ...]:
        return self.init_containers + self.containers

    def _count(self, value: Callable[[ContainerResources], int | None]) -> int:
        """The kubelet's sum: containers and sidecars, or the largest init phase if larger."""
        running = 0
        largest_init = 0
        for c in self.init_containers:
            if c.name in self.sidecar_names:
                running += value(c) or 0
                largest_init = max(largest_init, running)
            else:
                largest_init = max(largest_init, running + (value(c) or 0))
        running += sum(value(c) or 0 for c in self.containers)
        return max(running, largest_init)

    @property
    def request_mcpu(self) -> int | None:
        """The pod's CPU request as the kubelet counts it; None when nothing requests CPU."""
        if self.pod_request_mcpu is not None:
            return self.pod_request_mcpu
        if all(c.effective_cpu_request_mcpu is None for c in self.every_container):
            return None
        return self._count(lambda c: c.effective_cpu_request_mcpu)

    @property
    def limit_mcpu(self) -> int | None:
        """The pod's CPU limit as the kubelet sets its quota; None when it has none (a container
        without a CPU limit and no pod-level limit)."""
        if self.pod_limit_mcpu is not None:
            return self.pod_limit_mcpu
        every = self.every_container
        if not every or any(c.cpu_limit_mcpu is None for c in every):
            return None
        return self._count(lambda c: c.cpu_limit_mcpu)
