"""The node plan: from one tick of per-pod signals to the CPU limit of every managed pod.

This is the agent's whole decision, pure and vectorised (no I/O, no clock: time is passed in), so
the agent, ``mbcas plan`` (replay of a snapshot) and the simulator run the same code::

    planner = NodePlanner(NodePolicy(), DemandConfig())
    plan = planner.plan(now, allocatable_cpu, reserve_cpu, inputs)   # one tick, stateful
    plan = replay(NodePolicy(), allocatable_cpu, reserve_cpu, inputs) # one snapshot, no history

Per tick, in order (all arrays aligned to ``inputs.uids``):

1. **Demand.** :func:`mbcas.demand.estimate_demand` turns usage, throttling and PSI into a raw
   demand in cores; :class:`mbcas.demand.DemandTracker` smooths it per UID (fast up, slow down) and
   says which pods are warm. A replay uses the raw demand as the smoothed one and treats every pod
   as warm.
2. **Who is managed.** ``managed = eligible & Burstable``: Guaranteed pods cannot change (their
   QoS would), BestEffort pods cannot gain a limit, and ``eligible`` carries the agent's opt-in and
   opt-out selectors. Managed pods that are warming up or had no sample this tick are *held* at
   their current allocation.
3. **Capacity.** :func:`mbcas.policy.capacity.node_capacity` (allocatable − reserve − CPU of the
   pods not managed), rounded down to millicores, minus what the held pods hold.
4. **Market.** Weights are CPU requests (``min_cpu`` for a pod without one, so equal when all are
   absent); floors ``max(request, min_cpu)``; caps ``demand·(1 + headroom_ratio) + headroom_min``
   clipped to ``[floor, hard_max]``; ``hard_max = min(max_cpu, allocatable − reserve)``.
   :func:`mbcas.market.solve_nsw` gives the demand-limited share ``need``, and
   :func:`mbcas.market.share_headroom` hands the rest out by weight up to ``hard_max`` (the
   ``target``). If the floors exceed the capacity the plan is *infeasible*: every pod keeps its
   allocation, :attr:`NodePlan.infeasible` says why, and the next feasible tick recovers.
5. **Stability** (skipped by a replay). Against the pod's current allocation ``cur`` (the last
   decision, else its current limit) with ``band = max(deadband_min, deadband_ratio·cur)`` and the
   hysteresis level ``keep = target·(1 + deadband_ratio) + deadband_min``:

   - *short* (hard): ``need > cur + band`` while the pod is under pressure (throttled-period
     ratio or PSI ``full`` >= ``pressure_threshold``), or ``cur`` is outside
     ``[floor, hard_max]``: move to ``target`` now, whatever the intervals (fast up). First
     decisions are paid the same way.
   - *shrink*: ``down_interval_s`` after its last decision, down to
     ``max(keep, cur·(1 − down_step_ratio))`` if that is more than a band below ``cur`` (slow
     down; stopping at ``keep`` is the hysteresis that keeps noise around the target from
     raising the pod again).
   - Hard shorts are paid at once by the pods above their target, **the furthest above first**
     (each cut at least a band or all it has above), down to their targets (the targets fit, so
     this always suffices): one raise moves as few other pods as possible (*reclaim*). Spreading
     the cut over every pod, as earlier versions did, left each just at its demand-limited share,
     so the next noise peak raised it again: a cascade of small resizes under steady demand.
   - *short* (soft): ``need > cur + 2·band`` without pressure (its headroom is gone, it is not
     losing work yet): raised towards ``target`` only from free capacity and from what others
     hold above their ``keep`` level, never pushing another pod into its noise band; not raised
     if that gives less than a band.
   - *contention*: while pods under pressure still want more than they hold (``need > cur``),
     the CPU that pods **not** under pressure hold above their targets (cuts of at least a band)
     goes to them at once, the most short first, each raise at least
     ``max(deadband_min, pressure_deadband_ratio·cur)`` (a pod losing work is worth a smaller
     step). Hysteresis only matters while nobody needs the CPU.
   - *grow*: ``target > cur + band`` and ``min_interval_s`` since its last decision: towards
     ``target``, using only capacity nobody holds (it never hurries another pod's descent).
   - otherwise keep ``cur`` (deadband, no change).

   Every band is larger than the controller's resize deadband (5 %, 10m), so a decision is
   normally worth a resize; only a reclaim that must take less than a band from a pod to fit the
   capacity can be smaller.
6. **Rounding.** Decisions become whole millicores (largest remainder) within what the unchanged
   pods leave, so ``Σ allocation <= capacity`` in every feasible tick.

:class:`NodePlan` carries the decision arrays, why each pod changed (:attr:`NodePlan.cause`,
:meth:`NodePlan.reason`) and the NSW potential ``Σ w·log x`` of the managed allocations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mbcas.core.qos import QoSClass
from mbcas.demand import DemandConfig, DemandTracker, Signals, estimate_demand, pod_array
from mbcas.demand.signals import check_nonnegative
from mbcas.market import InfeasibleError, nsw_objective, share_headroom, solve_nsw, to_mcpu
from mbcas.policy.capacity import node_capacity
from mbcas.policy.ledger import NO_DECISION, DecisionLedger
from mbcas.policy.node_config import NodePolicy

__all__ = ["Cause", "NodeInputs", "NodePlan", "NodePlanner", "replay"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
_NONE = NO_DECISION
_GUARANTEED, _BURSTABLE, _BEST_EFFORT = (q.code for q in QoSClass)


class Cause(IntEnum):
    """Why a pod's allocation is what it is this tick (``NodePlan.cause``)."""

    UNMANAGED_GUARANTEED = 0
    UNMANAGED_BESTEFFORT = 1
    UNMANAGED_EXCLUDED = 2
    KEEP = 3
    """Within the deadband or the decision intervals: no change."""
    FIRST = 4
    """First decision for a pod that had neither a decision nor a limit."""
    SHORT = 5
    """Demand outgrew the allocation (or it left its bounds): raised at once."""
    GROW = 6
    """More spare capacity for it: raised after the minimum interval."""
    SHRINK = 7
    """Target fell: lowered slowly."""
    RECLAIM = 8
    """Lowered at once to pay for another pod's growth."""
    HOLD_WARMUP = 9
    HOLD_NO_SIGNAL = 10
    HOLD_INFEASIBLE = 11
    REPLAY = 12
    """A replay's allocation (the target, no history)."""


