"""Step 4 of the plan: the hysteresis gate between the wanted limits and the ones pods carry.

Every change costs a PodAllocation write and a resize, so a limit moves only when it matters:

* **up at once** when the pod is under pressure and its probe is above its limit (it is losing
  work now); **up soon** when the want has outgrown the limit by more than ``raise_band`` and the
  last change is at least ``raise_after_s`` old (so a limit just cut for the bound is not raised
  back the next moment because the bound eased);
* **down slowly**: only when the limit exceeds the want by more than ``lower_band`` and its last
  change is at least ``lower_after_s`` old (a limit that stays up between bursts is the point);
* **down at once** when the overcommit bound needs the CPU: if the raises and the limits held
  above their targets add up to more than the budget, pods held above their targets are brought
  down to them, as few as possible: first those the controller can resize now, the furthest
  above first (the targets fit the budget, so this always ends);
* **the bound holds for what is in force**: a cut takes effect only once the pod is resized, and
  the controller resizes a pod at most once per ``resize_interval_s``; a pod cut sooner after its
  last resize (the last change of its limit in force) still holds its old limit meanwhile. Raises are granted only from the room left
  after what every pod will hold once this tick's resizes land; when that is short, each raise
  gets its share of the room (and the rest on later ticks, once the cuts are in force).
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mbcas.policy.market_config import MarketConfig
from mbcas.policy.resize import ResizeRules, within_deadband

__all__ = ["Move", "Gated", "gate"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_RULES = ResizeRules()


class Move(IntEnum):
    """How the gate moved a pod's limit."""

    KEEP = 0
    PROBE = 1
    """Raised at once under pressure, to the throttled-time upper bound of its demand."""
    RAISE = 2
    """Raised because its want outgrew the limit."""
    LOWER = 3
    """Lowered to its want after the limit had stayed well above it for long enough."""
    RECLAIM = 4
    """Lowered to its want at once because the overcommit bound needed the CPU."""


class Gated(NamedTuple):
    """The new limits (cores) and how each moved."""

    limits: FloatArray
    move: npt.NDArray[np.int8]


def gate(
    current: FloatArray,
    target: FloatArray,
    *,
    want: FloatArray,
    deep: FloatArray,
    in_force: FloatArray,
    probe: BoolArray,
    applied: BoolArray,
    since_change_s: FloatArray,
    since_resize_s: FloatArray,
    budget: float,
    cfg: MarketConfig,
) -> Gated:
    """Move ``current`` towards ``target`` under the rules of the module docs (cores)."""
    # A pod trimmed by the bound is raised back only under pressure: the bound easing alone is
    # not worth a resize (it would be undone at the next burst elsewhere).
    grown = (target >= want - 1e-9) & (target > current * (1.0 + cfg.raise_band))
    soft = grown & (since_change_s >= cfg.raise_after_s)
    up = soft | (probe & applied & (target > current + 1e-9))
    down = ~up & (want * (1.0 + cfg.lower_band) < current) & (since_change_s >= cfg.lower_after_s)
    new = np.where(up | down, target, current)
    move = np.where(up, np.where(probe, Move.PROBE, Move.RAISE), np.where(down, Move.LOWER, Move.KEEP))
    # What each pod will hold once this tick's resizes land: a cut lands with the raises only if
    # the controller may resize the pod now; until then the pod holds what is in force.
    lands = applied & (since_resize_s >= cfg.resize_interval_s)

    def holding(x: FloatArray) -> FloatArray:
        # A cut within the controller's deadband of the limit in force is never applied.
        felt = ~within_deadband(_RULES, np.round(in_force * 1000.0), np.round(x * 1000.0))
        out: FloatArray = np.where(lands & (x < current) & felt, x, np.maximum(x, in_force))
        return out

    def cut_down(x: FloatArray, excess: float, among: BoolArray) -> BoolArray:
        """Take ``excess`` from the pods ``among`` held above their targets, as few pods as
        possible: the most room above ``deep`` (what they need now) first, each down to its
        target at least and, if that is not enough, towards ``deep``. Returns who was cut."""
        cut = np.zeros(x.size, dtype=np.bool_)
        room = np.where(among & (x > target + 1e-9), np.maximum(x - deep, 0.0), 0.0)
        for i in np.argsort(-room, kind="stable"):
            if excess <= 1e-9 or room[i] <= 0.0:
                break
            take = min(float(room[i]), max(excess, float(x[i] - target[i])))
            x[i] -= take
            excess -= take
            cut[i] = True
        return cut

    # Cuts that land now pay for the raises; then Σ decisions <= budget, whatever it takes.
    cut = cut_down(new, float(holding(new).sum()) - budget, lands)
    if float(new.sum()) > budget + 1e-9:
        cut |= cut_down(new, float(new.sum()) - budget, ~lands)
    move = np.where(cut, Move.RECLAIM, move)
    # Raises share the room that is really free; the rest follows once the cuts are in force.
    held = np.maximum(current, in_force)
    raised = new > held + 1e-9
    if raised.any():
        room = budget - float(np.where(raised, held, holding(new)).sum())
        extra = np.where(raised, new - held, 0.0)
        total = float(extra.sum())
        if total > room + 1e-9:
            share = extra * (max(room, 0.0) / total)
            worth = share >= cfg.raise_band * held  # a raise too small to matter waits for room
            new = np.where(raised, np.where(worth, held + share, current), new)
            move = np.where(raised & ~worth, Move.KEEP, move)
    return Gated(new, move.astype(np.int8))
