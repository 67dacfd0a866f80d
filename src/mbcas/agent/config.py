"""The agent's one typed configuration: defaults, ``MBCAS_AGENT_*`` env, flags, and the live ConfigMap.

:class:`AgentConfig` (pydantic-settings, env prefix ``MBCAS_AGENT_``, nested with ``__``; the node
also comes from ``NODE_NAME``, set by the downward API) holds what needs a restart to change: the
node, the API connection, the tick, the cgroup root and prefix, the endpoints, the ConfigMap's
name and poll period. Its ``live`` part, :class:`LiveConfig`, holds everything else; the agent
re-reads it from the shared ConfigMap (``mbcas-system/mbcas-config``, key ``config.yaml``, see
:mod:`mbcas.api.settings`) every ``config_poll_s`` and applies it at the next tick without
restarting anything. Its shape::

    mode: enforce                 # rollout keys (below)
    namespace_modes: {batch: observe}
    exclude_pod_selector: mbcas.io/opt-out=true
    planner:  {min_cpu: 50m, deadband_ratio: 0.1, ...}   # mbcas.policy.node_config.NodePolicy
    demand:   {tau_down_s: 20, ...}                      # mbcas.demand.DemandConfig
    contract: {deadband_ratio: 0.05, refresh_s: 60, ...} # mbcas.api.contract.ContractSettings

The controller reads the same ``contract:`` section, so the two agree on when a decision is
applied. A ConfigMap whose values do not validate is logged and ignored (the last good one stays),
so a typo in a value never stops the agent; an unknown key is a warning naming it (and a metric)
and the rest applies. Keys missing from the ConfigMap keep the values given by flags and env.

Rollout modes: ``observe`` senses and exports metrics only; ``recommend`` writes PodAllocations
with ``mode: recommend`` (the controller never applies them); ``enforce`` writes decisions the
controller applies. The mode is global with per-namespace overrides (``namespace_modes``).
Which pods are managed at all: Burstable pods in namespaces not excluded (system namespaces by
default), in ``include_namespaces`` when that list is non-empty, matching ``pod_selector`` and
not matching ``exclude_pod_selector``. No annotation is ever required.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mbcas.agent.selectors import LabelSelector
from mbcas.api.contract import ContractSettings, check_planner_bands
from mbcas.api.settings import ProcessSettings, deep_merge, describe_error, parse_config_yaml, validate_known
from mbcas.core.units import format_cpu, parse_cpu, parse_cpu_cores
from mbcas.demand import DemandConfig
from mbcas.policy.node_config import NodePolicy

__all__ = [
    "SYSTEM_NAMESPACES",
    "AgentConfig",
    "LiveConfig",
    "LoadedConfig",
    "RolloutMode",
    "cpu_quantity",
    "describe_error",
    "load_live_yaml",
    "read_live_yaml",
]

SYSTEM_NAMESPACES: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease", "mbcas-system")
ENV_PREFIX = "MBCAS_AGENT_"
_MOVED = {
    "refresh_s": "it is part of the contract with the controller: set contract.refresh_s in the ConfigMap"
}


def cpu_quantity(value: object) -> object:
    """A CPU setting as a canonical quantity string: a number counts as cores (``3``, ``0.5``, as
    YAML gives them), a string as a Kubernetes quantity (``"250m"``); None stays None.

    Raises ``ValueError`` for anything else (booleans, negative or malformed values); other types
    are passed on for pydantic to reject.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"a CPU quantity must be a number of cores or a string like '250m', got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a CPU quantity must be a finite number of cores >= 0, got {value!r}")
        return format_cpu(parse_cpu(value))
    if isinstance(value, str):
        parse_cpu(value)
    return value


class RolloutMode(StrEnum):
    OBSERVE = "observe"
    RECOMMEND = "recommend"
    ENFORCE = "enforce"