_CAUSE_TEXT: dict[int, str] = {
    Cause.UNMANAGED_GUARANTEED: "not managed: Guaranteed",
    Cause.UNMANAGED_BESTEFFORT: "not managed: BestEffort",
    Cause.UNMANAGED_EXCLUDED: "not managed: excluded by config",
    Cause.KEEP: "kept",
    Cause.FIRST: "first decision",
    Cause.SHORT: "short of CPU",
    Cause.GROW: "spare capacity",
    Cause.SHRINK: "demand fell",
    Cause.RECLAIM: "reclaimed for others",
    Cause.HOLD_WARMUP: "held: warming up",
    Cause.HOLD_NO_SIGNAL: "held: no signal this tick",
    Cause.HOLD_INFEASIBLE: "held: floors exceed capacity",
    Cause.REPLAY: "replay",
}


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
            lim_mcpu = np.where(np.isfinite(lim), np.ceil(lim * 1000.0 - 1e-6), _NONE).astype(np.int64)
        check_nonnegative("request", req)
        sig = Signals.unknown(n) if signals is None else signals
        if len(sig) != n:
            raise ValueError(f"signals are for {len(sig)} pods, expected {n} like uids")
        return cls(uids=uid_t, qos=q, eligible=elig, request=req, limit=lim, limit_mcpu=lim_mcpu, signals=sig)


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One tick's decision. Arrays are aligned to ``inputs.uids``; CPU in cores unless ``_mcpu``."""

    now: float
    inputs: NodeInputs
    capacity: float
    """CPU for the managed pods (allocatable − reserve − unmanaged), cores."""
    capacity_mcpu: int
    """``capacity`` rounded down to millicores: ``Σ allocation_mcpu[managed] <= capacity_mcpu``."""
    managed: BoolArray
    raw_demand: FloatArray
    demand: FloatArray
    """Smoothed demand (cores); NaN when unknown."""
    warm: BoolArray
    need: FloatArray
    """The demand-limited NSW share (NaN where not decided this tick)."""
    target: FloatArray
    """``need`` plus its share of spare capacity (NaN where not decided this tick)."""
    allocation_mcpu: NDArray[np.int64]
    """The pod's allocation after this tick; -1 when it has none (unmanaged, or no limit yet)."""
    changed: BoolArray
    """A new decision this tick (the agent writes these)."""
    cause: NDArray[np.int8]
    infeasible: bool
    infeasible_message: str
    objective: float
    """NSW potential ``Σ w·log x`` over managed pods with an allocation (x in cores)."""
    weights: FloatArray = field(repr=False)

    @property
    def uids(self) -> tuple[str, ...]:
        return self.inputs.uids

    @property
    def limit_bound(self) -> float:
        """The node-level bound on Σ managed limits, in cores: ``limit_overcommit × shareable CPU``.

        The planner is strict today (overcommit 1.0): the bound is :attr:`capacity_mcpu`, which
        every feasible plan keeps ``Σ allocation_mcpu[managed]`` under. This is the one place the
        bound is read from (the agent's ``mbcas_agent_node_limit_bound_*`` metrics); a planner
        with a ``limit_overcommit`` setting changes only this value.
        """
        return self.capacity_mcpu / 1000.0

    @property
    def limits_total(self) -> float:
        """Σ of the managed pods' decided limits (allocations), in cores."""
        alloc = self.allocation_mcpu
        return float(alloc[self.managed & (alloc > 0)].sum()) / 1000.0

    def reason(self, i: int) -> str:
        """Short human-readable reason for pod ``i``, e.g. ``"short of CPU: throttled 34%, ..."``."""
        cause = int(self.cause[i])
        head = _CAUSE_TEXT.get(cause, "unknown")
        if not self.managed[i]:
            return head
        sig = self.inputs.signals
        facts = (
            ("throttled {:.0%}", sig.throttled_ratio),
            ("psi full {:.0%}", sig.psi_full),
            ("demand {:.2f} cores", self.demand),
            ("share {:.2f}", self.target),
        )
        parts = [head] + [fmt.format(v) for fmt, arr in facts if math.isfinite(v := float(arr[i]))]
        if cause == Cause.HOLD_INFEASIBLE and self.infeasible_message:
            parts.append(self.infeasible_message)
        text = ", ".join(parts[1:])
        return f"{head}: {text}"[:256] if text else head

    def changed_indices(self) -> NDArray[np.intp]:
        """Indices of the pods with a new decision this tick."""
        return np.flatnonzero(self.changed)


