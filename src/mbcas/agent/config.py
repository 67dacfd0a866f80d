"""The agent's one typed configuration: defaults, ``MBCAS_AGENT_*`` env, flags, and a live ConfigMap.

:class:`AgentConfig` (pydantic-settings, env prefix ``MBCAS_AGENT_``; the node also comes from
``NODE_NAME``, set by the downward API) holds what needs a restart to change: the node, the API
connection, the tick, the cgroup root and prefix, the endpoints. Its ``live`` part,
:class:`LiveConfig`, holds the rollout and market settings; the agent re-reads it from a ConfigMap
(key ``config.yaml``, the same field names) every ``config_poll_s`` and applies it at the next
tick without restarting anything. A ConfigMap that does not validate is logged and ignored (the
last good one stays), so a typo never stops the agent. Keys missing from the ConfigMap keep the
values given by flags and env.

Rollout modes: ``observe`` senses and exports metrics only; ``recommend`` writes PodAllocations
with ``mode: recommend`` (the controller never applies them); ``enforce`` writes decisions the
controller applies. The mode is global with per-namespace overrides (``namespace_modes``).
Which pods are managed at all: Burstable pods in namespaces not excluded (system namespaces by
default), in ``include_namespaces`` when that list is non-empty, matching ``pod_selector`` and
not matching ``exclude_pod_selector``. No annotation is ever required.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from mbcas.agent.selectors import LabelSelector
from mbcas.core.units import format_cpu, parse_cpu
from mbcas.policy.node_config import NodePolicy

__all__ = [
    "SYSTEM_NAMESPACES",
    "AgentConfig",
    "LiveConfig",
    "RolloutMode",
    "cpu_quantity",
    "describe_error",
    "load_live_yaml",
]

SYSTEM_NAMESPACES: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease", "mbcas-system")


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


def describe_error(exc: ValidationError) -> str:
    """One line per bad field of a pydantic error: ``max_cpu: malformed CPU quantity 'x' ...``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


class RolloutMode(StrEnum):
    OBSERVE = "observe"
    RECOMMEND = "recommend"
    ENFORCE = "enforce"


class LiveConfig(BaseModel):
    """Settings reloaded live from the ConfigMap. CPU quantities are stored as Kubernetes strings;
    numbers are accepted as cores (``max_cpu: 3``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: RolloutMode = RolloutMode.ENFORCE
    namespace_modes: dict[str, RolloutMode] = Field(default_factory=dict)
    include_namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES
    pod_selector: str = ""
    exclude_pod_selector: str = "mbcas.io/opt-out=true"
    min_cpu: str = "50m"
    max_cpu: str | None = None
    headroom_ratio: float = Field(0.25, ge=0)
    headroom_min: str = "50m"
    share_spare: bool = True
    deadband_ratio: float = Field(0.10, ge=0, lt=1)
    deadband_min: str = "25m"
    pressure_threshold: float = Field(0.05, ge=0, le=1)
    min_interval_s: float = Field(10.0, ge=0)
    down_interval_s: float = Field(30.0, ge=0)
    down_step_ratio: float = Field(0.25, ge=0, le=1)

    @field_validator("min_cpu", "max_cpu", "headroom_min", "deadband_min", mode="before")
    @classmethod
    def _quantity(cls, value: object) -> object:
        return cpu_quantity(value)

    @field_validator("pod_selector", "exclude_pod_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        LabelSelector.parse(value)
        return value

    @model_validator(mode="after")
    def _policy_ok(self) -> LiveConfig:
        self.policy()
        return self

    def policy(self) -> NodePolicy:
        """The planner's :class:`NodePolicy` (raises ``ValueError`` naming a bad field)."""
        return NodePolicy(
            min_cpu=parse_cpu(self.min_cpu) / 1000.0,
            max_cpu=None if self.max_cpu is None else parse_cpu(self.max_cpu) / 1000.0,
            headroom_ratio=self.headroom_ratio,
            headroom_min=parse_cpu(self.headroom_min) / 1000.0,
            share_spare=self.share_spare,
            deadband_ratio=self.deadband_ratio,
            deadband_min=parse_cpu(self.deadband_min) / 1000.0,
            pressure_threshold=self.pressure_threshold,
            min_interval_s=self.min_interval_s,
            down_interval_s=self.down_interval_s,
            down_step_ratio=self.down_step_ratio,
        )

    def mode_for(self, namespace: str) -> RolloutMode:
        return self.namespace_modes.get(namespace, self.mode)

    def merged(self, overrides: dict[str, Any]) -> LiveConfig:
        """This config with ``overrides`` (e.g. a ConfigMap's keys) validated on top."""
        return LiveConfig.model_validate({**self.model_dump(), **overrides})


