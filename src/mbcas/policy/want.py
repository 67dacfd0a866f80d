"""Step 2 of the plan: what limit each pod wants, and what it needs now.

A limit is a burst cap: requests already guarantee each pod its share under contention, so a
limit only decides how much *idle* CPU a pod may take. A pod therefore wants what it would use
unthrottled, plus headroom:

* **envelope**: its largest usage over the window (:class:`mbcas.demand.Envelope`) ×
  ``(1 + headroom_ratio)``: its recent bursts fit without a resize each;
* **probe**: under pressure (its quota bound in most periods) its demand above the limit is
  unknown. The throttled-time upper bound (:func:`mbcas.demand.demand_bounds`) bounds it, so the
  pod wants that plus headroom, kept within ``[probe_min_ratio, probe_max_ratio]`` × its limit:
  raised that far, the next interval's usage shows the demand, and the envelope takes over.

What it **needs now** is its probe under pressure, else its current usage plus headroom: when the
overcommit bound binds, needs come before the memory of past bursts (:mod:`mbcas.policy.bound`).

Always within ``[floor, ceiling]``: the floor is ``max(request, min_cpu)`` (a limit may never go
below the request), the ceiling the node's allocatable CPU (or ``max_cpu``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mbcas.core.arrays import clip, nan_to
from mbcas.demand.bounds import DemandBounds
from mbcas.policy.node_config import NodePolicy

__all__ = ["Wants", "wants"]

FloatArray = npt.NDArray[np.float64]


class Wants(NamedTuple):
    """Per pod (cores): what it wants, what it needs now, and whether the want is a probe."""

    want: FloatArray
    need: FloatArray
    probe: npt.NDArray[np.bool_]


def wants(
    envelope: FloatArray,
    bounds: DemandBounds,
    limit: FloatArray,
    *,
    floor: FloatArray,
    ceiling: FloatArray,
    cfg: NodePolicy,
) -> Wants:
    """Each pod's want and need (see module docs); ``limit`` is the limit in force.

    A pod with no envelope yet (NaN) wants its floor unless it is under pressure.
    """
    top = np.maximum(ceiling, floor)
    with np.errstate(invalid="ignore"):
        memory = nan_to(envelope * (1.0 + cfg.headroom_ratio), 0.0)
        current = nan_to(bounds.lower * (1.0 + cfg.headroom_ratio), 0.0)
        upper = bounds.upper * (1.0 + cfg.headroom_ratio)
        probing = clip(upper, limit * cfg.probe_min_ratio, limit * cfg.probe_max_ratio)
        probing = nan_to(probing, 0.0)
    probe = bounds.pressured & (probing > memory)
    want = clip(np.where(probe, probing, memory), floor, top)
    need = clip(np.where(bounds.pressured, probing, current), floor, want)
    return Wants(want, need, probe)