class NodePlanner:
    """The stateful node planner: demand smoothing, decision memory, stability rules.

    Not thread-safe; one per node. ``policy`` may be replaced between ticks (live config).
    """

    def __init__(
        self,
        policy: NodePolicy | None = None,
        demand_config: DemandConfig | None = None,
        ledger: DecisionLedger | None = None,
    ) -> None:
        self.policy = policy or NodePolicy()
        self.tracker = DemandTracker(demand_config)
        self.ledger = ledger or DecisionLedger()
        """Where each pod's decision lives (shared with the agent's writer)."""

    @property
    def demand_config(self) -> DemandConfig:
        return self.tracker.config

    @demand_config.setter
    def demand_config(self, config: DemandConfig) -> None:
        """Swap the estimator's and the smoothing's parameters (live config); the smoothed state stays."""
        self.tracker.config = config

    def seed(self, uid: str, allocation_mcpu: int, decided_at: float) -> None:
        """Remember a decision made before this planner existed (e.g. read back from the API after
        a restart; ``decided_at`` on the planner's clock), so the first ticks hold it instead of
        starting over."""
        self.ledger.seed(uid, allocation_mcpu, decided_at)

    def allocation_of(self, uid: str) -> int | None:
        """The planner's current allocation of ``uid`` in millicores (None if it has none)."""
        return self.ledger.decision_of(uid)

    def plan(self, now: float, allocatable: float, reserve: float, inputs: NodeInputs) -> NodePlan:
        """Run one tick at time ``now``: seconds on a monotonic clock the caller keeps using
        (smoothing and decision intervals are durations; a wall-clock step must not move them)."""
        raw = _raw_demand(inputs, self.tracker.config)
        smoothed, warm = self.tracker.update(inputs.uids, raw, now)
        alloc, decided_at = self.ledger.aligned(inputs.uids)
        plan = _decide(
            self.policy,
            now,
            allocatable,
            reserve,
            inputs,
            raw=raw,
            smoothed=smoothed,
            warm=warm,
            prev_mcpu=alloc,
            decided_at=decided_at,
            stateless=False,
        )
        self.ledger.record(inputs.uids, plan.allocation_mcpu, np.where(plan.changed, now, decided_at))
        return plan


