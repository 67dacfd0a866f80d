"""Round an allocation in cores to whole millicores without exceeding the capacity.

The solver works in any unit; the agent works in cores (floats) and Kubernetes takes CPU in
millicores (``"250m"``). Rounding each pod to the nearest millicore can overshoot the node by up
to n/2 millicores, so :func:`to_mcpu` uses the largest-remainder method instead:

1. every pod gets ``floor(1000·xᵢ)`` millicores (never less);
2. ``round(Σ 1000·xᵢ) − Σ floor`` leftover millicores, limited to what still fits in
   ``capacity_mcpu``, go one each to the pods with the largest fractional remainders (ties
   go to the lower index, so the result is deterministic).

So ``Σ result <= capacity_mcpu`` always, each pod ends within one millicore of its exact
value and never below its floor, and the total matches the exact total to the nearest millicore
whenever the capacity allows. Values within 1e-9 millicores of an integer count as that integer,
so ``0.3`` cores becomes 300m even though ``0.3·1000`` is ``300.00000000000006`` or
``299.99999999999994`` in floating point (this snap is dropped again if it alone would break the
capacity).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mbcas.core.units import MCPU_PER_CORE
from mbcas.market._validation import as_vector, check_nonnegative

__all__ = ["to_mcpu"]

# Distance (in millicores) from an integer under which a value counts as that integer.
_SNAP = 1e-9


def to_mcpu(cores: ArrayLike, capacity_mcpu: int) -> NDArray[np.int64]:
    """Return ``cores`` as whole millicores (int64) with ``Σ result <= capacity_mcpu``.

    Raises:
        ValueError: NaN/inf or negative cores (named by index), a capacity that is not a
            non-negative integer, or an allocation whose floors alone exceed the capacity
            (then the input was over capacity by at least one millicore).
    """
    cap = _check_capacity(capacity_mcpu)
    c = as_vector("cores", cores)
    check_nonnegative("cores", c)
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    exact = c * MCPU_PER_CORE
    if not exact.max() < 2.0**62:
        i = int(np.argmax(exact))
        raise ValueError(f"cores[{i}] = {float(c[i])!r} is too large to express in int64 millicores")
    base = np.floor(exact + _SNAP)
    if base.sum() > cap:
        base = np.floor(exact)
        if base.sum() > cap:
            raise ValueError(
                f"the allocation needs at least {int(base.sum())} millicores, more than the "
                f"capacity of {cap} millicores"
            )
    remainder = exact - base  # in (-_SNAP, 1)
    wanted = round(float(np.clip(remainder, 0.0, None).sum()))
    give = min(wanted, cap - int(base.sum()), int(np.count_nonzero(remainder > _SNAP)))
    result = base.astype(np.int64)
    if give > 0:
        # Largest remainders first, lower index first among equals.
        top = np.argsort(-remainder, kind="stable")[:give]
        result[top] += 1
    return result


def _check_capacity(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"capacity_mcpu must be a whole number, got {value!r}")
    cap = int(value)
    if cap < 0:
        raise ValueError(f"capacity_mcpu = {cap} must be >= 0")
    return cap
