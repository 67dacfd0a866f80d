"""How a pod-level CPU limit becomes per-container limits, and which pods may be resized at all.

MBCAS decides one CPU limit per pod: the pod's whole limit, as the kubelet counts it
(:mod:`mbcas.policy.pod_cpu`). A pod has containers; in-place resize changes container limits.
The rule, pure and deterministic:

- **QoS.** Guaranteed pods are refused (their limit must stay equal to their request) and so are
  BestEffort pods (they can never gain a limit): the QoS class of a pod can never change.
- **Who takes part.** Containers with a CPU request take part. A container whose CPU
  ``resizePolicy`` is ``RestartContainer`` is skipped (left exactly as it is) unless restarts are
  allowed. Containers without a CPU request are left alone while another container has one; if
  no container has a CPU request, all eligible containers share equally. Native sidecars
  (restartable init containers) never take part.
- **What is held.** The containers left alone keep their limits, and those limits are part of the
  pod's: only ``L − Σ held limits`` is split (a pod with ``app`` and a ``RestartContainer`` ``db``
  at 2 CPUs given 2500m leaves 500m for ``app``, not 2500m). A held container without a CPU limit
  makes the pod's CPU unbounded whatever the others get: refused (``UnlimitedContainer``), and so
  is a pod with a pod-level CPU limit (``PodLevelLimit``: resizing containers cannot change it).
- **Split.** What is left, ``S``, is split by request share, ``S * r_i / sum(r)``, with each
  container at least ``max(r_i, min_container_mcpu)``: a container whose share falls below that floor
  is pinned at it and the others share the rest. Shares are rounded down to whole millicores and
  the leftover millicores go to the largest fractional parts (ties by container order), so the
  parts sum to exactly ``S``.
- **Never below request.** ``S`` below the sum of the floors is refused (``BelowRequest``).
- **No accidental Guaranteed.** If the result would make every container's limit equal its
  request (with memory limits equal to requests too) the pod would turn Guaranteed, which the
  apiserver rejects; the largest container then gets 1m more.

Memory and the containers that do not take part are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mbcas.core.qos import QoSClass
from mbcas.policy.pod_cpu import ContainerResources, PodCpu

__all__ = [
    "MIN_CONTAINER_MCPU",
    "ContainerResources",
    "LimitPlan",
    "SplitBasis",
    "SplitRefusedError",
    "participants",
    "plan_container_limits",
    "qos_class",
    "split_basis",
    "split_by_weight",
]

#: Smallest CPU limit MBCAS sets on a container: 10m (1 ms of quota per 100 ms period).
MIN_CONTAINER_MCPU = 10


class SplitRefusedError(ValueError):
    """The pod must not be resized. ``reason`` is a CamelCase cause for Events and metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LimitPlan:
    """Per-container CPU limits for a pod limit, the containers left alone with why, and the CPU
    limits those hold (part of the pod's limit, never changed)."""

    limits: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)
    held_mcpu: int = 0

    @property
    def total_mcpu(self) -> int:
        """The pod's limit this plan gives: the new container limits plus the held ones."""
        return sum(self.limits.values()) + self.held_mcpu


@dataclass(frozen=True)
class SplitBasis:
    """Who takes part in a pod's split, who is left alone (and why), and what those hold."""

    participants: tuple[ContainerResources, ...]
    skipped: dict[str, str]
    held_mcpu: int
    """Σ CPU limits of the containers left alone (sidecars included): part of the pod's limit."""

    @property
    def limit_mcpu(self) -> int | None:
        """The pod's limit as MBCAS manages it: held limits plus the participants'; None while a
        participant has no limit (the first limit is still to be set)."""
        if any(c.cpu_limit_mcpu is None for c in self.participants):
            return None
        return self.held_mcpu + sum(c.cpu_limit_mcpu or 0 for c in self.participants)

    def floor_mcpu(self, min_container_mcpu: int = MIN_CONTAINER_MCPU) -> int:
        """The smallest pod limit the split accepts: held limits plus each participant's floor."""
        return self.held_mcpu + sum(self.floors(min_container_mcpu))

    def floors(self, min_container_mcpu: int = MIN_CONTAINER_MCPU) -> list[int]:
        return [max(c.effective_cpu_request_mcpu or 0, min_container_mcpu) for c in self.participants]


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


