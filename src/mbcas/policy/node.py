"""The node plan: from one tick of per-pod signals to the CPU limit of every managed pod.

This is the agent's whole decision, pure and vectorised (no I/O, no clock: time is passed in), so
the agent, ``mbcas plan`` (replay of a snapshot) and the simulator run the same code::

    planner = NodePlanner(NodePolicy(), ledger, deadband=contract.deadband)
    plan = planner.plan(now, allocatable_cpu, reserve_cpu, inputs)   # one tick, stateful
    plan = replay(NodePolicy(), allocatable_cpu, reserve_cpu, inputs) # one snapshot, no history

Limits are burst caps: requests already guarantee each pod its share under contention (the
kubelet sets ``cpu.weight`` from them), so a limit only decides how much *idle* CPU a pod may
take. Each managed pod's limit follows what it would use unthrottled, and the node's invariant is
``Σ managed limits <= limit_overcommit × shareable CPU`` (``docs/market.md``). One tick:

1. **estimate** — :func:`mbcas.demand.demand_bounds` (usage bounds the demand from below, usage +
   throttled time from above) and the burst :class:`~mbcas.demand.Envelope` (largest usage over
   the window);
2. **want** — :func:`mbcas.policy.want.wants`: envelope + headroom, or a probe under pressure;
3. **bound** — :func:`mbcas.policy.bound.bound`: NSW by request weight when the wants exceed
   ``limit_overcommit`` × (allocatable − reserve − pods not managed);
4. **gate** — :func:`mbcas.policy.gate.gate`: up at once under pressure, down slowly, down at once
   when the bound needs the CPU, the limits in force kept within the bound.

Pods not managed (Guaranteed, BestEffort, excluded, or pods the controller's split cannot
resize) are left alone and counted against the shareable CPU (:mod:`mbcas.policy.capacity`); a
managed pod's limit never goes below its ``floor`` (its request, or more when containers the
controller leaves alone hold CPU limits); a managed pod without a sample this tick keeps its
limit; a managed pod with no limit counts at the node's allocatable CPU until it has one.
Decisions live in the :class:`~mbcas.policy.ledger.DecisionLedger`; the planner itself remembers
the envelope and, per pod, when it was first seen, when its limit in force last changed and since
when it is under pressure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mbcas.core.arrays import first_of, nan_to
from mbcas.core.qos import QoSClass
from mbcas.demand import DemandBounds, Envelope, Signals, demand_bounds, pod_array
from mbcas.demand.signals import check_nonnegative
from mbcas.market import nsw_objective
from mbcas.policy.bound import Bounded, bound
from mbcas.policy.capacity import node_capacity
from mbcas.policy.gate import PodState, gate
from mbcas.policy.ledger import NO_DECISION, DecisionLedger
from mbcas.policy.node_config import NodePolicy
from mbcas.policy.reasons import reason
from mbcas.policy.resize import Deadband
from mbcas.policy.want import Wants, wants

__all__ = ["Cause", "NodeInputs", "NodePlan", "NodePlanner", "replay"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
_GUARANTEED, _BURSTABLE, _BEST_EFFORT = (q.code for q in QoSClass)


class Cause(IntEnum):
    """Why a pod's limit is what it is this tick (``NodePlan.cause``; texts in ``reasons``)."""

    UNMANAGED_GUARANTEED = 0
    UNMANAGED_BESTEFFORT = 1
    UNMANAGED_EXCLUDED = 2
    NO_SIGNAL = 3
    KEEP = 4
    PROBE = 5
    """Raised at once under pressure, towards the kernel's upper bound on its demand."""
    RAISE = 6
    """Its burst envelope outgrew the limit."""
    LOWER = 7
    """The limit stayed well above its target for long enough."""
    TRIM = 8
    """Lowered at once: another pod's probe needed the CPU under the bound."""
    REPLAY = 9
    """A replay's limit (the target, no history)."""


# Indexed by Move: KEEP, PROBE, RAISE, LOWER, RECLAIM.
_MOVE_CAUSE = np.array([Cause.KEEP, Cause.PROBE, Cause.RAISE, Cause.LOWER, Cause.TRIM], dtype=np.int8)


