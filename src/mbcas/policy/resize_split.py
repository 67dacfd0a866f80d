"""How a pod-level CPU limit becomes per-container limits, and which pods may be resized at all.

MBCAS decides one CPU limit per pod. A pod has containers; in-place resize changes container
limits. The rule, pure and deterministic:

- **QoS.** Guaranteed pods are refused (their limit must stay equal to their request) and so are
  BestEffort pods (they can never gain a limit): the QoS class of a pod can never change.
- **Who takes part.** Containers with a CPU request take part. A container whose CPU
  ``resizePolicy`` is ``RestartContainer`` is skipped (left exactly as it is) unless restarts are
  allowed. Containers without a CPU request are left alone while another container has one; if
  no container has a CPU request, all eligible containers share equally.
- **Split.** The pod limit ``L`` is split by request share, ``L * r_i / sum(r)``, with each
  container at least ``max(r_i, min_container_mcpu)``: a container whose share falls below that floor
  is pinned at it and the others share the rest. Shares are rounded down to whole millicores and
  the leftover millicores go to the largest fractional parts (ties by container order), so the
  parts sum to exactly ``L``.
- **Never below request.** ``L`` below the sum of the floors is refused (``BelowRequest``).
- **No accidental Guaranteed.** If the result would make every container's limit equal its
  request (with memory limits equal to requests too) the pod would turn Guaranteed, which the
  apiserver rejects; the largest container then gets 1m more.

Memory and the containers that do not take part are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mbcas.core.qos import QoSClass

__all__ = [
    "MIN_CONTAINER_MCPU",
    "ContainerResources",
    "LimitPlan",
    "SplitRefusedError",
    "participants",
    "plan_container_limits",
    "qos_class",
    "split_by_weight",
]

#: Smallest CPU limit MBCAS sets on a container: 10m (1 ms of quota per 100 ms period).
MIN_CONTAINER_MCPU = 10


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


class SplitRefusedError(ValueError):
    """The pod must not be resized. ``reason`` is a CamelCase cause for Events and metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LimitPlan:
    """Per-container CPU limits for a pod limit, and the containers left alone with why."""

    limits: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def total_mcpu(self) -> int:
        return sum(self.limits.values())


def qos_class(containers: Sequence[ContainerResources]) -> QoSClass:
    """The QoS class the apiserver would compute for these (regular) containers."""
    if not containers:
        return QoSClass.BEST_EFFORT
    anything = any(
        v is not None
        for c in containers
        for v in (c.cpu_request_mcpu, c.cpu_limit_mcpu, c.memory_request, c.memory_limit)
    )
    if not anything:
        return QoSClass.BEST_EFFORT
    guaranteed = all(
        c.cpu_limit_mcpu is not None
        and c.memory_limit is not None
        and c.effective_cpu_request_mcpu == c.cpu_limit_mcpu
        and c.effective_memory_request == c.memory_limit
        for c in containers
    )
    return QoSClass.GUARANTEED if guaranteed else QoSClass.BURSTABLE


def split_by_weight(total_mcpu: int, weights: Sequence[int], floors: Sequence[int]) -> list[int]:
    """Split ``total_mcpu`` by ``weights`` with per-part ``floors``; parts are whole and sum to the total.

    Raises ``ValueError`` if the floors do not fit or the inputs are malformed.
    """
    n = len(weights)
    if n == 0 or len(floors) != n:
        raise ValueError("weights and floors must be non-empty and of equal length")
    if any(w < 0 for w in weights) or any(f < 0 for f in floors):
        raise ValueError("weights and floors must be >= 0")
    if sum(floors) > total_mcpu:
        raise ValueError(f"floors sum to {sum(floors)}m > total {total_mcpu}m")
    weights = list(weights) if sum(weights) > 0 else [1] * n
    pinned = [False] * n
    shares = [0.0] * n
    # Pin parts whose proportional share falls under their floor, then re-split the rest.
    while True:
        free_total = total_mcpu - sum(floors[i] for i in range(n) if pinned[i])
        free_weight = sum(weights[i] for i in range(n) if not pinned[i])
        newly = False
        for i in range(n):
            if pinned[i]:
                shares[i] = float(floors[i])
                continue
            shares[i] = free_total * weights[i] / free_weight if free_weight > 0 else 0.0
            if shares[i] < floors[i]:
                pinned[i] = True
                newly = True
        if not newly or all(pinned):
            break
    if all(pinned):
        shares = [float(f) for f in floors]
        shares[max(range(n), key=lambda i: (weights[i], -i))] += total_mcpu - sum(floors)
    parts = [max(floors[i], int(shares[i])) for i in range(n)]
    leftover = total_mcpu - sum(parts)
    order = sorted(range(n), key=lambda i: (-(shares[i] - int(shares[i])), i))
    k = 0
    while leftover > 0:
        parts[order[k % n]] += 1
        leftover -= 1
        k += 1
    return parts


