"""The capacity model: how much CPU the managed pods of a node share.

::

    capacity = allocatable − reserve − Σ_{pods not managed} consumption(pod)

    consumption(pod) = limit                              Guaranteed (limit = request)
                     = 0                                  BestEffort
                     = min(limit, max(request, usage))    Burstable, not managed (opted out,
                                                          system namespace); no limit = no cap

``allocatable`` is the Node's ``status.allocatable.cpu``; ``reserve`` is the agent's own margin
(default 200m) for the system and for the kubelet's quota rounding. The result is clamped at 0.

Why these choices:

* A **Guaranteed** pod may use its whole limit at any moment and nobody may touch it, so it is
  counted at its limit.
* A **BestEffort** pod has the smallest ``cpu.weight`` the kubelet gives (2 shares), so under
  contention the kernel hands its CPU to every pod with a request; it runs in the gaps the limits
  leave idle. Counting its usage would let scavengers shrink the limits of the pods that pay with
  requests, so it counts 0. (Its usage still shows in the metrics.)
* A **Burstable pod the agent does not manage** is guaranteed its request by ``cpu.weight`` and
  may use more up to its limit. It is counted at what it uses now (the smoothed usage/demand the
  caller passes), never below its request and never above its limit. Counting its limit instead
  would reserve idle CPU; counting only its request would hand out CPU it is using.

Managed pods that cannot be re-decided this tick (warming up, signals unreadable) are not part of
this model: the planner holds them at their current allocation and subtracts that itself.

Quantities are cores (float64) with ``NaN`` meaning "not set"; QoS classes are the
:attr:`mbcas.core.qos.QoSClass.code` of each pod. Pure and vectorised.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mbcas.core.arrays import first_of, nan_to
from mbcas.core.qos import QoSClass

__all__ = ["node_capacity", "unmanaged_consumption"]


def unmanaged_consumption(
    qos: NDArray[np.int8],
    request: NDArray[np.float64],
    limit: NDArray[np.float64],
    usage: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per-pod CPU (cores) a pod the agent leaves alone is counted at (see the module text)."""
    req = nan_to(request, 0.0)
    use = nan_to(usage, 0.0)
    has_limit = np.isfinite(limit)
    lim = np.where(has_limit, limit, np.inf)
    burstable = np.minimum(lim, np.maximum(req, use))
    guaranteed = np.where(has_limit, limit, req)
    out: NDArray[np.float64] = first_of(
        [qos == QoSClass.GUARANTEED.code, qos == QoSClass.BEST_EFFORT.code],
        [guaranteed, 0.0],
        default=burstable,
    )
    return out


def node_capacity(
    allocatable: float,
    reserve: float,
    *,
    unmanaged: NDArray[np.bool_],
    qos: NDArray[np.int8],
    request: NDArray[np.float64],
    limit: NDArray[np.float64],
    usage: NDArray[np.float64],
) -> float:
    """``allocatable − reserve − Σ consumption`` over the ``unmanaged`` pods, clamped at 0 (cores)."""
    if not unmanaged.any():
        return max(0.0, allocatable - reserve)
    used = unmanaged_consumption(qos[unmanaged], request[unmanaged], limit[unmanaged], usage[unmanaged])
    return max(0.0, allocatable - reserve - float(used.sum()))