@dataclass(frozen=True, slots=True)
class NodeInputs:
    """One tick of a node: per-pod facts and signals, aligned to ``uids``.

    CPU quantities are cores (float64), ``NaN`` meaning "not set" (request, limit). ``qos`` holds
    :attr:`mbcas.core.qos.QoSClass.code` values. ``eligible`` is the agent's selector verdict
    (namespace, labels); ``signals`` are the interval's :class:`mbcas.demand.Signals` (``usage``
    NaN: no sample this tick). Build it with :meth:`build`, which checks shapes and fills omitted
    arrays.
    """

    uids: tuple[str, ...]
    qos: NDArray[np.int8]
    eligible: BoolArray
    request: FloatArray
    limit: FloatArray
    limit_mcpu: NDArray[np.int64]
    """``limit`` in whole millicores, -1 where there is none (the unit decisions are compared in)."""
    signals: Signals
    floor: FloatArray
    """The smallest limit each pod can be given when more than its request (NaN: its request):
    the CPU its containers the controller leaves alone hold, plus the others' requests."""

    def __len__(self) -> int:
        return len(self.uids)

    @classmethod
    def build(
        cls,
        uids: Sequence[str],
        qos: ArrayLike,
        *,
        eligible: ArrayLike | None = None,
        request: ArrayLike | None = None,
        limit: ArrayLike | None = None,
        limit_mcpu: ArrayLike | None = None,
        signals: Signals | None = None,
        floor: ArrayLike | None = None,
    ) -> NodeInputs:
        """Validate and normalise (omitted arrays are all-NaN, ``eligible`` all-True, omitted
        signals unknown). The limit is given once, in cores (``limit``, NaN = none) or, from the
        API, in millicores (``limit_mcpu``, -1 = none); the other unit is derived here, once.

        Raises:
            ValueError: arrays of the wrong length, duplicate UIDs, unknown QoS codes, negative
                requests/limits (the message names the array and index).
        """
        uid_t = tuple(uids)
        n = len(uid_t)
        if len(set(uid_t)) != n:
            raise ValueError("duplicate pod UIDs")
        q = np.asarray(qos, dtype=np.int8).reshape(-1)
        if q.shape != (n,):
            raise ValueError(f"qos has shape {q.shape}, expected ({n},) like uids")
        if n and not ((q >= _GUARANTEED) & (q <= _BEST_EFFORT)).all():
            i = int(np.argmax((q < _GUARANTEED) | (q > _BEST_EFFORT)))
            raise ValueError(f"qos[{i}] = {int(q[i])} is not a QoS code (0, 1 or 2)")
        elig = np.ones(n, dtype=np.bool_) if eligible is None else np.asarray(eligible, dtype=np.bool_)
        if elig.shape != (n,):
            raise ValueError(f"eligible has shape {elig.shape}, expected ({n},) like uids")
        req = pod_array(request, n, np.nan, "request")
        if limit_mcpu is not None:
            if limit is not None:
                raise ValueError("give the limit in cores or in millicores, not both")
            lim_mcpu = np.asarray(pod_array(limit_mcpu, n, -1, "limit_mcpu"), dtype=np.int64)
            lim = np.where(lim_mcpu >= 0, lim_mcpu / 1000.0, np.nan)
        else:
            lim = pod_array(limit, n, np.nan, "limit")
            check_nonnegative("limit", lim)
            lim_mcpu = np.where(np.isfinite(lim), np.ceil(lim * 1000.0 - 1e-6), NO_DECISION).astype(np.int64)
        check_nonnegative("request", req)
        low = pod_array(floor, n, np.nan, "floor")
        check_nonnegative("floor", low)
        sig = Signals.unknown(n) if signals is None else signals
        if len(sig) != n:
            raise ValueError(f"signals are for {len(sig)} pods, expected {n} like uids")
        return cls(
            uids=uid_t,
            qos=q,
            eligible=elig,
            request=req,
            limit=lim,
            limit_mcpu=lim_mcpu,
            signals=sig,
            floor=low,
        )


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One tick's decision; arrays aligned to ``inputs.uids``, CPU in cores unless ``_mcpu``."""

    now: float
    inputs: NodeInputs
    policy: NodePolicy
    managed: BoolArray
    bounds: DemandBounds
    demand: FloatArray
    """The burst envelope: each pod's largest usage over the window (NaN: never sampled)."""
    want: FloatArray
    """What each managed pod wants (NaN where not decided this tick)."""
    target: FloatArray
    """The want after the overcommit bound (NaN where not decided this tick)."""
    trimmed: BoolArray
    allocation_mcpu: NDArray[np.int64]
    """Each managed pod's limit after this tick; -1 for pods not managed."""
    changed: BoolArray
    """A new decision this tick (the agent writes these)."""
    cause: NDArray[np.int8]
    capacity: float
    """The shareable CPU: allocatable − reserve − CPU of the pods not managed (cores)."""
    limit_bound: float
    """``limit_overcommit × capacity``: the bound on Σ managed limits (cores)."""
    infeasible: bool
    """The managed pods' requests alone exceed the bound (every limit stays at its floor)."""
    objective: float
    """NSW potential ``Σ request·log limit`` over the managed pods."""
    held: float = 0.0
    """Σ limits of the managed pods without a signal this tick, held as they are (cores): the
    bound less this is what the others share."""

    @property
    def uids(self) -> tuple[str, ...]:
        return self.inputs.uids

    @property
    def capacity_mcpu(self) -> int:
        return math.floor(self.capacity * 1000.0 + 1e-6)

    @property
    def limits_total(self) -> float:
        """Σ managed limits decided (cores): ``mbcas_agent_node_limits_cores``."""
        alloc = self.allocation_mcpu
        return float(alloc[self.managed & (alloc > 0)].sum()) / 1000.0

    @property
    def infeasible_message(self) -> str:
        if not self.infeasible:
            return ""
        active = self.managed & self.inputs.signals.sampled
        floor = np.fmax(self.inputs.request, self.inputs.floor)  # held containers' limits count too
        floors = float(np.nansum(np.where(active, floor, 0.0)))
        bound = self.limit_bound
        if self.held <= 0.0:
            return f"requests of the managed pods ({floors:.2f} cores) exceed the bound ({bound:.2f} cores)"
        return (
            f"requests of the managed pods with a signal ({floors:.2f} cores) exceed what the bound "
            f"({bound:.2f} cores) leaves beside the {self.held:.2f} cores held by pods without one"
        )

    def reason(self, i: int) -> str:
        """Why pod ``i``'s limit is what it is, in the user's words (at most 256 characters)."""
        return reason(self, i)

    def changed_indices(self) -> NDArray[np.intp]:
        """Indices of the pods with a new decision this tick."""
        return np.flatnonzero(self.changed)


