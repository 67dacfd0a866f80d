"""Step 2 of the plan: what limit each pod wants.

A limit is a burst cap: requests already guarantee each pod its share under contention, so a
limit only decides how much *idle* CPU a pod may take. A pod therefore wants what it would use
unthrottled, plus headroom:

* **envelope**: its largest usage over the window (:class:`mbcas.demand.Envelope`) ×
  ``(1 + headroom_ratio) + headroom_min``: the last bursts fit without a resize each;
* **probe**: under pressure (its quota bound in most periods) its demand is unknown above the
  limit; it wants the throttled-time upper bound (:func:`mbcas.demand.demand_bounds`) so that the
  next interval's usage shows the demand. The envelope takes over once usage has shown it.

Always within ``[floor, ceiling]``: the floor is ``max(request, min_cpu)`` (a limit may never go
below the request), the ceiling the node's allocatable CPU (or ``max_cpu``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mbcas.demand.bounds import DemandBounds
from mbcas.policy.market_config import MarketConfig

__all__ = ["needs", "wants"]

FloatArray = npt.NDArray[np.float64]


def wants(
    envelope: FloatArray, bounds: DemandBounds, floor: FloatArray, ceiling: FloatArray, cfg: MarketConfig
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Per pod: the wanted limit (cores) and whether it is a probe (see module docs).

    A pod with no envelope yet (NaN) wants its floor unless it is under pressure.
    """
    with np.errstate(invalid="ignore"):
        base = np.nan_to_num(envelope * (1.0 + cfg.headroom_ratio) + cfg.headroom_min, nan=0.0)
        probe = bounds.pressured & (np.nan_to_num(bounds.upper, nan=0.0) > base)
    want = np.where(probe, np.nan_to_num(bounds.upper, nan=0.0), base)
    out: FloatArray = np.clip(want, floor, np.maximum(ceiling, floor))
    return out, probe


def needs(
    want: FloatArray, probe: npt.NDArray[np.bool_], usage: FloatArray, floor: FloatArray, cfg: MarketConfig
) -> FloatArray:
    """What each pod needs now: its probe, else its current usage plus headroom (at most its want).

    When the overcommit bound binds, needs are served before the memory of past bursts.
    """
    now = np.nan_to_num(usage * (1.0 + cfg.headroom_ratio) + cfg.headroom_min, nan=0.0)
    out: FloatArray = np.where(probe, want, np.clip(now, floor, want))
    return out
