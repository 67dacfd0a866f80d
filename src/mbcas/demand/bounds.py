"""What one interval's kernel signals say about a pod's demand: a lower and an upper bound.

A CPU limit (CFS quota) caps what a pod may use, so what it would use *unthrottled* is only
partly observable:

* **Usage** ``u`` is always a lower bound: the pod used it. While the quota did not bind, it *is*
  the demand the limit has to cover (contention below the quota is the CPU weights' business, a
  larger limit would not help).
* **Throttled time** is not the CPU the quota withheld: the kernel sums the wall time of the
  pod's throttled runqueues over CPUs. In a throttled period every runnable thread waits to the
  period's end, so ``u + throttled/Δ`` reads the pod's runnable *parallelism*, ``>= demand``: a
  single-threaded pod wanting 0.25 core under a 0.2 quota reads 0.2 + 0.8 = 1.0. That is an
  **upper bound**, good for raising the limit once far enough to watch usage reveal the demand,
  never to keep as the demand. PSI ``full`` over-reads the same way (the throttled task stays
  runnable): ``u / (1 − full)`` is the fallback upper bound when throttled time is unknown. In an
  interval where the quota bound in fewer than ``pressure_ratio`` of the periods the upper bound
  is the usage: the pod got its demand on average (a 100 ms duty cycle straddling two CFS
  periods is throttled in some of them and catches up in the next), and the kernel adds a
  period's throttled time when the runqueue is unthrottled, so an interval that starts just
  after a throttled period (e.g. right after the quota was raised) reads throttled time for it.
* **Pressure**: the quota bound in at least ``pressure_ratio`` of the periods
  (``nr_throttled / nr_periods``). A pod held at its quota with work left over is throttled in
  every period; one near its quota is throttled in some (sub-second bursts), which its headroom,
  not a probe, should absorb.

Pure and vectorised; NaN means unknown (no usage sample: both bounds NaN, no pressure).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mbcas.core.arrays import clip, nan_to
from mbcas.demand.signals import FloatArray, pod_array

__all__ = ["DemandBounds", "demand_bounds"]

_MAX_STALL = 0.95


class DemandBounds(NamedTuple):
    """Per pod: ``lower`` (usage), ``upper`` (what its runnable threads could use), ``pressured``."""

    lower: FloatArray
    upper: FloatArray
    pressured: npt.NDArray[np.bool_]


def demand_bounds(
    usage: npt.ArrayLike,
    throttled_ratio: npt.ArrayLike | None = None,
    throttled_cores: npt.ArrayLike | None = None,
    psi_full: npt.ArrayLike | None = None,
    *,
    pressure_ratio: float = 0.5,
) -> DemandBounds:
    """Bound each pod's demand from one interval's signals (cores; see module docs).

    ``throttled_cores`` is the kernel's throttled time over the interval length; ``psi_full`` a
    fraction in [0, 1]. Arrays of one value per pod or scalars; ``None`` = unknown for every pod.
    """
    u = np.asarray(usage, dtype=np.float64).reshape(-1)
    n = u.shape[0]
    u = np.where(np.isnan(u), np.nan, np.maximum(u, 0.0))
    ratio = pod_array(throttled_ratio, n, np.nan, "throttled_ratio")
    thr = pod_array(throttled_cores, n, np.nan, "throttled_cores")
    full = clip(pod_array(psi_full, n, np.nan, "psi_full"), 0.0, _MAX_STALL)
    with np.errstate(invalid="ignore"):
        by_psi = u / (1.0 - full)
        upper = np.where(np.isnan(thr), np.fmax(u, by_psi), u + np.maximum(thr, 0.0))
        pressured = nan_to(ratio, 0.0) >= pressure_ratio
        upper = np.where(ratio < pressure_ratio, u, upper)  # NaN (unknown) keeps the bound
    pressured &= ~np.isnan(u)
    return DemandBounds(lower=u, upper=upper, pressured=pressured)
