"""The simulated node: CFS-like sharing of CPU and the kernel-like signals it produces.

Each tick every pod *wants* its demand ``d`` (cores) and may use at most its limit ``l`` (the CFS
quota). A node's pods share its capacity ``C``:

* if ``Σ min(d, l) <= C`` every pod gets ``min(d, l)``;
* otherwise the CPU is shared by weight (``cpu.weight ∝ request``) with each pod capped at
  ``min(d, l)``: the weighted max-min fair share ``usage = clip(λ·w, 0, min(d, l))`` with ``λ``
  chosen so that the node is exactly full. This is what CFS converges to over a 1 s tick when
  every pod's threads stay runnable.

From that the model derives, per pod, the signals that MBCAS's production sensing reads from the
kernel (and :func:`mbcas.demand.estimate_demand` consumes), over the tick:

``usage``            cores used.
``throttled``        True when the quota is what stopped the pod: ``d > l`` and ``usage >= l``.
                     Under contention a pod below its quota is never throttled, as in the kernel
                     (quota is only exhausted when the pod actually runs for ``l``).
``throttled_ratio``  share of CFS periods that were throttled: 1.0 when throttled, else 0.0 (every
                     100 ms period of the tick exhausts the quota, the demand being constant
                     within a tick).
``throttled_cores``  CPU withheld by the quota, ``d − l`` when throttled (the kernel's
                     ``throttled_usec`` over the interval).
``psi_full``         PSI-like *full* share: the share of the pod's wanted CPU time stalled by the
                     quota, ``throttled_cores / d`` (throttling stalls every task of the cgroup).
``psi_some``         PSI-like *some* share: the share of wanted CPU time stalled for any reason,
                     ``(d − usage) / d`` (so ``some >= full``; contention alone shows as *some*).

All zero for a pod with no demand. Everything is vectorised over pods; several nodes are handled
by one call (``node`` gives each pod's node index).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mbcas.demand import Signals

__all__ = ["cfs_share", "simulate_tick"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

_EPS = 1e-9


def cfs_share(capacity: float, weights: FloatArray, caps: FloatArray) -> FloatArray:
    """Weighted max-min fair share of ``capacity``: ``clip(λ·w, 0, caps)`` filling the node.

    If ``Σ caps <= capacity`` everyone gets its cap. Implemented independently of
    :mod:`mbcas.market` (the simulated kernel must not share code with the policy it judges):
    pods are sorted by ``cap/w``; walking up, a pod whose cap is below the level it would get
    is satisfied and leaves; the rest share what is left in proportion to their weights.
    """
    caps = np.maximum(caps, 0.0)
    total = float(caps.sum())
    if total <= capacity:
        return caps.copy()
    order = np.argsort(caps / weights, kind="stable")
    c_sorted = caps[order]
    w_sorted = weights[order]
    # After satisfying the first k pods, the rest would each get (C - Σ_{<k} caps) · w / Σ_{>=k} w.
    spent = np.concatenate(([0.0], np.cumsum(c_sorted)[:-1]))
    w_left = np.cumsum(w_sorted[::-1])[::-1]
    level = (capacity - spent) / w_left  # λ if pods k.. are the unsatisfied ones
    # Pod k is satisfied iff its cap/w is below the level computed with it still in the pool.
    satisfied = (c_sorted / w_sorted) <= level
    k = int(np.argmin(satisfied)) if not satisfied.all() else len(c_sorted)
    lam = level[k] if k < len(c_sorted) else 0.0
    out_sorted = np.where(np.arange(len(c_sorted)) < k, c_sorted, np.minimum(lam * w_sorted, c_sorted))
    out = np.empty_like(out_sorted)
    out[order] = out_sorted
    return out


def simulate_tick(
    demand: FloatArray,
    limit: FloatArray,
    weight: FloatArray,
    node: IntArray,
    capacity: FloatArray,
) -> Signals:
    """Run one tick of every node; arrays are per pod except ``capacity`` (per node). Returns the
    tick's signals as the :class:`mbcas.demand.Signals` bundle the agent's sampler produces."""
    caps = np.minimum(demand, limit)
    if capacity.shape[0] == 1:
        usage = cfs_share(float(capacity[0]), weight, caps)
    else:
        usage = np.empty_like(caps)
        for k in range(capacity.shape[0]):
            sel = node == k
            usage[sel] = cfs_share(float(capacity[k]), weight[sel], caps[sel])
    throttled = (demand > limit + _EPS) & (usage >= limit - _EPS)
    throttled_cores = np.where(throttled, demand - limit, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        has = demand > _EPS
        full = np.where(has, throttled_cores / demand, 0.0)
        some = np.where(has, np.clip((demand - usage) / demand, 0.0, 1.0), 0.0)
    return Signals(
        usage=usage,
        throttled_ratio=throttled.astype(np.float64),
        throttled_cores=throttled_cores,
        psi_full=full,
        psi_some=np.maximum(some, full),
    )
