"""Hand spare capacity out as headroom, by weight, up to per-pod hard maxima.

When every pod's demand cap is met, :func:`mbcas.market.solve_nsw` leaves ``capacity − Σ alloc``
idle. Leaving it idle means a pod that starts to burst is throttled until the next tick; handing it
out as headroom lets the burst through. :func:`share_headroom` hands it out by weight, up to each
pod's hard maximum.

"By weight" here means the *totals* follow the weights, not the extras: the result is the NSW
optimum of the same program with the current allocation as the floor and the hard maximum as the
cap, ``x = clip(λ·w, alloc, hard_max)``. So the extra goes first to the pods that are furthest below
their weighted fair share (typically the idle pods, which are the ones a sudden burst would
throttle), and the whole node allocation stays the maximiser of the exported potential
``Σ w log x``. The alternative, extra ∝ w (maximising ``Σ w log(extra)``), would give a pod that
already holds a lot as much extra as an idle pod of equal weight, and its result is not an NSW
optimum of the totals. When the spare is zero (the demand caps were not all met) the result is
``alloc`` itself.
"""

from __future__ import annotations

from numpy.typing import ArrayLike

from mbcas.market._validation import (
    FloatArray,
    as_vector,
    check_capacity,
    check_same_length,
    check_weights_and_bounds,
)
from mbcas.market.solver import InfeasibleError, solve_nsw

__all__ = ["share_headroom"]


def share_headroom(capacity: float, alloc: ArrayLike, weights: ArrayLike, hard_max: ArrayLike) -> FloatArray:
    """Return the new totals ``alloc + headroom`` after handing out ``capacity − Σ alloc``.

    Args:
        capacity: the capacity ``alloc`` was solved for (same unit as ``alloc``).
        alloc: the current allocation, ``0 <= alloc <= hard_max``.
        weights: the budgets used for ``alloc`` (> 0).
        hard_max: the most each pod may ever get (finite).

    Returns:
        A new float64 array ``y`` with ``alloc <= y <= hard_max`` and
        ``Σ y = min(capacity, Σ hard_max)`` (to 1e-9 relative); ``y = alloc`` when nothing is spare.

    Raises:
        ValueError: bad values (named by index) or ``alloc[i] > hard_max[i]``.
        InfeasibleError: ``Σ alloc > capacity`` beyond rounding.
    """
    cap = check_capacity("capacity", capacity)
    a = as_vector("alloc", alloc)
    w = as_vector("weights", weights)
    hm = as_vector("hard_max", hard_max)
    check_same_length((("alloc", a), ("weights", w), ("hard_max", hm)))
    check_weights_and_bounds(("weights", "alloc", "hard_max"), w, a, hm)
    try:
        return solve_nsw(cap, w, a, hm)
    except InfeasibleError as exc:
        raise InfeasibleError(cap, exc.total_lower, what="the current allocations (alloc)") from None
