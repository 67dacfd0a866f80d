"""The tunables of the node planner, as one frozen, validated value.

:class:`NodePolicy` holds every number the pure node plan depends on: the global floor and ceiling
of a pod's CPU, the headroom put on top of measured demand, whether spare capacity is handed out,
the deadband, the per-pod decision intervals and the step by which an allocation may shrink. It is
plain data (no I/O, no clock) so the agent, ``mbcas plan`` and the simulator build the same planner
from it. CPU values are in cores, times in seconds.

The agent builds a :class:`NodePolicy` from its configuration (flags, environment, the live
ConfigMap) and swaps it on the planner when the ConfigMap changes; nothing else holds state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["NodePolicy"]


@dataclass(frozen=True, slots=True)
class NodePolicy:
    """Numbers that shape the node plan (cores and seconds).

    Raises:
        ValueError: on construction, naming the field, when a value is out of range.
    """

    min_cpu: float = 0.05
    """Global floor of a managed pod's allocation; the floor is ``max(request, min_cpu)``."""
    max_cpu: float | None = None
    """Global hard maximum per pod; ``None`` = the node's capacity for managed pods."""
    headroom_ratio: float = 0.25
    """Cap on a pod's demand-driven share: ``demand·(1 + headroom_ratio) + headroom_min``."""
    headroom_min: float = 0.05
    """Absolute headroom added to every demand cap (cores)."""
    share_spare: bool = True
    """Hand capacity left after every demand cap is met out by weight, up to the hard maximum."""
    deadband_ratio: float = 0.10
    """A new target within ``max(deadband_min, deadband_ratio·current)`` of the current allocation
    is not a change."""
    deadband_min: float = 0.025
    """Absolute part of the deadband (cores)."""
    pressure_deadband_ratio: float = 0.06
    """Relative deadband for a pod under pressure: its share of the node this much (at least
    ``deadband_min``) above its allocation raises it at once, taken back from pods above their
    targets. Meant to be smaller than ``deadband_ratio`` because such a pod is losing work now (the
smaller of the two applies)."""
    pressure_threshold: float = 0.05
    """A pod counts as under pressure when its throttled-period ratio or PSI ``full`` share of the
    last interval reaches this; only a pod under pressure (or far below its need) is raised at once."""
    min_interval_s: float = 10.0
    """Least time between two decisions for one pod, unless the pod is short of CPU (then at once)."""
    down_interval_s: float = 30.0
    """Least time after a pod's last decision before its allocation is lowered for its own sake."""
    down_step_ratio: float = 0.25
    """A voluntary decrease takes at most this fraction of the current allocation per decision."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or value is None:
                continue
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} = {value!r} must be a finite number >= 0")
        if self.min_cpu < 0.001:
            raise ValueError(f"min_cpu = {self.min_cpu!r} must be >= 0.001 (one millicore)")
        if self.max_cpu is not None and self.max_cpu < self.min_cpu:
            raise ValueError(f"max_cpu = {self.max_cpu!r} must be >= min_cpu = {self.min_cpu!r}")
        if self.down_step_ratio > 1:
            raise ValueError(f"down_step_ratio = {self.down_step_ratio!r} must be <= 1")
        if self.pressure_threshold > 1:
            raise ValueError(f"pressure_threshold = {self.pressure_threshold!r} must be <= 1")
        if self.deadband_ratio >= 1:
            raise ValueError(f"deadband_ratio = {self.deadband_ratio!r} must be < 1")
