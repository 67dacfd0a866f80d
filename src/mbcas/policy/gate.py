"""Step 4 of the plan: the hysteresis gate between the bounded wants and the limits pods carry.

Every change costs a PodAllocation write and a resize, so a limit moves only when it matters:

* **up at once under pressure**, to what the pod needs now (its probe, see
  :mod:`mbcas.policy.want`), as far as the budget nobody holds allows; other pods are cut for it
  only once the pressure has lasted ``reclaim_after_s`` (a short burst is over before the CPU
  would arrive, and every pod cut is another write);
* **up later** when the full want (including the burst memory) has outgrown the limit by more
  than ``raise_band`` and the last change is at least ``raise_after_s`` old, unless the bound
  trims the pod (the bound easing alone is not worth a resize: it would be undone at the next
  probe elsewhere);
* **down slowly**: when the limit exceeds the target by more than ``lower_band`` and the last
  change is at least ``lower_after_s`` old; a pod the bound trims comes down to what it needs
  now (at least its protected share), not to a target the next probe would cut again;
* **down at once** when a probe needs the CPU: the pods with the most room above what they need
  now are cut first (each at least to its target), as few as possible;
* **the bound holds for what is in force**: a cut takes effect only once the controller resizes
  the pod, which it does at most once per ``resize_interval_s`` (counted from the last change
  of the limit in force), never within its deadband and at most one step at a time. Until then
  the pod holds its old limit, so raises get only the room that is really free (shared in
  proportion when it is short; the rest follows once the cuts are in force). Σ decisions never
  exceed the budget either.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mbcas.core.arrays import first_of
from mbcas.policy.node_config import NodePolicy
from mbcas.policy.resize import Deadband, ResizeRules, step_limit

__all__ = ["Gated", "Move", "PodState", "gate"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_RULES = ResizeRules()  # the controller's default step caps (a cut lands one step at a time)
_STEP_DOWN = step_limit(1_000_000, _RULES) / 1000.0
_RATIO_DOWN = _RULES.max_step_ratio
_MIN_STEP = _RULES.min_step_mcpu / 1000.0


class Move(IntEnum):
    """How the gate moved a pod's limit."""

    KEEP = 0
    PROBE = 1
    """Raised at once under pressure, to what it needs now."""
    RAISE = 2
    """Raised because its want outgrew the limit."""
    LOWER = 3
    """Lowered after the limit had stayed well above its target for long enough."""
    RECLAIM = 4
    """Lowered at once because another pod's probe needed the CPU."""


class PodState(NamedTuple):
    """Per pod, what the gate needs besides the targets (cores, seconds)."""

    current: FloatArray
    """The last decision (else the limit in force)."""
    in_force: FloatArray
    """The limit the pod has now."""
    pressured: BoolArray
    pressed_for_s: FloatArray
    """How long the pressure has lasted (0 when not under pressure)."""
    since_change_s: FloatArray
    """Time since the last decision changed."""
    since_resize_s: FloatArray
    """Time since the limit in force last changed."""


class Gated(NamedTuple):
    """The new limits (cores) and how each moved."""

    limits: FloatArray
    move: npt.NDArray[np.int8]


def _mcpu(x: FloatArray) -> npt.NDArray[np.int64]:
    return np.rint(x * 1000.0).astype(np.int64)  # np.round's ufunc, half to even as it is