def participants(
    containers: Sequence[ContainerResources], *, allow_restart: bool = False, only: str | None = None
) -> tuple[list[ContainerResources], dict[str, str]]:
    """The containers that take part in the split, and those left alone with why (the module's
    "who takes part" rule, the one place it is written). The pod-level limit MBCAS manages is the
    sum of the participants' CPU limits (:func:`mbcas.api.contract.managed_limit_mcpu`).

    Raises :class:`SplitRefusedError` when no container can take part (or ``only`` names none).
    """
    skipped: dict[str, str] = {}
    eligible: list[ContainerResources] = []
    for c in containers:
        if only is not None and c.name != only:
            skipped[c.name] = "not selected"
        elif c.cpu_restart_required and not allow_restart:
            skipped[c.name] = "CPU resizePolicy is RestartContainer"
        else:
            eligible.append(c)
    if only is not None and not any(c.name == only for c in containers):
        raise SplitRefusedError("NoSuchContainer", f"pod has no container {only!r}")
    if not eligible:
        raise SplitRefusedError(
            "RestartRequired",
            "every container needs a restart to change its CPU limit (resizePolicy RestartContainer)",
        )
    requested = [c for c in eligible if (c.effective_cpu_request_mcpu or 0) > 0]
    if requested:
        for c in eligible:
            if c not in requested:
                skipped[c.name] = "no CPU request"
        eligible = requested
    return eligible, skipped


def plan_container_limits(
    pod_limit_mcpu: int,
    containers: Sequence[ContainerResources],
    *,
    qos: QoSClass | None = None,
    allow_restart: bool = False,
    only: str | None = None,
    min_container_mcpu: int = MIN_CONTAINER_MCPU,
) -> LimitPlan:
    """Per-container limits for a pod limit of ``pod_limit_mcpu`` (see the module docstring).

    ``qos`` is the pod's ``status.qosClass`` when known (computed from ``containers`` otherwise).
    ``only`` names a single container that gets ``pod_limit_mcpu`` itself (a manual resize of one
    container); the others are left alone. Raises :class:`SplitRefusedError` when the pod must not be
    resized.
    """
    if pod_limit_mcpu <= 0:
        raise SplitRefusedError("InvalidLimit", f"CPU limit must be > 0, got {pod_limit_mcpu}m")
    qos = qos or qos_class(containers)
    if qos is QoSClass.GUARANTEED:
        raise SplitRefusedError(
            "GuaranteedPod", "pod is Guaranteed: its CPU limit must stay equal to its request"
        )
    if qos is QoSClass.BEST_EFFORT:
        raise SplitRefusedError("BestEffortPod", "pod is BestEffort: it cannot gain a CPU limit in place")
    eligible, skipped = participants(containers, allow_restart=allow_restart, only=only)
    floors = [max(c.effective_cpu_request_mcpu or 0, min_container_mcpu) for c in eligible]
    if pod_limit_mcpu < sum(floors):
        raise SplitRefusedError(
            "BelowRequest",
            f"CPU limit {pod_limit_mcpu}m is below the CPU request(s) of {sum(floors)}m "
            f"({', '.join(c.name for c in eligible)})",
        )
    weights = [c.effective_cpu_request_mcpu or 0 for c in eligible]
    parts = split_by_weight(pod_limit_mcpu, weights, floors)
    limits = {c.name: part for c, part in zip(eligible, parts, strict=True)}
    after = [
        ContainerResources(
            c.name,
            c.cpu_request_mcpu if c.cpu_request_mcpu is not None else c.cpu_limit_mcpu,
            limits.get(c.name, c.cpu_limit_mcpu),
            c.memory_request,
            c.memory_limit,
            c.cpu_restart_required,
        )
        for c in containers
    ]
    if qos_class(after) is QoSClass.GUARANTEED:
        biggest = max(eligible, key=lambda c: limits[c.name])
        limits[biggest.name] += 1
    return LimitPlan(limits=limits, skipped=skipped)