def _as_pod(pod: PodCpu | Sequence[ContainerResources]) -> PodCpu:
    return pod if isinstance(pod, PodCpu) else PodCpu(containers=tuple(pod))


def split_basis(
    pod: PodCpu | Sequence[ContainerResources], *, allow_restart: bool = False, only: str | None = None
) -> SplitBasis:
    """Who takes part in the split of ``pod`` (a :class:`PodCpu`, or its regular containers
    alone) and what the others hold (see the module docs). ``only`` (one container set by hand)
    holds nothing: its value is that container's limit.

    Raises :class:`SplitRefusedError` when no limit given to the participants can bound the pod.
    """
    pod = _as_pod(pod)
    chosen, skipped = participants(pod.containers, allow_restart=allow_restart, only=only)
    if only is not None:
        return SplitBasis(tuple(chosen), skipped, 0)
    if pod.pod_limit_mcpu is not None:
        raise SplitRefusedError(
            "PodLevelLimit",
            "the pod has a pod-level CPU limit (spec.resources), which resizing its containers cannot change",
        )
    held = [c for c in pod.containers if c.name in skipped]
    for c in pod.sidecars:
        skipped[c.name] = "native sidecar (restartable init container)"
        held.append(c)
    unlimited = [c.name for c in held if c.cpu_limit_mcpu is None]
    if unlimited:
        raise SplitRefusedError(
            "UnlimitedContainer",
            f"container(s) {', '.join(unlimited)} take no part in the split and have no CPU limit: the pod's"
            " CPU is unbounded whatever limits the others get",
        )
    return SplitBasis(tuple(chosen), skipped, sum(c.cpu_limit_mcpu or 0 for c in held))


def plan_container_limits(
    pod_limit_mcpu: int,
    containers: PodCpu | Sequence[ContainerResources],
    *,
    qos: QoSClass | None = None,
    allow_restart: bool = False,
    only: str | None = None,
    min_container_mcpu: int = MIN_CONTAINER_MCPU,
) -> LimitPlan:
    """Per-container limits for a pod limit of ``pod_limit_mcpu`` (see the module docstring).

    ``containers`` is the pod (:class:`PodCpu`: sidecars and pod-level limits counted) or its
    regular containers. ``qos`` is the pod's ``status.qosClass`` when known (computed from the
    containers otherwise). ``only`` names a single container that gets ``pod_limit_mcpu`` itself (a
    manual resize of one container); the others are left alone. Raises
    :class:`SplitRefusedError` when the pod must not be resized.
    """
    if pod_limit_mcpu <= 0:
        raise SplitRefusedError("InvalidLimit", f"CPU limit must be > 0, got {pod_limit_mcpu}m")
    pod = _as_pod(containers)
    qos = qos or qos_class(pod.every_container)
    if qos is QoSClass.GUARANTEED:
        raise SplitRefusedError(
            "GuaranteedPod", "pod is Guaranteed: its CPU limit must stay equal to its request"
        )
    if qos is QoSClass.BEST_EFFORT:
        raise SplitRefusedError("BestEffortPod", "pod is BestEffort: it cannot gain a CPU limit in place")
    basis = split_basis(pod, allow_restart=allow_restart, only=only)
    eligible = basis.participants
    floors = basis.floors(min_container_mcpu)
    share = pod_limit_mcpu - basis.held_mcpu
    if share < sum(floors):
        held = (
            f" leaves {share}m after the {basis.held_mcpu}m the containers left alone hold"
            f" ({', '.join(sorted(n for n in basis.skipped if n != only))}), which is"
            if basis.held_mcpu
            else " is"
        )
        raise SplitRefusedError(
            "BelowRequest",
            f"CPU limit {pod_limit_mcpu}m{held} below the CPU request(s) of {sum(floors)}m "
            f"({', '.join(c.name for c in eligible)})",
        )
    weights = [c.effective_cpu_request_mcpu or 0 for c in eligible]
    parts = split_by_weight(share, weights, floors)
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
        for c in pod.containers
    ]
    if qos_class([*pod.init_containers, *after]) is QoSClass.GUARANTEED:
        biggest = max(eligible, key=lambda c: limits[c.name])
        limits[biggest.name] += 1
    return LimitPlan(limits=limits, skipped=basis.skipped, held_mcpu=basis.held_mcpu)
