"""The live configuration: the shape of the one ConfigMap both the agent and the controller read.

``config.yaml`` of the shared ConfigMap (``mbcas-system/mbcas-config``, see
:mod:`mbcas.api.settings`) is a :class:`LiveConfig`::

    mode: enforce                 # rollout keys (below)
    namespace_modes: {batch: observe}
    exclude_pod_selector: mbcas.io/opt-out=true
    planner:  {limit_overcommit: 2.0, window_s: 1200, ...} # mbcas.policy.node_config.NodePolicy
    contract: {deadband_ratio: 0.05, refresh_s: 60, ...}   # mbcas.api.contract.ContractSettings

The agent applies all of it; the controller acts on its ``contract:`` section. Both validate the
whole document with :func:`read_live_yaml`, so they accept and refuse the same documents: a
document whose values do not validate (including the rule that the planner's hysteresis bands are
at least the contract's deadband) is refused as a whole and the last good one stays, while an unknown key is
only reported (and dropped), so a typo never stops every other change. Every field is live.

Rollout modes: ``observe`` senses and exports metrics only; ``recommend`` writes PodAllocations
with ``mode: recommend`` (the controller never applies them); ``enforce`` writes decisions the
controller applies. The mode is global with per-namespace overrides (``namespace_modes``).
Which pods are managed at all: Burstable pods in namespaces not excluded (system namespaces by
default; ``kube-system`` and the agent's own namespace always, whatever ``exclude_namespaces``
says), in ``include_namespaces`` when that list is non-empty, matching ``pod_selector`` and not
matching ``exclude_pod_selector``. No annotation is ever required.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mbcas.api.contract import ContractSettings, check_planner_bands
from mbcas.api.selectors import LabelSelector
from mbcas.api.settings import deep_merge, parse_config_yaml, validate_known
from mbcas.policy.node_config import NodePolicy

__all__ = [
    "ALWAYS_EXCLUDED",
    "SYSTEM_NAMESPACES",
    "LiveConfig",
    "LoadedConfig",
    "RolloutMode",
    "load_live_yaml",
    "read_live_yaml",
]

SYSTEM_NAMESPACES: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease", "mbcas-system")
ALWAYS_EXCLUDED: tuple[str, ...] = ("kube-system",)
"""Never managed, whatever ``exclude_namespaces`` says (the agent adds its own namespace)."""


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
            self.contract, raise_band=self.planner.raise_band, lower_band=self.planner.lower_band
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
