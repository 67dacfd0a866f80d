"""The market planner: from one tick of per-pod signals to the CPU limit of every managed pod.

Limits are burst caps. The kernel already guarantees every pod its request under contention
(``cpu.weight`` / ``cpu.shares`` follow requests), so a limit only decides how much *idle* CPU a
pod may take; each managed pod's limit follows what it would use unthrottled, and the node-level
invariant is ``Σ managed limits <= limit_overcommit × shareable CPU``. One tick, in order:

1. **estimate** — :func:`mbcas.demand.demand_bounds`: usage is the demand's lower bound (its
   value while the quota does not bind), usage + throttled time its upper bound; the burst
   :class:`~mbcas.demand.Envelope` is the largest usage over the window.
2. **want** — :func:`mbcas.policy.want.wants`: envelope plus headroom, or the upper bound while the
   pod is under pressure (a probe), within ``[max(request, min_cpu), allocatable]``.
3. **bound** — :func:`mbcas.policy.bound.bound`: if the wants exceed the budget
   (``limit_overcommit`` × (allocatable − reserve − unmanaged pods)), NSW trims them by request
   weight.
4. **gate** — :func:`mbcas.policy.gate.gate`: up at once under pressure, down slowly, down at once
   when the bound needs the CPU.

Pods that are not managed (Guaranteed, BestEffort, excluded) are left alone and counted against
the shareable CPU (:mod:`mbcas.policy.capacity`); a managed pod with no signal this tick keeps its
limit. A managed pod with no limit counts at the node's allocatable CPU until it has one. Pure and
vectorised; the only state is the envelope and each pod's last decision and its time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from mbcas.demand.bounds import DemandBounds, demand_bounds
from mbcas.demand.envelope import Envelope
from mbcas.market import nsw_objective
from mbcas.policy.bound import bound
from mbcas.policy.capacity import QOS_BESTEFFORT, QOS_BURSTABLE, QOS_GUARANTEED, node_capacity
from mbcas.policy.gate import PodState, gate
from mbcas.policy.market_config import MarketConfig
from mbcas.policy.node import NodeInputs
from mbcas.policy.want import wants

__all__ = ["Cause", "MarketPlan", "MarketPlanner"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_NONE = -1


class Cause(IntEnum):
    """Why a pod's limit is what it is this tick."""

    UNMANAGED_GUARANTEED = 0
    UNMANAGED_BESTEFFORT = 1
    UNMANAGED_EXCLUDED = 2
    NO_SIGNAL = 3
    KEEP = 4
    PROBE = 5
    RAISE = 6
    LOWER = 7
    TRIM = 8


# Indexed by Move: KEEP, PROBE, RAISE, LOWER, RECLAIM.
_MOVE_CAUSE = np.array([Cause.KEEP, Cause.PROBE, Cause.RAISE, Cause.LOWER, Cause.TRIM], dtype=np.int8)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


