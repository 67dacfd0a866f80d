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

from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mbcas.agent.selectors import LabelSelector
from mbcas.api.quantity import parse_cpu
from mbcas.policy.node_config import NodePolicy

__all__ = ["SYSTEM_NAMESPACES", "AgentConfig", "LiveConfig", "RolloutMode"]

SYSTEM_NAMESPACES: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease", "mbcas-system")


class RolloutMode(StrEnum):
    OBSERVE = "observe"
    RECOMMEND = "recommend"
    ENFORCE = "enforce"


class LiveConfig(BaseModel):
    """Settings reloaded live from the ConfigMap. CPU quantities as Kubernetes strings."""

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

    @field_validator("min_cpu", "max_cpu", "headroom_min", "deadband_min")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cpu(value)
        return value

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
        default="mbcas-system/mbcas-agent", description="NAMESPACE/NAME of the live ConfigMap (None: off)"
    )
    config_poll_s: float = Field(default=10.0, gt=0)
    refresh_s: float = Field(
        default=60.0, gt=0, description="rewrite an unchanged decision this often so it never looks stale"
    )
    api_backoff_max_s: float = Field(default=30.0, gt=0)
    node_refresh_s: float = Field(default=30.0, gt=0, description="re-read the Node's allocatable this often")

    live: LiveConfig = Field(default_factory=LiveConfig)

    @field_validator("reserve_cpu", "allocatable_cpu")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cpu(value)
        return value

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
