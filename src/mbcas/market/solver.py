"""Exact Nash-social-welfare allocation by water-filling.

:func:`solve_nsw` maximises ``Σ wᵢ·log xᵢ`` subject to ``Σ xᵢ <= C`` and ``lᵢ <= xᵢ <= uᵢ``. This is
the Eisenberg–Gale program: its optimum is the Fisher-market equilibrium in which pod ``i`` spends
budget ``wᵢ`` at one common price, i.e. weighted proportional fairness. The KKT conditions give the
closed form ``xᵢ = clip(λ·wᵢ, lᵢ, uᵢ)`` with one level ``λ`` (the inverse of the price) chosen so
that the allocations add up to the capacity.

The sum ``S(λ) = Σ clip(λ·wᵢ, lᵢ, uᵢ)`` is continuous, piecewise linear and non-decreasing, with
breakpoints at ``lᵢ/wᵢ`` (pod ``i`` leaves its floor) and ``uᵢ/wᵢ`` (pod ``i`` reaches its cap).
The solver sorts the 2n breakpoints once, evaluates ``S`` at all of them with cumulative sums,
finds the segment where ``S`` crosses ``C`` and solves the linear equation on it. The level is then
recomputed directly from the segment's free set, ``λ = (C − Σ clamped) / Σ_free w``, with pairwise
sums instead of the cancelling running sums, so ``Σ x`` meets ``C`` to rounding error even when
weights span many orders of magnitude. Should the running sums have put the crossing in the
wrong segment (only possible through rounding), a bisection over the same sorted breakpoints with
directly evaluated sums takes over. Either way the cost is one sort, ``O(n log n)``, and a fixed
number of vectorised passes; there is no iterative optimiser and no tolerance loop.

The solver is unit-free: capacity and bounds share whatever unit the caller uses (the agent uses
cores as floats) and the weights only matter up to a common factor.

Special cases:

* ``C >= Σ u``: everyone gets its cap and the rest of the capacity stays idle (``x = u``).
* ``Σ l > C``: no allocation honours every floor, :class:`InfeasibleError` is raised. Rounding in
  the caller's arithmetic is forgiven up to :data:`FEASIBILITY_RTOL`: when
  ``Σ l <= C + FEASIBILITY_RTOL·max(C, Σ l)`` the floors themselves are returned.
* ``uᵢ = 0`` (so ``lᵢ = 0``): the pod gets exactly 0. Its ``log 0`` term makes the objective
  ``-inf`` whatever the others get, so it does not influence anyone else's share.
* ``n = 0``: an empty array.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mbcas.core.arrays import clip
from mbcas.market._validation import (
    FloatArray,
    as_vector,
    check_capacity,
    check_same_length,
    check_weights_and_bounds,
)

__all__ = ["FEASIBILITY_RTOL", "InfeasibleError", "solve_nsw"]

FEASIBILITY_RTOL = 1e-9
"""Relative slack by which ``Σ lower`` may exceed the capacity before it counts as infeasible."""

# A level computed from the free set may stray this far (relatively) outside the breakpoint
# segment it was derived from and still be accepted: that much is rounding, not a wrong segment.
_SEGMENT_RTOL = 1e-9


class InfeasibleError(ValueError):
    """The floors alone need more than the capacity: ``Σ lower > capacity``.

    ``capacity`` and ``total_lower`` carry the two numbers, so a caller can shed load or scale
    the floors and try again.
    """

    def __init__(self, capacity: float, total_lower: float, what: str = "the lower bounds") -> None:
        self.capacity = capacity
        self.total_lower = total_lower
        self.what = what
        super().__init__(
            f"infeasible: {what} add up to {total_lower!r}, more than the capacity "
            f"{capacity!r} (by {total_lower - capacity!r}); no allocation can honour every floor"
        )

    def __reduce__(self) -> tuple[type[InfeasibleError], tuple[float, float, str]]:
        # Rebuild from the numbers, not the message (pickling calls cls(*args) by default).
        return (type(self), (self.capacity, self.total_lower, self.what))


def solve_nsw(capacity: float, weights: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> FloatArray:
    """Maximise ``Σ wᵢ·log xᵢ`` subject to ``Σ xᵢ <= capacity`` and ``lowerᵢ <= xᵢ <= upperᵢ``.

    Args:
        capacity: what can be shared, finite and >= 0.
        weights: budgets ``wᵢ > 0`` (the agent uses CPU requests).
        lower: floors ``lᵢ >= 0``.
        upper: caps ``uᵢ >= lᵢ``, finite.

    Returns:
        A new float64 array ``x`` in the unit of the inputs with ``x = clip(λ·w, lower, upper)``
        for one ``λ``, and ``Σ x = min(capacity, Σ upper)`` to within 1e-9 relative.

    Raises:
        ValueError: NaN or infinite values, negative values, weights <= 0, ``lower > upper`` or
            vectors of different lengths; the message names the first offending index.
        InfeasibleError: ``Σ lower > capacity`` beyond :data:`FEASIBILITY_RTOL`.
    """
    cap = check_capacity("capacity", capacity)
    w = as_vector("weights", weights)
    lo = as_vector("lower", lower)
    up = as_vector("upper", upper)
    n = check_same_length((("weights", w), ("lower", lo), ("upper", up)))
    check_weights_and_bounds(("weights", "lower", "upper"), w, lo, up)
    if n == 0:
        return np.empty(0, dtype=np.float64)

    total_upper = float(up.sum())
    if total_upper <= cap:
        return up.copy()
    total_lower = float(lo.sum())
    if total_lower >= cap:
        if total_lower - cap > FEASIBILITY_RTOL * max(cap, total_lower):
            raise InfeasibleError(cap, total_lower)
        return lo.copy()
    return _water_fill(cap, w, lo, up, total_lower)


def _water_fill(cap: float, w: FloatArray, lo: FloatArray, up: FloatArray, total_lower: float) -> FloatArray:
    """Solve the strictly interior case ``Σ lo < cap < Σ up`` (inputs already validated)."""
    n = w.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        # Breakpoints: a-events (pod leaves its floor) then b-events (pod reaches its cap). The
        # order among equal breakpoints does not matter: S is continuous, and a pod whose b-event
        # sorts before its a-event (lᵢ = uᵢ) counts as capped at uᵢ = lᵢ. So the faster unstable
        # sort will do (5x faster than a stable one at n = 10,000).
        t = np.concatenate((lo / w, up / w))
        order = np.argsort(t)
        ts = t[order]
        slope = np.cumsum(np.concatenate((w, -w))[order])  # Σ_free w after events 0..k
        level = np.cumsum(np.concatenate((-lo, up))[order])  # Σ clamped x − Σ lo after 0..k
        level += total_lower
        s = level + slope * ts  # S(ts[k]) with events 0..k applied
    k = int(np.searchsorted(s, cap, side="left"))
    k = min(max(k, 1), 2 * n - 1)

    # Events 0..k-1 have happened on the segment [ts[k-1], ts[k]]: classify pods by them.
    happened = np.zeros(2 * n, dtype=np.bool_)
    happened[order[:k]] = True
    left_floor = happened[:n]
    at_cap = happened[n:]
    free = left_floor & ~at_cap
    x = _level_on_segment(cap, w, lo, up, free=free, at_cap=at_cap, segment=(float(ts[k - 1]), float(ts[k])))
    if x is None:
        x = _bisect(cap, w, lo, up, np.unique(t))
    return x


def _level_on_segment(
    cap: float,
    w: FloatArray,
    lo: FloatArray,
    up: FloatArray,
    *,
    free: NDArray[np.bool_],
    at_cap: NDArray[np.bool_],
    segment: tuple[float, float],
) -> FloatArray | None:
    """Allocation for the free set of one segment, or None if its level falls outside it."""
    seg_lo, seg_hi = segment
    fixed = np.where(at_cap, up, lo)
    # Direct sums over non-negative terms: no cancellation, unlike the running sums above.
    w_free = float(np.dot(w, free))
    fixed_sum = float(np.dot(fixed, ~free))
    if not w_free > 0.0:
        return None
    lam = (cap - fixed_sum) / w_free
    slack = _SEGMENT_RTOL * max(abs(seg_lo), abs(lam))
    if not (seg_lo - slack <= lam <= seg_hi + _SEGMENT_RTOL * abs(lam)):
        return None
    x: FloatArray = np.where(free, clip(lam * w, lo, up), fixed)
    return x


def _bisect(cap: float, w: FloatArray, lo: FloatArray, up: FloatArray, v: FloatArray) -> FloatArray:
    """Robust path: bisect the sorted distinct breakpoints ``v`` with directly evaluated sums.

    Keeps ``S(v[i]) < cap <= S(v[j])``; at the end no breakpoint lies strictly between ``v[i]``
    and ``v[j]``, so the free set of that open segment is read off the breakpoints exactly.
    """

    i, j = 0, v.shape[0] - 1
    with np.errstate(over="ignore", invalid="ignore"):
        while j - i > 1:
            mid = (i + j) // 2
            if float(clip(float(v[mid]) * w, lo, up).sum()) < cap:  # S(v[mid]), ~log2(2n) times
                i = mid
            else:
                j = mid
    seg_lo, seg_hi = float(v[i]), float(v[j])
    with np.errstate(over="ignore", invalid="ignore"):
        a = lo / w
        b = up / w
    free = (a <= seg_lo) & (b >= seg_hi)
    at_cap = b <= seg_lo
    fixed = np.where(at_cap, up, lo)
    w_free = float(np.sum(w, where=free))
    fixed_sum = float(np.sum(fixed, where=~free))
    lam = (cap - fixed_sum) / w_free if w_free > 0.0 else seg_hi
    lam = min(max(lam, seg_lo), seg_hi)
    x: FloatArray = np.where(free, clip(lam * w, lo, up), fixed)
    return x
