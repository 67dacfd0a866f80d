"""The decision ledger: the one place that holds each pod's current decision, keyed by pod UID.

A pod's record has two halves, kept together here so nothing else needs a copy:

* **decided** — the planner's allocation (millicores) and when it last changed, on the planner's
  own monotonic clock. Columnar (numpy arrays aligned to the UIDs of the last plan) because the
  planner reads and writes it for every pod every tick: :meth:`DecisionLedger.aligned` and
  :meth:`DecisionLedger.record`.
* **written** — what the API holds for the pod (:class:`Written`: the PodAllocation's ``cpuLimit``,
  ``mode`` and ``decidedAt`` on the wall clock, and where it lives), as last written or listed.
  The agent's write rule (:func:`mbcas.api.contract.plan_writes`) compares the decided half with
  it; the agent records each successful write or delete.

After a restart the agent lists its allocations and :meth:`DecisionLedger.restore` fills both
halves, so the first ticks hold the decisions already made instead of starting over. A restored
decision waits (as a *seed*) until the planner first sees its pod. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["NO_DECISION", "DecisionLedger", "Written"]

NO_DECISION = -1
"""The allocation of a pod without a decision (in ``decided`` arrays)."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Written:
    """A pod's PodAllocation as the API holds it (last written or listed)."""

    namespace: str
    pod_name: str
    mcpu: int
    mode: str
    """``enforce`` or ``recommend`` (:class:`mbcas.api.models.Mode` values)."""
    decided_at: float
    """``decidedAt``, wall-clock Unix seconds."""


class DecisionLedger:
    """Every pod's current decision and what the API holds of it (see module docs). Not
    thread-safe: one per node loop (the planner and the writer run in the same thread)."""

    def __init__(self) -> None:
        self._uids: tuple[str, ...] = ()
        self._mcpu: IntArray = np.zeros(0, dtype=np.int64)
        self._at: FloatArray = np.zeros(0)
        self._seeds: dict[str, tuple[int, float]] = {}
        self._written: dict[str, Written] = {}

    # ------------------------------------------------------------------ decided (the planner's)

    def aligned(self, uids: tuple[str, ...]) -> tuple[IntArray, FloatArray]:
        """The decisions of ``uids`` (copies): allocation (``NO_DECISION`` when none) and when it
        last changed (planner clock; ``-inf`` when never). Seeds fill pods without a decision."""
        if uids is self._uids or uids == self._uids:
            alloc, at = self._mcpu.copy(), self._at.copy()
        else:
            index = {u: i for i, u in enumerate(self._uids)}
            idx = np.fromiter((index.get(u, -1) for u in uids), dtype=np.intp, count=len(uids))
            known = idx >= 0
            safe = np.where(known, idx, 0)
            if self._mcpu.size:
                alloc = np.where(known, self._mcpu[safe], NO_DECISION).astype(np.int64)
                at = np.where(known, self._at[safe], -np.inf)
            else:
                alloc = np.full(len(uids), NO_DECISION, dtype=np.int64)
                at = np.full(len(uids), -np.inf)
        if self._seeds:
            for i, uid in enumerate(uids):
                seed = self._seeds.get(uid)
                if seed is not None and alloc[i] == NO_DECISION:
                    alloc[i], at[i] = seed
        return alloc, at

    def record(self, uids: tuple[str, ...], alloc_mcpu: IntArray, decided_at: FloatArray) -> None:
        """The planner's decisions after a tick, for exactly the pods it planned (others are
        forgotten; their seeds are consumed)."""
        if len(uids) != alloc_mcpu.shape[0] or len(uids) != decided_at.shape[0]:
            raise ValueError(f"{len(uids)} uids for {alloc_mcpu.shape[0]} allocations")
        self._uids = uids
        self._mcpu = np.asarray(alloc_mcpu, dtype=np.int64).copy()
        self._at = np.asarray(decided_at, dtype=np.float64).copy()
        if self._seeds:
            for uid in uids:
                self._seeds.pop(uid, None)

    def seed(self, uid: str, mcpu: int, decided_at: float) -> None:
        """A decision made before the planner saw the pod (``decided_at`` on the planner's clock)."""
        if mcpu <= 0:
            raise ValueError(f"allocation_mcpu = {mcpu} must be > 0")
        self._seeds[uid] = (int(mcpu), float(decided_at))

    def decision_of(self, uid: str) -> int | None:
        """The current allocation of ``uid`` in millicores (None if it has none)."""
        try:
            value = int(self._mcpu[self._uids.index(uid)])
        except ValueError:
            seed = self._seeds.get(uid)
            return seed[0] if seed else None
        return value if value > 0 else None

    # ------------------------------------------------------------------ written (the API's)

    @property
    def written(self) -> Mapping[str, Written]:
        """What the API holds, by pod UID (read-only view)."""
        return self._written

    def wrote(self, uid: str, written: Written) -> None:
        """The API now holds ``written`` for ``uid`` (after a successful create or update)."""
        self._written[uid] = written

    def deleted(self, uid: str) -> None:
        """The API holds nothing for ``uid`` any more."""
        self._written.pop(uid, None)

    def restore(self, listed: Mapping[str, Written], *, mono_now: float, wall_now: float) -> None:
        """Take what the API holds after a restart: it becomes the written half, and each listed
        decision seeds the planner, its age carried over from wall time to the planner's clock."""
        self._written = dict(listed)
        for uid, w in listed.items():
            if w.mcpu > 0:
                self.seed(uid, w.mcpu, mono_now - max(0.0, wall_now - w.decided_at))