def load_live_yaml(text: str, base: LiveConfig) -> LiveConfig:
    """The live config of a ConfigMap's ``config.yaml``: its keys validated on top of ``base``.

    An empty document gives ``base``. Raises ``ValueError`` with a message naming each bad field
    (``max_cpu: malformed CPU quantity 'lots' ...``, ``typo: Extra inputs are not permitted``).
    """
    try:
        overrides = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"config.yaml is not YAML: {exc}") from None
    if overrides is None:
        return base
    if not isinstance(overrides, dict):
        raise ValueError(f"config.yaml must be a mapping of settings, got {type(overrides).__name__}")
    try:
        return base.merged(overrides)
    except ValidationError as exc:
        raise ValueError(describe_error(exc)) from None


class AgentConfig(BaseSettings):
    """Settings of ``mbcas agent`` (env prefix ``MBCAS_AGENT_``; ``NODE_NAME`` for the node)."""

    model_config = SettingsConfigDict(
        env_prefix="MBCAS_AGENT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    node: str | None = Field(
        default=None, validation_alias=AliasChoices("node", "MBCAS_AGENT_NODE", "NODE_NAME")
    )
    kubeconfig: str | None = None
    context: str | None = None

    tick_s: float = Field(default=1.0, gt=0, le=60)
    reserve_cpu: str = "200m"
    allocatable_cpu: str | None = Field(
        default=None, description="override the Node's status.allocatable.cpu (tests, odd nodes)"
    )

    cgroup_root: str = "/sys/fs/cgroup"
    cgroup_prefix: str = ""

    metrics_port: int = Field(default=9100, ge=0, le=65535)
    bind_address: str = "0.0.0.0"

    config_map: str | None = Field(
        default="mbcas-system/mbcas-agent-config",
        description="NAMESPACE/NAME of the live ConfigMap (None: off)",
    )
    config_poll_s: float = Field(default=10.0, gt=0)
    refresh_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "rewrite an unchanged enforce decision the pod does not carry yet this often, so the"
            " controller never sees it stale (applied and recommend decisions are never rewritten)"
        ),
    )
    api_backoff_max_s: float = Field(default=30.0, gt=0)
    node_refresh_s: float = Field(default=30.0, gt=0, description="re-read the Node's allocatable this often")

    live: LiveConfig = Field(default_factory=LiveConfig)

    @field_validator("config_map")
    @classmethod
    def _namespaced_name(cls, value: str | None) -> str | None:
        if value:
            namespace, sep, name = value.partition("/")
            if not sep or not namespace or not name or "/" in name:
                raise ValueError(f"must be NAMESPACE/NAME, got {value!r}")
        return value

    @field_validator("reserve_cpu", "allocatable_cpu", mode="before")
    @classmethod
    def _quantity(cls, value: object) -> object:
        return cpu_quantity(value)

    @property
    def reserve_cores(self) -> float:
        return parse_cpu(self.reserve_cpu) / 1000.0

    def config_map_ref(self) -> tuple[str, str] | None:
        if not self.config_map:
            return None
        namespace, sep, name = self.config_map.partition("/")
        if not sep or not namespace or not name:
            raise ValueError(f"config_map {self.config_map!r} must be NAMESPACE/NAME")
        return namespace, name