class NodePlanner:
    """The stateful planner of one node (see module docs). Not thread-safe.

    ``policy`` and ``deadband`` (the controller's, from the contract) may be replaced between
    ticks (live configuration); a new window takes effect for samples from then on.
    """

    def __init__(
        self,
        policy: NodePolicy | None = None,
        ledger: DecisionLedger | None = None,
        *,
        deadband: Deadband | None = None,
    ) -> None:
        self.policy = policy or NodePolicy()
        self.ledger = ledger or DecisionLedger()
        """Where each pod's decision lives (shared with the agent's writer)."""
        self.deadband = deadband or Deadband()
        self._envelope = Envelope(self.policy.window_s, self.policy.window_buckets)
        self._uids: tuple[str, ...] = ()
        # Per pod, aligned to _uids: first seen, limit in force last seen (mcpu), when that last
        # changed (a resize landed), since when under pressure (NaN: not).
        self._seen = np.zeros((0, 4))

    def seed(self, uid: str, allocation_mcpu: int, decided_at: float) -> None:
        """Remember a decision made before this planner existed (read back from the API after a
        restart; ``decided_at`` on the planner's clock), so the first ticks hold it."""
        self.ledger.seed(uid, allocation_mcpu, decided_at)

    def allocation_of(self, uid: str) -> int | None:
        """The planner's current allocation of ``uid`` in millicores (None if it has none)."""
        return self.ledger.decision_of(uid)

    def _recall(self, uids: tuple[str, ...], now: float) -> FloatArray:
        if uids == self._uids:
            return self._seen.copy()
        index = {u: i for i, u in enumerate(self._uids)}
        idx = np.fromiter((index.get(u, -1) for u in uids), dtype=np.intp, count=len(uids))
        out = np.tile(np.array([now, NO_DECISION, now, np.nan]), (len(uids), 1))
        known = idx >= 0
        out[known] = self._seen[idx[known]]
        return out

    def plan(self, now: float, allocatable: float, reserve: float, inputs: NodeInputs) -> NodePlan:
        """Run one tick at ``now``: seconds on a monotonic clock the caller keeps using."""
        pol = self.policy
        if (pol.window_s, pol.window_buckets) != (self._envelope.window_s, self._envelope.buckets):
            self._envelope = Envelope(pol.window_s, pol.window_buckets)
        frame = _Frame.of(pol, allocatable, reserve, inputs)
        envelope = self._envelope.update(inputs.uids, inputs.signals.usage, now)
        seen = self._recall(inputs.uids, now)
        decided_mcpu, decided_at = self.ledger.aligned(inputs.uids)
        resized_at = np.where(frame.limit_mcpu != seen[:, 1], now, seen[:, 2])
        pressed_at = np.where(frame.bounds.pressured, np.fmin(seen[:, 3], now), np.nan)
        current_mcpu = np.where(decided_mcpu > 0, decided_mcpu, frame.limit_mcpu)

        active = frame.managed & inputs.signals.sampled
        held = frame.managed & ~active
        idx = np.flatnonzero(active)
        held_cores = float(current_mcpu[held].sum()) / 1000.0
        budget = max(frame.budget - held_cores, 0.0)
        bounded, w = frame.bounded(idx, envelope, budget)
        pods = PodState(
            current=current_mcpu[idx] / 1000.0,
            in_force=frame.limit_mcpu[idx] / 1000.0,
            pressured=frame.bounds.pressured[idx],
            pressed_for_s=now - nan_to(pressed_at[idx], now),
            since_change_s=now - np.fmax(decided_at[idx], seen[idx, 0]),
            since_resize_s=now - resized_at[idx],
        )
        gated = gate(
            pods, bounded.limits, w.want, bounded.needs, budget=budget, cfg=pol, deadband=self.deadband
        )

        alloc, changed, cause = frame.allocate(active, gated.limits, current_mcpu)
        cause[idx] = np.where(changed[idx], _MOVE_CAUSE[gated.move], Cause.KEEP)
        self.ledger.record(inputs.uids, alloc, np.where(changed, now, decided_at))
        self._uids = inputs.uids
        self._seen = np.column_stack((seen[:, 0], frame.limit_mcpu, resized_at, pressed_at))
        return frame.plan(
            now=now,
            envelope=envelope,
            idx=idx,
            want=w.want,
            bounded=bounded,
            alloc=alloc,
            changed=changed,
            cause=cause,
            held=held_cores,
        )


