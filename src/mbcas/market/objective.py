"""The Nash-social-welfare potential ``Σ wᵢ·log xᵢ``.

This is the objective that :func:`mbcas.market.solve_nsw` maximises and the potential of the
allocation game (GTCAS framed CPU sharing as a potential game; NSW is its potential). The agent
exports it as a metric: while demand is steady it must rise or stay flat from tick to tick, a
Lyapunov-style sign that the loop converges rather than oscillates.

The value depends on the unit of ``x`` only through an additive constant (``Σ w · log k`` for a
unit change by ``k``), so compare values computed in one unit. An allocation of exactly 0 to a pod
with a positive weight gives ``-inf`` (``log 0``), which is the honest value: such an allocation is
infinitely worse than any that gives every pod something. An empty allocation gives 0.0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mbcas.market._validation import as_vector, check_nonnegative, check_positive, check_same_length

__all__ = ["nsw_objective"]


def nsw_objective(x: ArrayLike, weights: ArrayLike) -> float:
    """Return ``Σ wᵢ·log xᵢ``; ``-inf`` if some ``xᵢ == 0``.

    Raises:
        ValueError: NaN/inf or negative ``x``, weights <= 0 or not finite, or different lengths;
            the message names the first offending index.
    """
    xs = as_vector("x", x)
    w = as_vector("weights", weights)
    check_same_length((("x", xs), ("weights", w)))
    check_nonnegative("x", xs)
    check_positive("weights", w)
    if xs.size == 0:
        return 0.0
    if not xs.min() > 0.0:
        return float("-inf")
    return float(np.dot(w, np.log(xs)))