def replay(
    policy: NodePolicy,
    allocatable: float,
    reserve: float,
    inputs: NodeInputs,
    demand_config: DemandConfig | None = None,
) -> NodePlan:
    """Plan one snapshot without history: signals count as smoothed, every pod as warm, and no
    deadband or interval applies (the allocation is the target)."""
    raw = _raw_demand(inputs, demand_config or DemandConfig())
    n = len(inputs)
    return _decide(
        policy,
        0.0,
        allocatable,
        reserve,
        inputs,
        raw=raw,
        smoothed=raw,
        warm=np.isfinite(raw),
        prev_mcpu=np.full(n, _NONE, dtype=np.int64),
        decided_at=np.full(n, -np.inf),
        stateless=True,
    )


def _raw_demand(inputs: NodeInputs, config: DemandConfig) -> FloatArray:
    return estimate_demand(inputs.signals, inputs.limit, config=config).cores


def _decide(
    policy: NodePolicy,
    now: float,
    allocatable: float,
    reserve: float,
    inputs: NodeInputs,
    *,
    raw: FloatArray,
    smoothed: FloatArray,
    warm: BoolArray,
    prev_mcpu: NDArray[np.int64],
    decided_at: FloatArray,
    stateless: bool,
) -> NodePlan:
    n = len(inputs)
    qos = inputs.qos
    burstable = qos == _BURSTABLE
    managed = inputs.eligible & burstable
    cause = np.where(
        qos == _GUARANTEED,
        Cause.UNMANAGED_GUARANTEED,
        np.where(qos == _BEST_EFFORT, Cause.UNMANAGED_BESTEFFORT, Cause.UNMANAGED_EXCLUDED),
    ).astype(np.int8)

    total = max(0.0, float(allocatable) - float(reserve))
    capacity = node_capacity(
        allocatable,
        reserve,
        unmanaged=~managed,
        qos=qos,
        request=inputs.request,
        limit=inputs.limit,
        usage=smoothed,
    )
    capacity_mcpu = math.floor(capacity * 1000.0 + 1e-6)

    request = np.nan_to_num(inputs.request, nan=0.0)
    weights = np.where(request > 0, request, policy.min_cpu)
    floor = np.maximum(request, policy.min_cpu)
    hard_max = np.full(n, total if policy.max_cpu is None else min(policy.max_cpu, total))
    hard_max = np.maximum(hard_max, floor)
    with np.errstate(invalid="ignore"):
        cap = np.clip(
            np.nan_to_num(smoothed * (1.0 + policy.headroom_ratio) + policy.headroom_min, nan=0.0),
            floor,
            hard_max,
        )

    # Current allocation: the last decision, else the pod's current limit.
    cur_mcpu = np.where(prev_mcpu > 0, prev_mcpu, inputs.limit_mcpu).astype(np.int64)
    cur_mcpu = np.where(managed, cur_mcpu, _NONE)

    sig = inputs.signals
    active = managed & warm & sig.sampled
    with np.errstate(invalid="ignore"):
        pressured = np.fmax(sig.throttled_ratio, sig.psi_full) >= policy.pressure_threshold
    held = managed & ~active
    cause[held] = np.where(warm[held], Cause.HOLD_NO_SIGNAL, Cause.HOLD_WARMUP)
    # A held pod keeps its decision; one without a decision yet (warming up) counts at what it
    # can use now, max(floor, demand), but never above its current limit.
    lim_or_inf = np.where(np.isfinite(inputs.limit), inputs.limit, np.inf)
    using = np.minimum(lim_or_inf, np.fmax(floor, np.nan_to_num(smoothed, nan=0.0)))
    hold_mcpu = np.where(prev_mcpu > 0, prev_mcpu, np.ceil(using * 1000.0 - 1e-6)).astype(np.int64)
    active_cap_mcpu = capacity_mcpu - int(hold_mcpu[held].sum())

    need = np.full(n, np.nan)
    target = np.full(n, np.nan)
    alloc_mcpu = np.where(held, prev_mcpu, cur_mcpu)
    changed = np.zeros(n, dtype=np.bool_)
    infeasible = False
    message = ""

    idx = np.flatnonzero(active)
    if idx.size:
        w, lo, up, hm = weights[idx], floor[idx], cap[idx], hard_max[idx]
        c_active = max(0.0, active_cap_mcpu / 1000.0)
        try:
            if active_cap_mcpu < 0:
                raise InfeasibleError(active_cap_mcpu / 1000.0, float(lo.sum()))
            x = solve_nsw(c_active, w, lo, up)
            y = share_headroom(c_active, x, w, hm) if policy.share_spare else x
        except InfeasibleError as exc:
            infeasible = True
            message = f"floors need {exc.total_lower:.3f} cores, capacity is {max(exc.capacity, 0.0):.3f}"
            cause[idx] = Cause.HOLD_INFEASIBLE
        else:
            need[idx], target[idx] = x, y
            if stateless:
                d = y
                chg = np.ones(idx.size, dtype=np.bool_)
                why = np.full(idx.size, Cause.REPLAY, dtype=np.int8)
            else:
                d, chg, why = _stabilise(
                    policy,
                    now,
                    need=x,
                    target=y,
                    floor=lo,
                    hard_max=hm,
                    cur_mcpu=cur_mcpu[idx],
                    decided_at=decided_at[idx],
                    capacity=c_active,
                    pressured=pressured[idx],
                )
            fixed = int(cur_mcpu[idx][~chg].sum())
            new = cur_mcpu[idx].copy()
            if chg.any():
                room = active_cap_mcpu - fixed
                new[chg] = _round(d[chg], room)
            really = chg & (new != cur_mcpu[idx])
            alloc_mcpu[idx] = new
            changed[idx] = really
            cause[idx] = np.where(really, why, Cause.KEEP)

    has = managed & (alloc_mcpu > 0)
    objective = nsw_objective(alloc_mcpu[has] / 1000.0, weights[has]) if has.any() else 0.0
    return NodePlan(
        now=now,
        inputs=inputs,
        capacity=capacity,
        capacity_mcpu=capacity_mcpu,
        managed=managed,
        raw_demand=raw,
        demand=smoothed,
        warm=warm,
        need=need,
        target=target,
        allocation_mcpu=np.where(managed, alloc_mcpu, _NONE).astype(np.int64),
        changed=changed,
        cause=cause,
        infeasible=infeasible,
        infeasible_message=message,
        objective=objective,
        weights=weights,
    )


