"""Hypothesis strategies and checkers shared by the market tests.

Problems are drawn as (capacity, weights, lower, upper) with floors, caps and capacities spread
over the interesting regimes: capacity below Σ upper (water-filling), above it (everyone capped),
equal to Σ lower, pods pinned at lower == upper, pods with upper == 0 and weights that span many
orders of magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

__all__ = ["Problem", "assert_kkt", "problems"]


@dataclass(frozen=True)
class Problem:
    capacity: float
    weights: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @property
    def n(self) -> int:
        return int(self.weights.shape[0])


_weight = st.one_of(
    st.floats(0.01, 100.0),
    st.sampled_from([1.0, 2.0, 0.5]),  # exact ties
    st.floats(-9.0, 9.0).map(lambda e: 10.0**e),  # many orders of magnitude
)
_bound = st.one_of(st.floats(0.0, 10.0, allow_subnormal=False), st.sampled_from([0.0, 0.5, 1.0, 2.0]))


@st.composite
def _pod(draw: st.DrawFn) -> tuple[float, float, float]:
    w = draw(_weight)
    a, b = sorted((draw(_bound), draw(_bound)))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        a = b  # pinned
    elif kind == 1:
        a = b = 0.0  # nothing to give
    elif kind == 2:
        a = 0.0
    return w, a, b


@st.composite
def problems(draw: st.DrawFn, min_n: int = 0, max_n: int = 40, feasible_only: bool = True) -> Problem:
    pods = draw(st.lists(_pod(), min_size=min_n, max_size=max_n))
    w = np.array([p[0] for p in pods], dtype=float)
    lo = np.array([p[1] for p in pods], dtype=float)
    up = np.array([p[2] for p in pods], dtype=float)
    s_lo, s_up = float(lo.sum()), float(up.sum())
    # No subnormal shares: a capacity of 1.5e-323 cores has no meaning and too few mantissa bits
    # for the optimality checks' tolerances (Hypothesis found one).
    share = st.floats(0.0, 1.0, allow_subnormal=False)
    regime = draw(st.integers(0, 5))
    if regime == 0:
        cap = s_lo
    elif regime == 1:
        cap = s_up * draw(st.floats(1.0, 3.0)) + draw(share)
    else:
        cap = s_lo + (s_up - s_lo) * draw(share)
    if not feasible_only and draw(st.booleans()):
        cap = max(0.0, s_lo * draw(st.floats(0.0, 0.99)))
    return Problem(float(cap), w, lo, up)


def assert_kkt(p: Problem, x: np.ndarray, rtol: float = 1e-9) -> None:
    """Check the optimality conditions of the NSW program at ``x``.

    Feasibility and the sum, then one common level λ: every pod strictly between its bounds has
    ``x/w = λ``; a pod held at its floor has ``λ·w <= l``; a pod held at its cap has ``λ·w >= u``.
    With no free pod, λ only has to exist: max over capped pods of u/w <= min over floored l/w.
    """
    w, lo, up = p.weights, p.lower, p.upper
    scale = max(p.capacity, float(up.sum()), 1e-300)
    tol = rtol * scale
    assert x.dtype == np.float64 and x.shape == (p.n,)
    assert np.all(x >= lo) and np.all(x <= up)
    target = min(p.capacity, float(up.sum()))
    assert abs(float(x.sum()) - target) <= rtol * max(target, float(lo.sum()), 1e-300)
    if float(up.sum()) <= p.capacity:
        np.testing.assert_array_equal(x, up)
        return
    at_lo = x <= lo + tol
    at_up = x >= up - tol
    free = ~at_lo & ~at_up
    # Largest level a floored pod tolerates and smallest level a capped pod needs (with tol).
    levels_floor = np.where(at_lo & ~at_up, (lo + tol) / w, np.inf)
    levels_cap = np.where(at_up & ~at_lo, (up - tol) / w, -np.inf)
    if free.any():
        lam = x[free] / w[free]
        lam0 = float(np.median(lam))
        # In allocation space: every free pod sits at λ·w (a level test in λ space would be
        # ill-conditioned for tiny weights).
        np.testing.assert_allclose(x[free], lam0 * w[free], rtol=1e-7, atol=tol)
        # floored pods: λ·w <= l (+ tol); capped pods: λ·w >= u (- tol)
        assert np.all(lam0 * w[at_lo & ~at_up] <= lo[at_lo & ~at_up] + 2 * tol + 1e-7 * x.max())
        assert np.all(lam0 * w[at_up & ~at_lo] >= up[at_up & ~at_lo] - 2 * tol - 1e-7 * x.max())
    else:
        hi = float(levels_cap.max()) if p.n else -np.inf
        low = float(levels_floor.min()) if p.n else np.inf
        assert hi <= low, (hi, low)
