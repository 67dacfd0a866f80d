"""The tunables of the node planner, as one frozen, validated value.

:class:`NodePolicy` holds every number the pure node plan (:mod:`mbcas.policy.node`) depends on:
the overcommit bound, a pod's floor and ceiling, the burst window and headroom, when a pod is
under pressure and how far it is probed, the share a pod keeps when the bound binds, and the
hysteresis that keeps limits from moving for small reasons. It is plain data (no I/O, no clock) so
the agent, ``mbcas plan`` and the simulator build the same planner from it. CPU values are stored
in cores (a setting accepts a number of cores, ``0.25``, or a Kubernetes quantity, ``"250m"``);
times are in seconds.

It is the ``planner:`` section of the agent's live configuration
(:class:`mbcas.api.live.LiveConfig`): the agent swaps it on the planner when the ConfigMap
changes. The field descriptions are the documentation (``docs/configuration.md`` is generated
from them); ``docs/market.md`` explains the design they tune.
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

    limit_overcommit: float = Field(2.0, ge=1.0)
    """Bound on the managed pods' limits: their sum stays within limit_overcommit x the shareable CPU
    (allocatable - reserve - pods not managed). Requests keep every pod's share under contention, so
    limits may add up to more than the node; 1.0 is the strict rule (never more than the node)."""
    min_cpu: Cores = Field(0.01, ge=0.001)
    """Least limit of a managed pod; its floor is max(request, min_cpu)."""
    max_cpu: Cores | None = Field(None)
    """Largest limit of a managed pod; null = the node's allocatable CPU."""
    window_s: float = Field(1200.0, gt=0)
    """The burst envelope is a pod's largest usage over this many seconds: long enough that a pod
    bursting every few minutes keeps a limit that covers its next burst."""
    window_buckets: int = Field(10, ge=1)
    """Slices of the window: the envelope forgets a peak to within window_s / window_buckets."""
    headroom_ratio: float = Field(0.10, ge=0)
    """A pod wants its envelope x (1 + headroom_ratio); a probe is its throttled-time bound with the
    same headroom."""
    pressure_ratio: float = Field(0.5, gt=0, le=1)
    """A pod whose quota bound in at least this share of the CFS periods of a tick is under
    pressure: it is raised at once."""
    probe_min_ratio: float = Field(1.5, ge=1)
    """A pod under pressure is raised to the kernel's upper bound on its demand (usage + throttled
    time, plus headroom), but to at least this x its limit ..."""
    probe_max_ratio: float = Field(4.0, ge=1)
    """... and to at most this x its limit in one step (a pod with many threads reads a huge bound)."""
    protected_share: float = Field(0.95, ge=0, le=1)
    """When the bound binds, every pod keeps at least this share of its request-weighted share of the
    budget (or its want, if smaller), whatever other pods' probes need."""
    reclaim_after_s: float = Field(3.0, ge=0)
    """A raise that must take CPU from other pods (the bound is reached) waits until the pod's
    pressure has lasted this long; a raise that fits under the bound happens at once."""
    raise_band: float = Field(0.25, ge=0)
    """Without pressure a limit goes up only when the want exceeds it by this fraction ..."""
    raise_after_s: float = Field(300.0, ge=0)
    """... and its last change is at least this old."""
    lower_band: float = Field(0.25, ge=0)
    """A limit comes down only when it is this fraction above its target ..."""
    lower_after_s: float = Field(1200.0, ge=0)
    """... and its last change is at least this old (unless the bound needs the CPU for a probe)."""
    resize_interval_s: float = Field(10.0, ge=0)
    """The controller's least time between two resizes of a pod (its rules.min_interval_s): a cut
    sooner than that after the pod's last resize does not free CPU for a raise yet."""

    @model_validator(mode="after")
    def _consistent(self) -> NodePolicy:
        if self.max_cpu is not None and self.max_cpu < self.min_cpu:
            raise ValueError(f"max_cpu = {self.max_cpu:g} must be >= min_cpu = {self.min_cpu:g}")
        if self.probe_max_ratio < self.probe_min_ratio:
            raise ValueError(
                f"probe_max_ratio = {self.probe_max_ratio:g} must be >= probe_min_ratio ="
                f" {self.probe_min_ratio:g}"
            )
        return self
