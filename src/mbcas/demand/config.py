"""The typed configuration of demand estimation and smoothing.

One :class:`DemandConfig` holds every tunable of :mod:`mbcas.demand`, with the defaults and their
reasons in the field descriptions (rendered in ``docs/sensing.md``). It is frozen and rejects
unknown fields, so a typo in a config file is an error rather than a silently ignored setting.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DemandConfig"]


class DemandConfig(BaseModel):
    """Parameters of the demand estimator and of its fast-up, slow-down smoothing."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    max_stall: float = Field(0.95, gt=0.0, lt=1.0)
    """Largest PSI full fraction believed when scaling usage by 1/(1 - full): bounds the PSI estimate at
    usage/(1 - max_stall) (20x at 0.95), because a pod stalled 100 % of the time tells nothing about how
    much it would use."""
    some_weight: float = Field(1.0, ge=0.0)
    """Cores added per unit of (PSI some - PSI full): time in which one task of the pod waited while
    another ran. 1.0 is the lower bound (at least one more task wanted a CPU)."""
    psi_noise_floor: float = Field(0.01, ge=0.0, lt=1.0)
    """PSI fractions below this are treated as 0 (scheduler noise on an idle pod)."""
    throttle_ratio_boost: float = Field(0.5, ge=0.0)
    """Fallback only, when throttled time is unknown but the throttled-period ratio r is: demand = usage +
    throttle_ratio_boost * r * limit."""
    tau_up_s: float = Field(0.5, ge=0.0)
    """Smoothing time constant when demand rises (s): fast, a spike is served next tick."""
    tau_down_s: float = Field(20.0, ge=0.0)
    """Smoothing time constant when demand falls (s): slow, so a pod between bursts keeps its CPU for a
    while and limits do not flap."""
    warmup_samples: int = Field(3, ge=1)
    """Finite demand samples a pod needs before it is 'warm' (decisions may use it)."""