@dataclass(frozen=True, slots=True)
class MarketPlan:
    """One tick's decision; arrays aligned to ``inputs.uids``, CPU in cores unless ``_mcpu``."""

    now: float
    inputs: NodeInputs
    config: MarketConfig
    managed: BoolArray
    bounds: DemandBounds
    envelope: FloatArray
    want: FloatArray
    """What each pod wants (NaN where not decided this tick)."""
    target: FloatArray
    """The want after the overcommit bound (NaN where not decided this tick)."""
    trimmed: BoolArray
    allocation_mcpu: npt.NDArray[np.int64]
    """Each managed pod's limit after this tick; -1 for pods not managed."""
    changed: BoolArray
    """A new decision this tick (the agent writes these)."""
    cause: npt.NDArray[np.int8]
    shareable: float
    """allocatable − reserve − CPU of the pods not managed (cores)."""
    budget: float
    """``limit_overcommit × shareable``: the bound on Σ managed limits (cores)."""
    feasible: bool
    """False when the managed pods' requests alone exceed the budget (limits stay at requests)."""
    objective: float
    """NSW potential ``Σ request·log limit`` over the managed pods."""

    @property
    def uids(self) -> tuple[str, ...]:
        return self.inputs.uids

    @property
    def limit_bound(self) -> float:
        """The bound on Σ managed limits (cores): ``mbcas_agent_node_limit_bound_cores``."""
        return self.budget

    @property
    def limits_total(self) -> float:
        """Σ managed limits decided (cores): ``mbcas_agent_node_limits_cores``."""
        return float(self.allocation_mcpu[self.managed & (self.allocation_mcpu > 0)].sum()) / 1000.0

    @property
    def bound_ratio(self) -> float:
        """Σ managed limits over the bound: ``mbcas_agent_node_limit_bound_ratio`` (<= 1)."""
        return self.limits_total / self.budget if self.budget > 0 else math.inf

    def changed_indices(self) -> npt.NDArray[np.intp]:
        """Indices of the pods with a new decision this tick."""
        return np.flatnonzero(self.changed)

    def reason(self, i: int) -> str:
        """Why pod ``i``'s limit is what it is, in the user's words (at most 256 characters)."""
        cause = Cause(int(self.cause[i]))
        if cause is Cause.UNMANAGED_GUARANTEED:
            return "not managed: Guaranteed (its limit must equal its request)"
        if cause is Cause.UNMANAGED_BESTEFFORT:
            return "not managed: BestEffort (it cannot gain a limit)"
        if cause is Cause.UNMANAGED_EXCLUDED:
            return "not managed: excluded by the agent's selectors"
        if cause is Cause.NO_SIGNAL:
            return "kept: no CPU signal this tick"
        cfg = self.config
        limit = self.allocation_mcpu[i] / 1000.0
        before = float(self.inputs.limit[i])
        env = float(self.envelope[i])
        burst = f"burst envelope {env:.2f} cores over the last {_duration(cfg.window_s)}"
        throttled = f"throttled in {float(self.inputs.throttled_ratio[i]):.0%} of periods"
        at_bound = f"node limits at the {cfg.limit_overcommit:g}× bound ({self.budget:.2f} cores)"
        upper = float(self.bounds.upper[i])
        if cause is Cause.PROBE:
            text = (
                f"{throttled} at {before:.2f} cores: raised to {limit:.2f} to measure its demand "
                f"(the kernel's throttled time bounds it at {upper:.2f})"
            )
            if self.trimmed[i]:
                text += f"; trimmed by request weight: {at_bound}"
        elif cause is Cause.TRIM:
            text = f"trimmed by request weight to {limit:.2f} cores: {at_bound}; {burst}"
        elif cause is Cause.RAISE:
            text = f"{burst}: raised to {limit:.2f} (+{cfg.headroom_ratio:.0%} headroom)"
        elif cause is Cause.LOWER:
            why = f"; {at_bound}" if self.trimmed[i] else f" (+{cfg.headroom_ratio:.0%} headroom)"
            text = f"{burst}: lowered to {limit:.2f}{why}"
        elif self.bounds.pressured[i]:
            if limit > before + 1e-3:
                why = f"its raise to {limit:.2f} is being applied"
            elif self.trimmed[i]:
                why = f"trimmed by request weight: {at_bound}"
            else:
                why = f"no more CPU free under the bound yet ({self.budget:.2f} cores)"
            text = f"{throttled} at {before:.2f} cores: {why}"
        elif self.trimmed[i]:
            text = f"trimmed by request weight: {at_bound}; wants {self.want[i]:.2f}, keeps {limit:.2f}"
        elif self.want[i] <= float(np.fmax(self.inputs.request[i], cfg.min_cpu)) + 1e-9:
            text = f"{burst}: at its request, {limit:.2f} cores"
        else:
            text = f"{burst}: kept at {limit:.2f} cores, within the hysteresis of its want {self.want[i]:.2f}"
        return text[:256]


