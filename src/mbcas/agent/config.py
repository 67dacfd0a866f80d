"""The agent's one typed configuration: defaults, ``MBCAS_AGENT_*`` env, flags, and the live ConfigMap.

:class:`AgentConfig` (a :class:`~mbcas.api.settings.ProcessSettings`: env prefix ``MBCAS_AGENT_``,
nested with ``__``; the node also comes from ``NODE_NAME``, set by the downward API) holds what
needs a restart to change: the node, the API connection, the tick, the cgroup root and prefix, the
endpoints, the ConfigMap's name and poll period. Its ``live`` part,
:class:`~mbcas.api.live.LiveConfig`, holds everything else: the agent re-reads it from the shared
ConfigMap every ``config_poll_s`` and applies it at the next tick without restarting anything (see
:mod:`mbcas.api.live` for its shape and rules). Keys missing from the ConfigMap keep the values
given by flags and env. When a ConfigMap is named, the agent only observes (writes nothing) until
it has read it once, and keeps the last good one when it later cannot be read (403, 5xx) or is
deleted; ``kube-system`` and the agent's own namespace are never managed
(:attr:`AgentConfig.protected_namespaces`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import AliasChoices, Field, field_validator

from mbcas.api.live import (
    ALWAYS_EXCLUDED,
    SYSTEM_NAMESPACES,
    LiveConfig,
    LoadedConfig,
    RolloutMode,
    load_live_yaml,
    read_live_yaml,
)
from mbcas.api.settings import ProcessSettings, describe_error
from mbcas.core.units import format_cpu, parse_cpu, parse_cpu_cores

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

ENV_PREFIX = "MBCAS_AGENT_"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
"""Where a pod finds its own namespace (the agent's, when ``namespace`` is not set)."""


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


class AgentConfig(ProcessSettings):
    """Settings of ``mbcas agent`` (env prefix ``MBCAS_AGENT_``; ``NODE_NAME`` for the node).

    Every field needs a restart to change except ``live`` (re-read from the ConfigMap)."""

    env_prefix: ClassVar[str] = ENV_PREFIX
    moved: ClassVar[Mapping[str, str]] = {
        "refresh_s": "it is part of the contract with the controller: set contract.refresh_s in the ConfigMap"
    }

    node: str | None = Field(
        default=None,
        validation_alias=AliasChoices("node", "MBCAS_AGENT_NODE", "NODE_NAME"),
        description="The node this agent runs on (also NODE_NAME, from the downward API).",
    )
    namespace: str | None = Field(
        default=None,
        validation_alias=AliasChoices("namespace", "MBCAS_AGENT_NAMESPACE", "POD_NAMESPACE"),
        description="The agent's own namespace, never managed (also POD_NAMESPACE; none: the pod's own).",
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
    def protected_namespaces(self) -> frozenset[str]:
        """Namespaces never managed whatever the live ``exclude_namespaces`` says: ``kube-system``
        and the agent's own (``namespace``, else its service account's when it runs in a pod)."""
        own = self.namespace
        if own is None:
            with contextlib.suppress(OSError):
                own = Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or None
        return frozenset(ALWAYS_EXCLUDED) | ({own} if own else frozenset())

    @property
    def reserve_cores(self) -> float:
        return parse_cpu_cores(self.reserve_cpu)

    @property
    def allocatable_cores(self) -> float | None:
        return None if self.allocatable_cpu is None else parse_cpu_cores(self.allocatable_cpu)
