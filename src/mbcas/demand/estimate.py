"""From kernel signals to a demand estimate in cores, vectorised across pods.

The model, per pod (all inputs are arrays; NaN = unknown; ``inf`` limit = unlimited):

* ``u`` usage (cores) is a lower bound of demand: the pod used it.
* **Throttling.** The kernel's throttled time is summed over the CPUs on which the pod's runqueue
  was throttled, so ``throttled_cores = throttled_s / interval`` is the CPU the quota withheld from
  runnable tasks. ``d_throttle = u + throttled_cores``. (A busy loop under a 0.2-core quota reads
  ``u = 0.2`` and ``throttled_cores = 0.8``, so ``d = 1.0``, its true demand.) When only the ratio
  ``r`` of throttled periods is known: ``u + throttle_ratio_boost * r * limit`` (a heuristic).
* **Stall (PSI).** ``full`` is the share of time all runnable tasks of the pod waited, whether for
  the quota or for CPUs taken by other pods. Running at rate ``u / (1 - full)`` while it ran, the
  pod would have used that all the time: ``d_psi = u / (1 - min(full, max_stall))``.
  ``some - full`` is time in which a task waited while another ran, so at least one more core was
  wanted then: ``+ some_weight * (some - full)``. With ``some`` but no ``full`` (Linux < 5.13):
  ``u + some_weight * some``.
* **No double counting.** Throttled time *is* part of PSI ``full`` of the same cgroup, so the two
  estimates measure the same stall when both exist: demand is ``max(d_throttle, d_psi)``, never
  the sum. Pure throttling gives ``d_psi ≈ d_throttle``; pure contention gives ``d_throttle = u``
  and ``d_psi > u``.

Limits of the model: it extrapolates the pod's parallelism while it ran, so a pod whose demand
changed inside the interval is estimated at the average; a pod stalled nearly all the time is
capped (``max_stall``); a pod with more runnable threads than the node has CPUs shows ``some``
that more CPU on this node cannot serve; PSI fractions are weighted across CPUs, so ``some`` under-
counts waiters on a many-CPU pod. The result is always ``>= u``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mbcas.demand.config import DemandConfig
from mbcas.demand.signals import FloatArray, Signals, pod_array

__all__ = ["DemandEstimate", "estimate_demand"]

_DEFAULT = DemandConfig()


class DemandEstimate(NamedTuple):
    """Demand per pod: ``cores`` (NaN when usage is unknown) and ``normalised`` to the limit."""

    cores: FloatArray
    normalised: FloatArray
    """``cores / limit`` clipped to [0, 1]; 0 for unlimited pods; NaN where ``cores`` is NaN."""


def estimate_demand(
    signals: Signals,
    limit_cores: npt.ArrayLike | None = None,
    *,
    config: DemandConfig | None = None,
) -> DemandEstimate:
    """Estimate each pod's CPU demand in cores from one interval's :class:`Signals` (see module
    docs).

    PSI and ratios are fractions in [0, 1] (clipped), NaN when unknown; ``limit_cores`` (one per
    pod, or a scalar) is ``inf`` (or NaN / ``None``) for no limit.
    """
    cfg = config or _DEFAULT
    n = len(signals)
    u = np.maximum(signals.usage, 0.0)
    ratio = np.clip(signals.throttled_ratio, 0.0, 1.0)
    full = np.clip(signals.psi_full, 0.0, 1.0)
    some = np.clip(signals.psi_some, 0.0, 1.0)
    limit = pod_array(limit_cores, n, np.inf, "limit_cores")
    limit = np.where(np.isnan(limit) | (limit <= 0), np.inf, limit)
    thr = np.maximum(signals.throttled_cores, 0.0)

    floor = cfg.psi_noise_floor
    full = np.where(full < floor, 0.0, full)
    some = np.where(some < floor, 0.0, some)

    with np.errstate(invalid="ignore"):
        by_ratio = u + cfg.throttle_ratio_boost * ratio * np.where(np.isfinite(limit), limit, 0.0)
        d_throttle = np.where(np.isnan(thr), np.where(np.isnan(by_ratio), u, by_ratio), u + thr)

        extra_waiters = cfg.some_weight * np.maximum(np.nan_to_num(some - full, nan=0.0), 0.0)
        d_full = u / (1.0 - np.minimum(full, cfg.max_stall)) + extra_waiters
        d_some_only = u + cfg.some_weight * some
        d_psi = np.where(np.isnan(full), d_some_only, d_full)

        # fmax ignores NaN: an unknown PSI leaves the throttling estimate, never a 0.
        cores = np.fmax(d_throttle, d_psi)
        cores = np.where(np.isnan(u), np.nan, cores)
        normalised = np.where(np.isfinite(limit), np.clip(cores / limit, 0.0, 1.0), 0.0)
        normalised = np.where(np.isnan(cores), np.nan, normalised)
    return DemandEstimate(cores=cores, normalised=normalised)
