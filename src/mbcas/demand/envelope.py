"""The burst envelope: each pod's largest usage over a sliding window, keyed by pod UID.

A limit that follows a pod's *recent peak* rather than its current usage stays up between
bursts, so a bursty pod's next burst fits without a resize per burst, and it comes down only
when the peak has left the window. :class:`Envelope` keeps, per pod, the maximum of each of
``buckets`` consecutive slices of the window (``window_s / buckets`` seconds each, aligned to
the clock passed in); the envelope is the maximum over the slices, so it covers the last
``window_s`` seconds to within one slice. Cost per tick: one ``(pods × buckets)`` maximum.

* A NaN sample leaves the pod's slices as they are.
* A UID not passed in a tick is forgotten (a pod recreated later starts fresh).
* A pod seen for the first time has an envelope of its first sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Envelope"]

FloatArray = npt.NDArray[np.float64]


class Envelope:
    """Sliding-window maximum per pod UID, in ``buckets`` slices (see module docs)."""

    def __init__(self, window_s: float = 300.0, buckets: int = 10) -> None:
        if not window_s > 0 or buckets < 1:
            raise ValueError(f"window_s must be > 0 and buckets >= 1, got {window_s!r}, {buckets!r}")
        self.window_s = float(window_s)
        self.buckets = int(buckets)
        self._slice_s = self.window_s / self.buckets
        self._uids: tuple[str, ...] = ()
        self._max = np.empty((0, self.buckets))
        self._slot: int | None = None

    def __len__(self) -> int:
        return len(self._uids)

    def _align(self, uids: tuple[str, ...]) -> None:
        if uids == self._uids:
            return
        index = {u: i for i, u in enumerate(self._uids)}
        if len(index) != len(self._uids) or len(set(uids)) != len(uids):
            raise ValueError("duplicate pod UIDs")
        rows = np.full((len(uids), self.buckets), -np.inf)
        for i, uid in enumerate(uids):
            j = index.get(uid)
            if j is not None:
                rows[i] = self._max[j]
        self._uids = uids
        self._max = rows

    def update(self, uids: Sequence[str], values: npt.ArrayLike, now: float) -> FloatArray:
        """Fold one sample per pod in at time ``now``; return the envelopes aligned to ``uids``
        (NaN for a pod that has never had a finite sample)."""
        uid_t = tuple(uids)
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        if x.shape != (len(uid_t),):
            raise ValueError(f"values has {x.shape[0]} entries for {len(uid_t)} uids")
        self._align(uid_t)
        slot = math.floor(now / self._slice_s)
        if self._slot is None:
            self._slot = slot
        elif slot != self._slot:
            # Clear the slices that the window left since the last update (all of them after a gap).
            for s in range(self._slot + 1, min(slot, self._slot + self.buckets) + 1):
                self._max[:, s % self.buckets] = -np.inf
            self._slot = slot
        col = slot % self.buckets
        self._max[:, col] = np.fmax(self._max[:, col], x)
        env = self._max.max(axis=1)
        out: FloatArray = np.where(np.isfinite(env), env, np.nan)
        return out

    def peek(self) -> FloatArray:
        """The current envelopes (aligned to the last update's UIDs) without a new sample."""
        env = self._max.max(axis=1) if self._max.size else np.empty(0)
        out: FloatArray = np.where(np.isfinite(env), env, np.nan)
        return out
