"""Input checks shared by the market functions.

Every public function of :mod:`mbcas.market` accepts array-likes and turns them into 1-D float64
vectors here. A bad input raises :class:`ValueError` with a message that names the argument, the
first offending index and its value (for example ``weights[3] = -1.0 must be > 0``), so a caller
that feeds one bad pod into a node-wide solve can tell which pod it was.

The checks run a cheap aggregate test first (a handful of numpy reductions over the whole
vector) and only search for the offending index when that test fails, so valid input pays a few
microseconds and no per-element Python work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "FloatArray",
    "as_vector",
    "check_capacity",
    "check_finite",
    "check_lower_le_upper",
    "check_nonnegative",
    "check_positive",
    "check_same_length",
    "check_weights_and_bounds",
]

FloatArray = NDArray[np.float64]


def as_vector(name: str, values: ArrayLike) -> FloatArray:
    """Return ``values`` as a 1-D float64 array (no copy when it already is one)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D sequence of real numbers: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    return arr


def check_capacity(name: str, value: float) -> float:
    """Return ``value`` as a float after checking that it is a finite number >= 0."""
    try:
        cap = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number, got {value!r}") from exc
    if not math.isfinite(cap):
        raise ValueError(f"{name} = {cap!r} is not finite")
    if cap < 0.0:
        raise ValueError(f"{name} = {cap!r} must be >= 0")
    return cap


def check_same_length(named: Sequence[tuple[str, FloatArray]]) -> int:
    """Check that all vectors have the length of the first one and return that length."""
    first_name, first = named[0]
    n = int(first.shape[0])
    for name, arr in named[1:]:
        if arr.shape[0] != n:
            raise ValueError(
                f"{name} has length {arr.shape[0]} but {first_name} has length {n}; they must match"
            )
    return n


def _first(mask: NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def check_finite(name: str, arr: FloatArray) -> None:
    """Raise if any element is NaN or infinite, naming the first one."""
    if arr.size and not np.isfinite(arr).all():
        i = _first(~np.isfinite(arr))
        raise ValueError(f"{name}[{i}] = {float(arr[i])!r} is not finite")


def check_nonnegative(name: str, arr: FloatArray) -> None:
    """Raise if any element is negative or not finite, naming the first one."""
    if arr.size and not (arr.min() >= 0.0 and arr.max() < math.inf):
        check_finite(name, arr)
        i = _first(arr < 0.0)
        raise ValueError(f"{name}[{i}] = {float(arr[i])!r} must be >= 0")


def check_positive(name: str, arr: FloatArray) -> None:
    """Raise if any element is <= 0 or not finite, naming the first one."""
    if arr.size and not (arr.min() > 0.0 and arr.max() < math.inf):
        check_finite(name, arr)
        i = _first(arr <= 0.0)
        raise ValueError(f"{name}[{i}] = {float(arr[i])!r} must be > 0")


def check_lower_le_upper(lower_name: str, lower: FloatArray, upper_name: str, upper: FloatArray) -> None:
    """Raise if ``lower[i] > upper[i]`` for some ``i`` (both already known to be finite)."""
    if lower.size and not (upper - lower).min() >= 0.0:
        i = _first(lower > upper)
        raise ValueError(
            f"{lower_name}[{i}] = {float(lower[i])!r} > {upper_name}[{i}] = {float(upper[i])!r}; "
            f"need {lower_name} <= {upper_name}"
        )


def check_weights_and_bounds(
    names: tuple[str, str, str], w: FloatArray, lo: FloatArray, up: FloatArray
) -> None:
    """Check ``0 < w < inf`` and ``0 <= lo <= up < inf`` element-wise (same lengths already checked).

    One aggregate test of five reductions covers every case (NaN poisons the reductions, so it
    fails the test too); only a failing input pays for the per-check search that names the
    first offending index, in the order weights, lower, upper, ``lower <= upper``.
    """
    if w.size == 0:
        return
    if (
        w.min() > 0.0
        and w.max() < math.inf
        and lo.min() >= 0.0
        and up.max() < math.inf
        and (up - lo).min() >= 0.0
    ):
        return
    w_name, lo_name, up_name = names
    check_positive(w_name, w)
    check_nonnegative(lo_name, lo)
    check_nonnegative(up_name, up)
    check_lower_le_upper(lo_name, lo, up_name, up)
    raise AssertionError("unreachable: the aggregate check failed but no element did")  # pragma: no cover