class LiveConfig(BaseModel):
    """Settings reloaded live from the ConfigMap (see module docs). Every field is live: a change
    takes effect at the agent's next tick."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: RolloutMode = Field(
        RolloutMode.ENFORCE,
        description="observe: metrics only; recommend: write decisions never applied; enforce: applied.",
    )
    namespace_modes: dict[str, RolloutMode] = Field(
        default_factory=dict, description="Per-namespace overrides of mode."
    )
    include_namespaces: tuple[str, ...] = Field(
        (), description="Manage only these namespaces (empty: all but the excluded ones)."
    )
    exclude_namespaces: tuple[str, ...] = Field(
        SYSTEM_NAMESPACES, description="Never manage these namespaces."
    )
    pod_selector: str = Field("", description="Label selector (kubectl syntax) of the pods to manage.")
    exclude_pod_selector: str = Field(
        "mbcas.io/opt-out=true", description="Label selector of the pods to leave alone."
    )
    planner: NodePolicy = Field(default_factory=NodePolicy, description="The node planner's tunables.")
    demand: DemandConfig = Field(default_factory=DemandConfig, description="Demand estimation and smoothing.")
    contract: ContractSettings = Field(
        default_factory=ContractSettings,
        description="What the agent and the controller agree on (the controller reads this section too).",
    )

    @field_validator("pod_selector", "exclude_pod_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        LabelSelector.parse(value)
        return value

    @model_validator(mode="after")
    def _planner_wider_than_the_contract(self) -> LiveConfig:
        check_planner_bands(
            self.contract,
            planner_deadband_ratio=self.planner.deadband_ratio,
            planner_deadband_min_cores=self.planner.deadband_min,
        )
        return self

    def mode_for(self, namespace: str) -> RolloutMode:
        return self.namespace_modes.get(namespace, self.mode)

    def merged(self, overrides: dict[str, Any]) -> LiveConfig:
        """This config with ``overrides`` (e.g. a ConfigMap's keys, section by section) validated on
        top. Raises ``ValueError`` naming each bad field, unknown keys included."""
        return LoadedConfig.of(self, overrides, strict=True).config


class LoadedConfig(NamedTuple):
    """A live configuration and the unknown keys dropped from the document it came from."""

    config: LiveConfig
    unknown: tuple[str, ...]

    @classmethod
    def of(cls, base: LiveConfig, overrides: dict[str, Any], *, strict: bool = False) -> LoadedConfig:
        data = deep_merge(base.model_dump(), overrides)
        if strict:
            return cls(LiveConfig.model_validate(data), ())
        config, unknown = validate_known(LiveConfig, data)
        return cls(config, unknown)


def read_live_yaml(text: str, base: LiveConfig) -> LoadedConfig:
    """The live config of a ConfigMap's ``config.yaml``, its keys validated on top of ``base``, and
    the unknown keys it dropped (``("planner.max_cpus",)``).

    An empty document gives ``base``. Raises ``ValueError`` with a message naming each bad field
    (``planner.max_cpu: malformed CPU quantity 'lots' ...``).
    """
    overrides = parse_config_yaml(text)
    if not overrides:
        return LoadedConfig(base, ())
    return LoadedConfig.of(base, overrides)


def load_live_yaml(text: str, base: LiveConfig) -> LiveConfig:
    """:func:`read_live_yaml` without the list of unknown keys (they are dropped)."""
    return read_live_yaml(text, base).config


class AgentConfig(ProcessSettings):
    """Settings of ``mbcas agent`` (env prefix ``MBCAS_AGENT_``; ``NODE_NAME`` for the node).

    Every field needs a restart to change except ``live`` (re-read from the ConfigMap)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )
    moved: ClassVar[Mapping[str, str]] = {
        "refresh_s": "it is part of the contract with the controller: set contract.refresh_s in the ConfigMap"
    }

    node: str | None = Field(
        default=None,
        validation_alias=AliasChoices("node", "MBCAS_AGENT_NODE", "NODE_NAME"),
        description="The node this agent runs on (also NODE_NAME, from the downward API).",
    )
    kubeconfig: str | None = Field(default=None, description="Kubeconfig file (none: in-cluster).")
    context: str | None = Field(default=None, description="Kubeconfig context.")

    tick_s: float = Field(default=1.0, gt=0, le=60, description="Seconds between two ticks.")
    reserve_cpu: str = Field(
        default="200m", description="CPU kept back on the node, on top of what allocatable excludes."
    )
    allocatable_cpu: str | None = Field(
        default=None, description="Override the Node's status.allocatable.cpu (tests, odd nodes)."
    )

    cgroup_root: str = Field(default="/sys/fs/cgroup", description="Where the host's cgroup tree is.")
    cgroup_prefix: str = Field(default="", description="Path under the root that holds kubepods.")

    metrics_port: int = Field(
        default=9100, ge=0, le=65535, description="/metrics, /healthz and /readyz port (0: off)."
    )
    bind_address: str = Field(default="0.0.0.0", description="Address of that port.")

    api_backoff_max_s: float = Field(
        default=30.0, gt=0, description="Longest pause of writes after API errors."
    )
    node_refresh_s: float = Field(
        default=30.0, gt=0, description="Re-read the Node's allocatable this often."
    )

    live: LiveConfig = Field(
        default_factory=LiveConfig,
        description="The live settings' values before (and without) the ConfigMap: MBCAS_AGENT_LIVE__<KEY>.",
    )

    @field_validator("reserve_cpu", "allocatable_cpu", mode="before")
    @classmethod
    def _quantity(cls, value: object) -> object:
        return cpu_quantity(value)

    @property
    def reserve_cores(self) -> float:
        return parse_cpu_cores(self.reserve_cpu)

    @property
    def allocatable_cores(self) -> float | None:
        return None if self.allocatable_cpu is None else parse_cpu_cores(self.allocatable_cpu)
