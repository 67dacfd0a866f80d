"""Two numpy idioms the planner runs on every tick, in their cheap form.

``np.nan_to_num`` and ``np.select`` are general (``nan_to_num`` also clips infinities, ``select``
broadcasts every choice into one stacked array) and cost 10-30 µs each on a node's ~100-pod
arrays; the planner needs neither generality, and calls them a dozen times a tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["first_of", "nan_to"]


def nan_to(values: npt.NDArray[np.float64], fill: Any) -> npt.NDArray[np.float64]:
    """``values`` with every NaN replaced by ``fill`` (infinities are kept, unlike ``nan_to_num``)."""
    out: npt.NDArray[np.float64] = np.where(np.isnan(values), fill, values)
    return out


def first_of(conditions: Sequence[npt.ArrayLike], choices: Sequence[Any], default: Any) -> npt.NDArray[Any]:
    """``np.select``: per element, the choice of the first true condition, else ``default``."""
    out = np.asarray(default)
    for condition, choice in zip(reversed(conditions), reversed(choices), strict=True):
        out = np.where(condition, choice, out)
    return out