def _stabilise(
    policy: NodePolicy,
    now: float,
    *,
    need: FloatArray,
    target: FloatArray,
    floor: FloatArray,
    hard_max: FloatArray,
    cur_mcpu: NDArray[np.int64],
    decided_at: FloatArray,
    capacity: float,
    pressured: BoolArray,
) -> tuple[FloatArray, BoolArray, NDArray[np.int8]]:
    """Apply the deadband, the intervals, the slow-down step and reclaiming (see module text)."""
    known = cur_mcpu > 0
    first = ~known
    cur = np.where(known, cur_mcpu / 1000.0, 0.0)
    band = np.maximum(policy.deadband_min, policy.deadband_ratio * cur)
    # A pod under pressure is already losing work: a smaller shortfall is worth a change.
    pressed_ratio = min(policy.pressure_deadband_ratio, policy.deadband_ratio)
    pressed_band = np.maximum(policy.deadband_min, pressed_ratio * cur)
    since = now - decided_at
    # The hysteresis level: a decrease for the pod's own sake stops here, so noise around the
    # target cannot raise the pod again right away.
    keep_level = np.maximum(target * (1.0 + policy.deadband_ratio) + policy.deadband_min, target)
    out_of_bounds = known & ((cur < floor - 1e-9) | (cur > hard_max + 1e-9))
    # Hard short: under pressure and short of its share, or out of bounds. Paid at once, down to
    # the other pods' targets (someone is losing work, so nobody keeps a hysteresis margin).
    hard = known & (((need > cur + band) & pressured) | out_of_bounds)
    # Soft short: not (yet) under pressure but its headroom is gone. Paid only from free
    # capacity and from what others hold above their hysteresis level, so it never pushes another
    # pod into its own noise band (that cascade is what made steady demand flap).
    soft = known & ~hard & (need > cur + 2.0 * band)
    grow = known & ~hard & ~soft & (target > cur + band) & (since >= policy.min_interval_s)
    low = np.maximum(keep_level, cur * (1.0 - policy.down_step_ratio))
    shrink = known & ~hard & ~soft & (low < cur - band) & (since >= policy.down_interval_s)

    d = cur.copy()
    why = np.full(need.shape[0], Cause.KEEP, dtype=np.int8)
    takers = first | hard
    d[takers] = target[takers]
    why[first] = Cause.FIRST
    why[hard] = Cause.SHORT
    d[shrink] = low[shrink]
    why[shrink] = Cause.SHRINK
    chg = takers | shrink

    # Pods short of CPU (and new ones) are paid for at once by the pods held above their target,
    # the furthest above first, so one raise moves as few other pods as possible.
    excess = float(d.sum()) - capacity
    if excess > 1e-12:
        d, cut = _take(d, excess, target, ~takers, band)
        why[cut] = Cause.RECLAIM
        chg = chg | cut
    # Soft shorts, the most short first, from free capacity and then from the excess others hold
    # above their hysteresis level; a raise smaller than a band is not worth a change.
    for i in np.argsort(cur - need, kind="stable"):
        if not soft[i]:
            continue
        others = ~takers & ~soft
        others[i] = False
        free = capacity - float(d.sum())
        spare_above = float(np.maximum(d - np.maximum(keep_level, target), 0.0)[others].sum())
        give = min(float(target[i] - d[i]), max(free, 0.0) + spare_above)
        if give <= band[i]:
            continue
        if give > free:
            d, cut = _take(d, give - max(free, 0.0), np.maximum(keep_level, target), others, band)
            why[cut] = Cause.RECLAIM
            chg = chg | cut
        d[i] += give
        why[i] = Cause.SHORT
        chg[i] = True
        takers[i] = True
    # Contention: pods under pressure still want more than they hold, so CPU held above a target
    # by pods that are not under pressure goes to them now, without the hysteresis margin (it only
    # matters while nobody needs the CPU). The most short first; each raise at least a pressure
    # band (possibly a little beyond its share) so that it is worth a resize.
    wanting = known & pressured & ~chg & (need > d + 1e-9)
    if wanting.any():
        victims = known & ~pressured & ~takers
        above = np.where(victims, np.maximum(d - target, 0.0), 0.0)
        above = np.where(above >= band, above, 0.0)  # smaller cuts are not worth a resize
        pool = max(capacity - float(d.sum()), 0.0) + float(above.sum())
        given = 0.0
        for i in np.argsort(d - need, kind="stable"):
            if not wanting[i]:
                continue
            give = min(pool - given, max(float(need[i] - d[i]), float(pressed_band[i])))
            if give < pressed_band[i] - 1e-12:
                continue
            d[i] += give
            given += give
            why[i] = Cause.SHORT
            chg[i] = True
            takers[i] = True
        excess = float(d.sum()) - capacity
        if excess > 1e-12:
            d, cut = _take(d, excess, target, above > 0, band)
            why[cut] = Cause.RECLAIM
            chg = chg | cut
    # Growing into spare capacity only uses what is free: it never hurries anyone's slow descent.
    grow &= ~chg
    if grow.any():
        room = capacity - float(d.sum())
        want = np.where(grow, target - d, 0.0)
        total_want = float(want.sum())
        if room > 1e-12 and total_want > 0:
            give_all = want * min(1.0, room / total_want)
            ok = grow & (give_all > band)
            d = np.where(ok, d + give_all, d)
            why[ok] = Cause.GROW
            chg = chg | ok
    return d, chg, why