class MarketPlanner:
    """The stateful market planner of one node (see module docs). Not thread-safe.

    ``config`` may be replaced between ticks (live configuration); a new window takes effect for
    samples from then on.
    """

    def __init__(self, config: MarketConfig | None = None) -> None:
        self.config = config or MarketConfig()
        self._envelope = Envelope(self.config.window_s, self.config.window_buckets)
        self._uids: tuple[str, ...] = ()
        # Per pod, aligned to _uids: last decision (mcpu, -1 none), when it changed, the limit in
        # force last seen (mcpu) and when that last changed (a resize landed).
        self._state = np.zeros((0, 5))

    def _recall(self, uids: tuple[str, ...], now: float) -> npt.NDArray[np.float64]:
        """The state rows for ``uids``; new pods: no decision, changed and resized ``now``."""
        if uids == self._uids:
            return self._state.copy()
        index = {u: i for i, u in enumerate(self._uids)}
        idx = np.fromiter((index.get(u, -1) for u in uids), dtype=np.intp, count=len(uids))
        out = np.tile(np.array([_NONE, now, _NONE, now, np.nan], dtype=np.float64), (len(uids), 1))
        known = idx >= 0
        out[known] = self._state[idx[known]]
        return out

    def plan(self, now: float, allocatable: float, reserve: float, inputs: NodeInputs) -> MarketPlan:
        """Run one tick at ``now`` (seconds on a monotonic clock the caller keeps using)."""
        cfg = self.config
        if (cfg.window_s, cfg.window_buckets) != (self._envelope.window_s, self._envelope.buckets):
            self._envelope = Envelope(cfg.window_s, cfg.window_buckets)
        n = len(inputs)
        qos = inputs.qos
        managed = inputs.eligible & (qos == QOS_BURSTABLE)
        cause = np.select(
            [qos == QOS_GUARANTEED, qos == QOS_BESTEFFORT, ~managed],
            [Cause.UNMANAGED_GUARANTEED, Cause.UNMANAGED_BESTEFFORT, Cause.UNMANAGED_EXCLUDED],
            default=Cause.KEEP,
        ).astype(np.int8)

        # 1. estimate
        est = demand_bounds(
            inputs.usage,
            inputs.throttled_ratio,
            inputs.throttled_cores,
            inputs.psi_full,
            pressure_ratio=cfg.pressure_ratio,
        )
        envelope = self._envelope.update(inputs.uids, inputs.usage, now)
        shareable = node_capacity(
            allocatable,
            reserve,
            unmanaged=~managed,
            qos=qos,
            request=inputs.request,
            limit=inputs.limit,
            usage=inputs.usage,
        )
        budget = cfg.limit_overcommit * shareable

        # Where each managed pod stands: its last decision, else its limit, else the node.
        state = self._recall(inputs.uids, now)
        prev_mcpu, changed_at = state[:, 0].astype(np.int64), state[:, 1]
        limit_mcpu = np.where(
            np.isfinite(inputs.limit), np.round(np.nan_to_num(inputs.limit) * 1000.0), allocatable * 1000.0
        ).astype(np.int64)
        resized_at = np.where(limit_mcpu != state[:, 2], now, state[:, 3])
        pressed_at = np.where(est.pressured, np.fmin(state[:, 4], now), np.nan)
        pressed_for = now - np.nan_to_num(pressed_at, nan=now)
        cur_mcpu = np.where(prev_mcpu > 0, prev_mcpu, limit_mcpu)
        request = np.nan_to_num(inputs.request, nan=0.0)
        floor = np.maximum(request, cfg.min_cpu)
        weight = np.where(request > 0, request, cfg.min_cpu)
        ceiling = np.full(n, allocatable if cfg.max_cpu is None else min(cfg.max_cpu, allocatable))

        active = managed & np.isfinite(inputs.usage)
        held = managed & ~active
        cause[held] = Cause.NO_SIGNAL
        idx = np.flatnonzero(active)
        active_budget = budget - float(cur_mcpu[held].sum()) / 1000.0

        # 2. want, 3. bound, 4. gate
        want = np.full(n, np.nan)
        target = np.full(n, np.nan)
        trimmed = np.zeros(n, dtype=np.bool_)
        new_mcpu = np.where(managed, cur_mcpu, _NONE)
        feasible = True
        if idx.size:
            sub = DemandBounds(est.lower[idx], est.upper[idx], est.pressured[idx])
            w = wants(
                envelope[idx], sub, limit_mcpu[idx] / 1000.0, floor=floor[idx], ceiling=ceiling[idx], cfg=cfg
            )
            budget_now = max(active_budget, 0.0)
            bounded = bound(
                w.want, w.need, weight[idx], floor[idx], budget_now, protected_share=cfg.protected_share
            )
            feasible = bounded.feasible
            pods = PodState(
                current=cur_mcpu[idx] / 1000.0,
                in_force=limit_mcpu[idx] / 1000.0,
                pressured=sub.pressured,
                pressed_for_s=pressed_for[idx],
                since_change_s=now - changed_at[idx],
                since_resize_s=now - resized_at[idx],
            )
            gated = gate(pods, bounded.limits, w.want, bounded.needs, budget=budget_now, cfg=cfg)
            want[idx], target[idx], trimmed[idx] = w.want, bounded.limits, bounded.trimmed
            new_mcpu[idx] = np.maximum(np.floor(gated.limits * 1000.0 + 1e-6), 1).astype(np.int64)
            cause[idx] = _MOVE_CAUSE[gated.move]
        changed = managed & (new_mcpu != cur_mcpu) & active
        cause = np.where(managed & active & ~changed & (cause != Cause.NO_SIGNAL), Cause.KEEP, cause)
        cause = cause.astype(np.int8)

        alloc_mcpu = np.where(managed, new_mcpu, _NONE).astype(np.int64)
        self._uids = inputs.uids
        self._state = np.column_stack(
            (alloc_mcpu, np.where(changed, now, changed_at), limit_mcpu, resized_at, pressed_at)
        )
        has = managed & (new_mcpu > 0)
        objective = nsw_objective(new_mcpu[has] / 1000.0, weight[has]) if has.any() else 0.0
        return MarketPlan(
            now=now,
            inputs=inputs,
            config=cfg,
            managed=managed,
            bounds=est,
            envelope=envelope,
            want=want,
            target=target,
            trimmed=trimmed,
            allocation_mcpu=alloc_mcpu,
            changed=changed,
            cause=cause,
            shareable=shareable,
            budget=budget,
            feasible=feasible,
            objective=objective,
        )
