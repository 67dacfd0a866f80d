"""Three numpy idioms the planner and the solver run on every tick, in their cheap form.

``np.nan_to_num``, ``np.select`` and ``np.clip`` are general (``nan_to_num`` also clips
infinities, ``select`` broadcasts every choice into one stacked array, ``clip`` goes through a
Python wrapper that checks its arguments) and cost 5-30 µs each on a node's ~100-pod arrays; the
planner needs none of that generality, and calls them dozens of times a tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["clip", "first_of", "nan_to"]


def nan_to(values: npt.NDArray[np.float64], fill: Any) -> npt.NDArray[np.float64]:
    """``values`` with every NaN replaced by ``fill`` (infinities are kept, unlike ``nan_to_num``)."""
    out: npt.NDArray[np.float64] = np.where(np.isnan(values), fill, values)
    return out


def clip(values: Any, lo: Any, hi: Any) -> npt.NDArray[np.float64]:
    """``np.clip(values, lo, hi)`` as its two ufuncs: ``lo`` first, then ``hi`` wins."""
    out: npt.NDArray[np.float64] = np.minimum(np.maximum(values, lo), hi)
    return out


def first_of(conditions: Sequence[npt.ArrayLike], choices: Sequence[Any], default: Any) -> npt.NDArray[Any]:
    """``np.select``: per element, the choice of the first true condition, else ``default``."""
    out = np.asarray(default)
    for condition, choice in zip(reversed(conditions), reversed(choices), strict=True):
        out = np.where(condition, choice, out)
    return out
