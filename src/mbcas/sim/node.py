"""The simulated node: CFS-like sharing of CPU and the kernel signals it produces, as a real
kernel reports them (including how its throttling counters over-read).

**Sharing.** Each tick every pod *wants* its demand ``d`` (cores) and may use at most its limit
``l`` (the CFS quota). A node's pods share its capacity ``C``: if ``Σ min(d, l) <= C`` every pod
gets ``min(d, l)``; otherwise the CPU is shared by weight (``cpu.weight ∝ request``) with each pod
capped at ``min(d, l)``, the weighted max-min fair share ``usage = clip(λ·w, 0, min(d, l))`` with
``λ`` filling the node. Work a pod could not do in a tick is lost (the stall metrics count it).

**Threads.** A pod runs on ``p`` threads, ``p = max(threads, ⌈d⌉, 1)``: by default the fewest
that can carry its demand, which is how :mod:`mbcas.local.burner` runs (one worker per started
core, each spinning in 100 ms duty cycles). A pod that does not get its demand keeps all ``p``
threads runnable for the whole tick (a burner spins to the end of its cycle; a service's queue
grows).

**Periods.** The quota is enforced per 100 ms CFS period, ten per tick. Within a tick the demand
of period ``j`` is ``a·Xⱼ``, where ``a`` is the pod's demand (its usage if contention held it
below the quota) and ``Xⱼ`` are the ten decile midpoints of a log-normal with mean 1 and relative
spread ``subtick_cv`` (0.3 by default: the scenarios' 10 % per-tick noise, were it independent
across the ten periods, is about 0.3 per period; a burner has 0). A period is throttled when its
demand exceeds the quota and the pod has more threads than the quota (``min(a·Xⱼ, p) > l``);
every period is throttled for a pod held at its quota with work left over (its backlog never
drains). Throttled work of a pod below its quota on average is served later in the tick (a
service's queue), so usage stays as above; only the signals show the partial throttling.

Signals per pod over the tick (the :class:`mbcas.demand.Signals` bundle, as the production
sensing reads them from a kernel):

``usage``            cores used.
``throttled_ratio``  ``r`` = throttled periods / periods (``nr_throttled / nr_periods``); 1 when
                     the quota binds in every period, a fraction for a pod near its quota.
``throttled_cores``  the kernel's throttled time per second: **wall time of throttled runqueues
                     summed over CPUs**, not CPU withheld. In a throttled period the ``p`` threads
                     use the quota and then all wait on throttled runqueues to the period's end:
                     ``r·(p − l)``. A single-threaded pod wanting 0.25 core under a 0.2 quota
                     reads 0.8 (so ``usage + throttled ≈ 1``, not 0.25), as measured on a real
                     kernel.
``psi_full``         share of wall time all the pod's runnable threads waited: ``1 − u/p`` for a
                     pod that did not get its demand (throttled or out-competed), else the
                     throttled periods' ``r·(1 − l/p)``. Like the throttled time it over-reads
                     (``u / (1 − full) = p``, not ``d``).
``psi_some``         equal to ``psi_full``: the model's threads stall together (a throttled
                     cgroup stops all of them at once).

Only growing the limit and watching usage follow reveals a throttled pod's true demand; the
throttled time bounds it from above (``p >= d``). All zero for a pod with no demand. Everything
is vectorised over pods; several nodes are handled by one call (``node`` gives each pod's node).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from mbcas.demand import Signals

__all__ = ["PERIODS_PER_TICK", "SUBTICK_CV", "cfs_share", "parallelism", "simulate_tick"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

_EPS = 1e-9

SUBTICK_CV = 0.3
"""Default relative spread of a pod's demand across the CFS periods of one tick (see module docs)."""

PERIODS_PER_TICK = 10
"""CFS periods (100 ms) modelled per tick."""

# Standard-normal quantiles at the midpoints (j + 0.5)/10 of the ten deciles.
_Z = np.array([-1.6449, -1.0364, -0.6745, -0.3853, -0.1257, 0.1257, 0.3853, 0.6745, 1.0364, 1.6449])


def _period_factors(cv: float) -> FloatArray:
    """The ten per-period demand factors ``Xⱼ`` (mean exactly 1) for relative spread ``cv``."""
    if cv <= 0.0:
        return np.ones(PERIODS_PER_TICK)
    sigma = math.sqrt(math.log1p(cv * cv))
    x = np.exp(sigma * _Z)
    out: FloatArray = x / x.mean()
    return out


def parallelism(demand: FloatArray, threads: FloatArray | None = None) -> FloatArray:
    """Runnable threads of each pod: ``max(threads, ⌈demand⌉, 1)`` (``threads`` 0 = unset)."""
    p = np.maximum(np.ceil(demand - 1e-6), 1.0)
    if threads is not None:
        p = np.maximum(p, threads)
    out: FloatArray = p
    return out


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
    *,
    threads: FloatArray | None = None,
    subtick_cv: float = SUBTICK_CV,
) -> Signals:
    """Run one tick of every node; arrays are per pod except ``capacity`` (per node). Returns the
    tick's signals as the :class:`mbcas.demand.Signals` bundle the agent's sampler produces.

    ``threads`` is each pod's least number of runnable threads (0 or ``None``: as many as its
    demand needs, see :func:`parallelism`); ``subtick_cv`` the spread of demand across the tick's
    CFS periods.
    """
    caps = np.minimum(demand, limit)
    if capacity.shape[0] == 1:
        usage = cfs_share(float(capacity[0]), weight, caps)
    else:
        usage = np.empty_like(caps)
        for k in range(capacity.shape[0]):
            sel = node == k
            usage[sel] = cfs_share(float(capacity[k]), weight[sel], caps[sel])
    p = parallelism(demand, threads)
    busy = usage < demand - _EPS  # did not get its demand: every thread runnable all tick
    # The per-period level: the demand, or what contention let the pod run below its quota.
    out_competed = busy & (usage < limit - _EPS)
    level = np.where(out_competed, usage, demand)
    per_period = np.minimum(level[:, None] * _period_factors(subtick_cv)[None, :], p[:, None])
    ratio = (per_period > limit[:, None] + _EPS).mean(axis=1)
    # Held at its quota with work left over: the backlog keeps every period throttled.
    ratio = np.where(busy & ~out_competed & (p > limit + _EPS), 1.0, ratio)
    ratio = np.where(demand > _EPS, ratio, 0.0)
    throttled_cores = ratio * np.maximum(p - limit, 0.0)
    stalled_throttled = ratio * np.clip(1.0 - limit / p, 0.0, 1.0)
    stalled_busy = np.where(busy, np.clip(1.0 - usage / p, 0.0, 1.0), 0.0)
    full = np.maximum(stalled_busy, stalled_throttled)
    return Signals(
        usage=usage,
        throttled_ratio=ratio,
        throttled_cores=throttled_cores,
        psi_full=full,
        psi_some=full.copy(),
    )
