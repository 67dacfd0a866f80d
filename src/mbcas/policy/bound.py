"""Step 3 of the plan: the overcommit bound, Σ managed limits <= ``limit_overcommit`` × shareable.

Limits may add up to more than the node (the kernel shares contended CPU by request weight
whatever the limits say; the scheduler and the kubelet admit against requests), but not without
end: the bound keeps a node from becoming a free-for-all in which every limit is the whole node.
When the wants fit, every pod gets its want. When they do not, the Nash-social-welfare program
decides who is trimmed: maximise ``Σ requestᵢ·log xᵢ`` subject to ``Σ x <= budget`` and
``floorᵢ <= xᵢ <= capᵢ`` (:func:`mbcas.market.solve_nsw`): every pod keeps at least its floor, and
the budget above the floors is shared in proportion to requests, no pod above its cap.

It is solved twice, so that a pod losing work now comes before a pod's memory of past bursts:
first with each pod capped at its *need* (what it uses now plus headroom, or its probe while
throttled), then the rest of the budget with the floors raised to that first answer and each pod
capped at its full want (the burst envelope). In the first solve every pod keeps at least its
*protected share*: ``protected_share`` × its request-weighted share of the budget, or its want if
that is smaller. Without it a pod's memory could be cut to its current usage by every probe
elsewhere, and its own next burst would need a probe (and another cut) in turn.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mbcas.core.arrays import clip
from mbcas.market import solve_nsw

__all__ = ["Bounded", "bound"]

FloatArray = npt.NDArray[np.float64]


class Bounded(NamedTuple):
    """The bounded wants (cores), which pods were trimmed, whether the floors fit at all, and
    the first solve's answer (what the needs get: the least a pod may be cut to)."""

    limits: FloatArray
    trimmed: npt.NDArray[np.bool_]
    feasible: bool
    needs: FloatArray


def bound(
    want: FloatArray,
    need: FloatArray,
    weight: FloatArray,
    floor: FloatArray,
    budget: float,
    *,
    protected_share: float = 0.0,
) -> Bounded:
    """Trim ``want`` to ``budget`` by NSW with ``weight`` and ``floor``, ``need`` first (see module
    docs; ``floor <= need <= want``).

    If even the floors exceed the budget the floors are returned (a limit may never go below a
    request) with ``feasible=False``.
    """
    if float(want.sum()) <= budget:
        return Bounded(want.copy(), np.zeros(want.shape[0], dtype=np.bool_), True, need.copy())
    if float(floor.sum()) > budget:
        return Bounded(floor.copy(), want > floor, False, floor.copy())
    fair = clip(protected_share * budget * weight / float(weight.sum()), floor, want)
    need = np.maximum(need, fair)
    first = need if float(need.sum()) <= budget else solve_nsw(budget, weight, fair, need)
    x = solve_nsw(budget, weight, np.minimum(first, want), want)
    return Bounded(x, x < want - 1e-9, True, first)