def _take(
    d: FloatArray, amount: float, level: FloatArray, eligible: BoolArray, band: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """Lower ``d`` by ``amount`` in total from the ``eligible`` pods above ``level``, the furthest
    above first; each cut is at least a band (or all the pod has above its level), so no cut is
    too small to be worth a resize. Returns the new ``d`` and which pods were cut."""
    out = d.copy()
    cut = np.zeros(d.shape[0], dtype=np.bool_)
    above = np.where(eligible, np.maximum(d - level, 0.0), 0.0)
    remaining = amount
    # Pods at least a band above their level first (furthest first), the smaller ones last.
    order = np.lexsort((-above, above < band))
    for i in order:
        if remaining <= 1e-12 or above[i] <= 1e-12:
            break
        c = min(float(above[i]), max(remaining, float(band[i])))
        out[i] -= c
        cut[i] = True
        remaining -= c
    return out, cut


def _round(cores: FloatArray, room_mcpu: int) -> NDArray[np.int64]:
    """Whole millicores with ``Σ <= room`` and at least 1 each (``room`` >= the exact sum)."""
    room = max(room_mcpu, 0)
    try:
        out = to_mcpu(cores, room)
    except ValueError:
        out = to_mcpu(cores * (1.0 - 1e-9), room)
    return np.maximum(out, 1)