@dataclass(frozen=True, slots=True)
class _Frame:
    """What one tick knows before it decides: who is managed, the bounds, the budget, the floors."""

    policy: NodePolicy
    inputs: NodeInputs
    managed: BoolArray
    cause: NDArray[np.int8]
    bounds: DemandBounds
    limit_mcpu: NDArray[np.int64]
    """The limit in force (mcpu); the node's allocatable CPU for a pod without one."""
    capacity: float
    budget: float
    floor: FloatArray
    weight: FloatArray
    ceiling: FloatArray

    @classmethod
    def of(cls, pol: NodePolicy, allocatable: float, reserve: float, inputs: NodeInputs) -> _Frame:
        qos = inputs.qos
        managed = inputs.eligible & (qos == _BURSTABLE)
        cause = first_of(
            [qos == _GUARANTEED, qos == _BEST_EFFORT, ~managed],
            [Cause.UNMANAGED_GUARANTEED, Cause.UNMANAGED_BESTEFFORT, Cause.UNMANAGED_EXCLUDED],
            default=Cause.KEEP,
        ).astype(np.int8)
        sig = inputs.signals
        bounds = demand_bounds(
            sig.usage,
            sig.throttled_ratio,
            sig.throttled_cores,
            sig.psi_full,
            pressure_ratio=pol.pressure_ratio,
        )
        capacity = node_capacity(
            allocatable,
            reserve,
            unmanaged=~managed,
            qos=qos,
            request=inputs.request,
            limit=inputs.limit,
            usage=sig.usage,
        )
        request = nan_to(inputs.request, 0.0)
        floor = np.maximum(np.maximum(request, pol.min_cpu), nan_to(inputs.floor, 0.0))
        top = allocatable if pol.max_cpu is None else min(pol.max_cpu, allocatable)
        return cls(
            policy=pol,
            inputs=inputs,
            managed=managed,
            cause=cause,
            bounds=bounds,
            limit_mcpu=np.where(inputs.limit_mcpu >= 0, inputs.limit_mcpu, round(allocatable * 1000.0)),
            capacity=capacity,
            budget=pol.limit_overcommit * capacity,
            floor=floor,
            weight=np.where(request > 0, request, pol.min_cpu),
            ceiling=np.maximum(top, floor),
        )

    def bounded(self, idx: NDArray[np.intp], envelope: FloatArray, budget: float) -> tuple[Bounded, Wants]:
        """Steps 2 and 3 for the pods ``idx``: their wants and needs, bounded by ``budget``."""
        sub = DemandBounds(self.bounds.lower[idx], self.bounds.upper[idx], self.bounds.pressured[idx])
        pol = self.policy
        w = wants(
            envelope[idx],
            sub,
            self.limit_mcpu[idx] / 1000.0,
            floor=self.floor[idx],
            ceiling=self.ceiling[idx],
            cfg=pol,
        )
        b = bound(
            w.want, w.need, self.weight[idx], self.floor[idx], budget, protected_share=pol.protected_share
        )
        return b, w

    def allocate(
        self, active: BoolArray, limits: FloatArray, base_mcpu: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], BoolArray, NDArray[np.int8]]:
        """Allocations after the tick (mcpu): ``limits`` (cores, one per ``active`` pod) floored,
        at least 1, else ``base_mcpu`` (``NO_DECISION`` if not managed); which active pods changed;
        causes, ``NO_SIGNAL`` for managed pods without a signal (the caller sets the active ones)."""
        alloc = np.where(self.managed, base_mcpu, NO_DECISION).astype(np.int64)
        alloc[active] = np.maximum(np.floor(limits * 1000.0 + 1e-6), 1).astype(np.int64)
        changed = active & (alloc != base_mcpu)
        cause = self.cause.copy()
        cause[self.managed & ~active] = Cause.NO_SIGNAL
        return alloc, changed, cause

    def plan(
        self,
        *,
        now: float,
        envelope: FloatArray,
        idx: NDArray[np.intp],
        want: FloatArray,
        bounded: Bounded,
        alloc: NDArray[np.int64],
        changed: BoolArray,
        cause: NDArray[np.int8],
        held: float = 0.0,
    ) -> NodePlan:
        """The tick's plan from what :meth:`bounded` and :meth:`allocate` gave for the pods ``idx``."""
        inputs = self.inputs
        n = len(inputs)
        wants_all, target, trimmed = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=np.bool_)
        wants_all[idx], target[idx], trimmed[idx] = want, bounded.limits, bounded.trimmed
        has = self.managed & (alloc > 0)
        objective = nsw_objective(alloc[has] / 1000.0, self.weight[has]) if has.any() else 0.0
        return NodePlan(
            now=now,
            inputs=inputs,
            policy=self.policy,
            managed=self.managed,
            bounds=self.bounds,
            demand=envelope,
            want=wants_all,
            target=target,
            trimmed=trimmed,
            allocation_mcpu=alloc,
            changed=changed,
            cause=cause,
            capacity=self.capacity,
            limit_bound=self.budget,
            infeasible=not bounded.feasible,
            objective=objective,
            held=held,
        )


def replay(
    policy: NodePolicy,
    allocatable: float,
    reserve: float,
    inputs: NodeInputs,
    deadband: Deadband | None = None,
) -> NodePlan:
    """Plan one snapshot without history: each pod's envelope is its current usage and its limit
    is its target (wants bounded; no hysteresis, ``deadband`` unused but accepted for symmetry)."""
    del deadband
    frame = _Frame.of(policy, allocatable, reserve, inputs)
    active = frame.managed & inputs.signals.sampled
    idx = np.flatnonzero(active)
    bounded, w = frame.bounded(idx, inputs.signals.usage, frame.budget)
    alloc, changed, cause = frame.allocate(active, bounded.limits, frame.limit_mcpu)
    cause[idx] = Cause.REPLAY
    return frame.plan(
        now=0.0,
        envelope=inputs.signals.usage,
        idx=idx,
        want=w.want,
        bounded=bounded,
        alloc=alloc,
        changed=changed,
        cause=cause,
    )