def gate(
    pods: PodState,
    target: FloatArray,
    want: FloatArray,
    need: FloatArray,
    *,
    budget: float,
    cfg: NodePolicy,
    deadband: Deadband,
) -> Gated:
    """Move each pod's limit towards ``target`` under the rules of the module docs (cores).

    ``want`` is what the pod wants, ``target`` that after the bound, ``need`` what it needs now
    after the bound (``need <= target <= want``); ``deadband`` is the controller's (the contract's).
    """
    cur, in_force = pods.current, pods.in_force

    def within(a: FloatArray, b: FloatArray) -> BoolArray:
        return deadband.within(_mcpu(a), _mcpu(b))

    applied = within(in_force, cur)
    trimmed = target < want - 1e-9

    # Up at once under pressure, to what it needs now, if it is worth a resize.
    now = np.minimum(target, np.maximum(need, cur))
    urgent = pods.pressured & applied & (now > cur) & ~within(cur, now)
    lasting = urgent & (pods.pressed_for_s >= cfg.reclaim_after_s)
    soft = ~pods.pressured & ~trimmed & (target > cur * (1.0 + cfg.raise_band))
    soft &= pods.since_change_s >= cfg.raise_after_s
    down = ~urgent & ~soft & (target * (1.0 + cfg.lower_band) < cur)
    down &= pods.since_change_s >= cfg.lower_after_s
    rest = np.where(trimmed, np.minimum(need, target), target)
    # A change within the controller's deadband would be written and never applied.
    soft &= ~within(cur, target)
    down &= ~within(cur, rest)
    new = first_of([urgent, soft, down], [now, target, rest], default=cur)
    move = first_of([urgent, soft, down], [Move.PROBE, Move.RAISE, Move.LOWER], default=Move.KEEP)

    # What each pod will hold once this tick's resizes land (see module docs).
    lands = applied & (pods.since_resize_s >= cfg.resize_interval_s)

    def holding(x: FloatArray) -> FloatArray:
        step = np.maximum(_MIN_STEP, np.minimum(_RATIO_DOWN * in_force, _STEP_DOWN))
        landed = np.maximum(x, in_force - step)
        felt = lands & (x < cur) & ~within(in_force, x)
        out: FloatArray = np.where(felt, landed, np.maximum(x, in_force))
        return out

    def cut(x: FloatArray, excess: float, among: BoolArray, *, worth_only: bool = True) -> BoolArray:
        """Take ``excess`` from the pods ``among`` held above their targets: the most room above
        ``need`` first, each down to its target at least, further towards ``need`` if that is
        not enough. Returns who was cut (``x`` is changed in place)."""
        who = np.zeros(x.size, dtype=np.bool_)
        room = np.where(among & (x > target + 1e-9), np.maximum(x - need, 0.0), 0.0)
        # A cut within the controller's deadband would be a write and no resize: not worth it
        # to pay for a raise (the bound itself is kept whatever it takes).
        band = deadband.band_mcpu(_mcpu(x)) / 1000.0
        band = band if worth_only else np.zeros_like(x)
        room = np.where(room > band, room, 0.0)
        for i in np.argsort(-room, kind="stable"):
            if excess <= 1e-9 or room[i] <= 0.0:
                break
            take = min(float(room[i]), max(excess, float(x[i] - target[i]), float(band[i])))
            x[i] -= take
            excess -= take
            who[i] = True
        return who

    # Cuts that land now pay for the lasting raises; all raises then share the room that is
    # really free (a fresh one gets only what nobody holds).
    held = np.maximum(cur, in_force)
    cuts = cut(new, float(holding(np.where(urgent & ~lasting, held, new)).sum()) - budget, lands)
    raised = new > held + 1e-9
    if raised.any():
        room = budget - float(np.where(raised, held, holding(new)).sum())
        extra = np.where(raised, new - held, 0.0)
        total = float(extra.sum())
        if total > room + 1e-9:
            share = extra * (max(room, 0.0) / total)
            # A raise smaller than the least probe step waits for the room (monotone in demand: a
            # larger want never gets a smaller share).
            worth = share >= max(cfg.raise_band, cfg.probe_min_ratio - 1.0) * held
            new = np.where(raised, np.where(worth, held + share, cur), new)
            move = np.where(raised & ~worth, Move.KEEP, move)
    # Σ decisions <= budget whatever it takes (needed only when the budget itself shrank).
    if float(new.sum()) > budget + 1e-9:
        cuts |= cut(new, float(new.sum()) - budget, np.ones(new.size, dtype=np.bool_), worth_only=False)
    move = np.where(cuts, Move.RECLAIM, move)
    return Gated(new, move.astype(np.int8))
