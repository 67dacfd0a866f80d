"""solve_nsw against an independent general-purpose convex solver (scipy SLSQP).

The NSW program is strictly concave in x, so its optimum is unique: a generic solver given the
same objective, gradient, bounds and capacity constraint must land on the same point. Instances
are random (seeded) with strictly positive floors so the log stays finite along SLSQP's path.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from mbcas.market import nsw_objective, solve_nsw


def slsqp_nsw(capacity: float, w: np.ndarray, lo: np.ndarray, up: np.ndarray) -> np.ndarray:
    # Start from a feasible point: the floors plus an even share of the remaining capacity.
    x0 = np.clip(lo + (capacity - lo.sum()) / len(w), lo, up)
    res = minimize(
        lambda x: -float(np.dot(w, np.log(x))),
        x0,
        jac=lambda x: -w / x,
        method="SLSQP",
        bounds=list(zip(lo, up, strict=True)),
        constraints=[
            {"type": "ineq", "fun": lambda x: capacity - x.sum(), "jac": lambda x: -np.ones_like(x)}
        ],
        options={"ftol": 1e-11, "maxiter": 1000},
    )
    assert res.success, res.message
    return np.asarray(res.x)


@pytest.mark.parametrize("seed", range(40))
def test_same_optimum_as_slsqp(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 16))
    w = 10.0 ** rng.uniform(-1.5, 1.5, n)
    up = rng.uniform(0.2, 4.0, n)
    lo = np.minimum(up, rng.uniform(0.05, 1.0, n))
    capacity = float(lo.sum() + rng.uniform(0.05, 0.95) * (up.sum() - lo.sum()))
    ours = solve_nsw(capacity, w, lo, up)
    theirs = slsqp_nsw(capacity, w, lo, up)
    # Same point (SLSQP converges to ~1e-6) and ours is never worse.
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * capacity)
    assert nsw_objective(ours, w) >= nsw_objective(theirs, w) - 1e-9
