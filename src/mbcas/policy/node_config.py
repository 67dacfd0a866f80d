"""The tunables of the node planner, as one frozen, validated value.

:class:`NodePolicy` holds every number the pure node plan depends on: the global floor and ceiling
of a pod's CPU, the headroom put on top of measured demand, whether spare capacity is handed out,
the deadbands, the per-pod decision intervals and the step by which an allocation may shrink. It is
plain data (no I/O, no clock) so the agent, ``mbcas plan`` and the simulator build the same planner
from it. CPU values are stored in cores (a setting accepts a number of cores, ``0.25``, or a
Kubernetes quantity, ``"250m"``); times are in seconds.

It is the ``planner:`` section of the agent's live configuration
(:class:`mbcas.api.live.LiveConfig`): the agent swaps it on the planner when the ConfigMap
changes. The field descriptions are the documentation (``docs/agent.md`` is checked against them).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from mbcas.core.units import QuantityError, cores_to_mcpu, format_cpu, parse_cpu_cores

__all__ = ["Cores", "NodePolicy", "cpu_cores"]


def cpu_cores(value: Any) -> Any:
    """A CPU setting in cores: a number counts as cores (``3``, ``0.5``, as YAML gives them), a
    string as a Kubernetes quantity (``"250m"``); both are rounded up to whole millicores, as the
    apiserver does. None stays None; other types are passed on for pydantic to reject.

    Raises ``ValueError`` for booleans and for negative, infinite or malformed values.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"a CPU quantity must be a number of cores or a string like '250m', got {value!r}")
    if isinstance(value, int | float | str):
        try:
            return parse_cpu_cores(value)
        except QuantityError as exc:
            raise ValueError(str(exc)) from None
    return value


Cores = Annotated[
    float,
    BeforeValidator(cpu_cores),
    PlainSerializer(lambda cores: format_cpu(cores_to_mcpu(cores)), return_type=str, when_used="json"),
]
"""A CPU quantity in cores that also accepts ``"250m"``-style strings (and is written as one in
JSON and YAML: ``0.05`` -> ``"50m"``)."""


class NodePolicy(BaseModel):
    """Numbers that shape the node plan (cores and seconds).

    Raises:
        pydantic.ValidationError: on construction, naming the field, when a value is out of range.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)

    min_cpu: Cores = Field(0.05, ge=0.001)
    """Global floor of a managed pod's allocation; the floor is max(request, min_cpu)."""
    max_cpu: Cores | None = Field(None)
    """Global hard maximum per pod; null = the node's capacity for managed pods."""
    headroom_ratio: float = Field(0.25, ge=0)
    """Cap on a pod's demand-driven share: demand * (1 + headroom_ratio) + headroom_min."""
    headroom_min: Cores = Field(0.05, ge=0)
    """Absolute headroom added to every demand cap."""
    share_spare: bool = Field(True)
    """Hand capacity left after every demand cap is met out by weight, up to the hard maximum."""
    deadband_ratio: float = Field(0.10, ge=0, lt=1)
    """A new target within max(deadband_min, deadband_ratio * current) of the current allocation is not a
    change. Must be at least the contract's deadband_ratio (the controller's)."""
    deadband_min: Cores = Field(0.025, ge=0)
    """Absolute part of the deadband. Must be at least the contract's deadband_mcpu."""
    pressure_deadband_ratio: float = Field(0.06, ge=0)
    """Relative deadband for a pod under pressure: its share of the node this much (at least deadband_min)
    above its allocation raises it at once, taken back from pods above their targets. The smaller of
    this and deadband_ratio applies (such a pod is losing work now)."""
    pressure_threshold: float = Field(0.05, ge=0, le=1)
    """A pod counts as under pressure when its throttled-period ratio or PSI full share of the last
    interval reaches this; only a pod under pressure (or far below its need) is raised at once."""
    min_interval_s: float = Field(10.0, ge=0)
    """Least time between two decisions for one pod, unless the pod is short of CPU."""
    down_interval_s: float = Field(30.0, ge=0)
    """Least time after a pod's last decision before its allocation is lowered for its own sake."""
    down_step_ratio: float = Field(0.25, ge=0, le=1)
    """A voluntary decrease takes at most this fraction of the current allocation per decision."""

    @model_validator(mode="after")
    def _ceiling_above_floor(self) -> NodePolicy:
        if self.max_cpu is not None and self.max_cpu < self.min_cpu:
            raise ValueError(f"max_cpu = {self.max_cpu:g} must be >= min_cpu = {self.min_cpu:g}")
        return self
