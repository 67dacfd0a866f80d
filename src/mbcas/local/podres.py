"""Resource arithmetic on raw pod JSON, as the node emulator needs it.

Quantities are parsed with the Kubernetes client's own parser. CPU is kept in millicores and
memory in bytes (both ints). A pod's effective request follows the kubelet's rule: the sum over
app containers and restartable (sidecar) init containers, or the largest regular init container
if that is bigger; pod-level ``spec.resources`` wins when set.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity as _parse_quantity

__all__ = [
    "Json",
    "Resources",
    "container_resources",
    "cpu_millis",
    "iter_containers",
    "memory_bytes",
    "parse_quantity",
    "pod_requests",
    "qos_class",
]

Json = dict[str, Any]


def parse_quantity(quantity: str | int | float) -> Decimal:
    """A Kubernetes quantity as an exact Decimal (the client's own parser)."""
    value: Decimal = _parse_quantity(quantity)  # type: ignore[no-untyped-call]
    return value


def cpu_millis(quantity: str | int | float) -> int:
    """``"250m"`` -> 250, ``"1.5"`` -> 1500 (rounded up to a whole millicore)."""
    return math.ceil(parse_quantity(quantity) * 1000)


def memory_bytes(quantity: str | int | float) -> int:
    """``"8Gi"`` -> 8589934592."""
    return math.ceil(parse_quantity(quantity))


@dataclass(frozen=True)
class Resources:
    """CPU (millicores) and memory (bytes) of a request or a limit; None where unset."""

    cpu: int | None = None
    memory: int | None = None

    @classmethod
    def from_list(cls, values: Mapping[str, Any] | None) -> Resources:
        values = values or {}
        cpu = values.get("cpu")
        mem = values.get("memory")
        return cls(
            cpu_millis(cpu) if cpu is not None else None,
            memory_bytes(mem) if mem is not None else None,
        )

    def __add__(self, other: Resources) -> Resources:
        return Resources((self.cpu or 0) + (other.cpu or 0), (self.memory or 0) + (other.memory or 0))

    def max(self, other: Resources) -> Resources:
        return Resources(max(self.cpu or 0, other.cpu or 0), max(self.memory or 0, other.memory or 0))


def iter_containers(pod: Json, init: bool = False) -> Iterator[Json]:
    """The pod's app containers (and, with ``init``, its init containers first)."""
    spec = pod.get("spec") or {}
    if init:
        yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def container_resources(container: Json) -> tuple[Resources, Resources]:
    """(requests, limits) of one container spec, CPU and memory only."""
    res = container.get("resources") or {}
    return Resources.from_list(res.get("requests")), Resources.from_list(res.get("limits"))


def pod_requests(pod: Json, overrides: Mapping[str, Resources] | None = None) -> Resources:
    """The pod's effective CPU/memory request; ``overrides`` maps container name -> requests."""
    spec = pod.get("spec") or {}
    pod_level = (spec.get("resources") or {}).get("requests")
    if pod_level:
        return Resources.from_list(pod_level)
    overrides = overrides or {}
    total = Resources(0, 0)
    init_max = Resources(0, 0)
    for c in spec.get("initContainers") or []:
        req = overrides.get(c["name"], container_resources(c)[0])
        if c.get("restartPolicy") == "Always":
            total = total + req
        else:
            init_max = init_max.max(total + req)
    for c in spec.get("containers") or []:
        total = total + overrides.get(c["name"], container_resources(c)[0])
    return total.max(init_max)


def qos_class(pod: Json) -> str:
    """Guaranteed, Burstable or BestEffort, by the apiserver's rules (CPU and memory)."""
    any_set = False
    guaranteed = True
    for c in iter_containers(pod, init=True):
        res = c.get("resources") or {}
        requests = res.get("requests") or {}
        limits = res.get("limits") or {}
        for name in ("cpu", "memory"):
            if name in requests or name in limits:
                any_set = True
            lim = limits.get(name)
            req = requests.get(name, lim)
            if lim is None or req is None or parse_quantity(req) != parse_quantity(lim):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
