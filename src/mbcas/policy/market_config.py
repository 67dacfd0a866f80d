"""The tunables of the work-conserving market planner, as one frozen, validated value.

CPU values are cores, times seconds. Every number has its reason next to it; ``docs/market.md``
explains the design they tune.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["MarketConfig"]


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """Numbers that shape the market plan (see module docs).

    Raises:
        ValueError: on construction, naming the field, when a value is out of range.
    """

    limit_overcommit: float = 2.0
    """Σ managed limits <= this × the node's shareable CPU (allocatable − reserve − unmanaged).
    1.0 is the strict rule (limits never add up to more than the node)."""
    min_cpu: float = 0.01
    """Least limit of a managed pod (cores); its floor is ``max(request, min_cpu)``."""
    max_cpu: float | None = None
    """Largest limit of a managed pod; ``None`` = the node's allocatable CPU."""
    window_s: float = 1200.0
    """The burst envelope is the pod's largest usage over this many seconds: long enough that a
    pod bursting every few minutes keeps a limit that covers its next burst."""
    window_buckets: int = 10
    """Slices of the window (the envelope forgets a peak to within ``window_s / window_buckets``)."""
    headroom_ratio: float = 0.10
    """A pod wants its envelope × (1 + headroom_ratio) + headroom_min; a probe is the upper bound
    with the same headroom (the bound is exact for a pod running one busy thread per core it
    wants, which would otherwise sit on its quota)."""
    headroom_min: float = 0.0
    """Absolute headroom (cores) on top of the envelope."""
    pressure_ratio: float = 0.5
    """A pod whose quota bound in at least this share of CFS periods is under pressure."""
    probe_min_ratio: float = 1.5
    """A pod under pressure is raised to the throttled-time upper bound of its demand, but to at
    least this × its limit (an upper bound just above the limit usually means more is coming) ..."""
    probe_max_ratio: float = 4.0
    """... and at most this × its limit in one step (a pod with many threads reads a huge bound)."""
    protected_share: float = 0.95
    """When the bound binds, a pod keeps at least this share of its request-weighted share of the
    budget (or its want, if smaller) whatever the others' probes need."""
    reclaim_after_s: float = 3.0
    """A raise that must take CPU from other pods waits until the pressure has lasted this long."""
    raise_band: float = 0.25
    """Without pressure, a limit goes up only when the want exceeds it by this fraction ..."""
    raise_after_s: float = 300.0
    """... and its last change is at least this old."""
    lower_band: float = 0.25
    """A limit comes down only when it exceeds the target by this fraction ..."""
    lower_after_s: float = 1200.0
    """... and its last change is at least this old (unless a probe needs the CPU)."""
    resize_interval_s: float = 10.0
    """The controller's least time between two resizes of a pod (its ``min_interval_s``): a cut
    decided sooner after the pod's last resize lands later, so it frees no room for raises yet."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{f.name} = {value!r} must be a finite number")
            if value < 0:
                raise ValueError(f"{f.name} = {value!r} must be >= 0")
        if self.limit_overcommit < 1.0:
            raise ValueError(f"limit_overcommit = {self.limit_overcommit!r} must be >= 1.0")
        if self.min_cpu < 0.001:
            raise ValueError(f"min_cpu = {self.min_cpu!r} must be >= 0.001 (one millicore)")
        if self.max_cpu is not None and self.max_cpu < self.min_cpu:
            raise ValueError(f"max_cpu = {self.max_cpu!r} must be >= min_cpu = {self.min_cpu!r}")
        if not self.window_s > 0 or self.window_buckets < 1:
            raise ValueError("window_s must be > 0 and window_buckets >= 1")
        if self.probe_max_ratio < max(self.probe_min_ratio, 1.0):
            raise ValueError("probe_max_ratio must be >= probe_min_ratio and >= 1")
        if self.protected_share > 1:
            raise ValueError(f"protected_share = {self.protected_share!r} must be <= 1")
        if not 0 < self.pressure_ratio <= 1:
            raise ValueError(f"pressure_ratio = {self.pressure_ratio!r} must be in (0, 1]")
