"""The controller's one typed configuration: defaults, ``MBCAS_CONTROLLER_*`` env, then flags.

Every safety rule of :mod:`mbcas.policy.resize` is a field of the embedded ``rules``
(:class:`~mbcas.policy.resize.ResizeRules`), so an operator can tune it per cluster without code
changes; nested settings take ``__`` in the environment (``MBCAS_CONTROLLER_RULES__MIN_INTERVAL_S``).
Flags of ``mbcas controller`` override the environment, which overrides the defaults. These need a
restart to change.

What the controller must agree on with the agent (the deadband, staleness, whether
``RestartContainer`` containers take part) is *not* here: it is the ``contract:`` section of the
shared ConfigMap named by ``config_map`` (:class:`mbcas.api.contract.ContractSettings`), read at
start and every ``config_poll_s`` (:class:`mbcas.controller.shared.SharedSettings`), so the two
processes have one source and the environment cannot make them disagree.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, model_validator

from mbcas.api.settings import ProcessSettings
from mbcas.kube.lease import check_lease_timings
from mbcas.policy.resize import ResizeRules

__all__ = ["ControllerConfig"]

ENV_PREFIX = "MBCAS_CONTROLLER_"

_MOVED = {
    **{
        name: f"{name} is part of the contract with the agent: set contract.{name} in the shared ConfigMap"
        for name in ("deadband_ratio", "staleness_s", "allow_restart")
    },
    "deadband_mc": "set contract.deadband_mcpu in the shared ConfigMap",
    "max_clock_skew_s": "set contract.max_future_skew_s in the shared ConfigMap",
    **{
        name: f"resize rules are nested now: MBCAS_CONTROLLER_RULES__{name.upper()}"
        for name in ResizeRules.model_fields
    },
    "max_step_mc": "resize rules are nested now: MBCAS_CONTROLLER_RULES__MAX_STEP_MCPU",
    "min_step_mc": "resize rules are nested now: MBCAS_CONTROLLER_RULES__MIN_STEP_MCPU",
}


def _identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ControllerConfig(ProcessSettings):
    """Settings of ``mbcas controller`` (env prefix ``MBCAS_CONTROLLER_``, nested with ``__``)."""

    env_prefix: ClassVar[str] = ENV_PREFIX
    moved: ClassVar[Mapping[str, str]] = _MOVED

    # Connection and scope
    kubeconfig: str | None = Field(default=None, description="Kubeconfig file (none: in-cluster).")
    context: str | None = Field(default=None, description="Kubeconfig context.")
    namespace: str | None = Field(default=None, description="Watch only this namespace (none: all).")

    # Endpoints (0 disables)
    metrics_port: int = Field(default=9101, ge=0, le=65535, description="Prometheus /metrics port (0: off).")
    health_port: int = Field(default=8081, ge=0, le=65535, description="Liveness /healthz port (0: off).")
    bind_address: str = Field(default="0.0.0.0", description="Address of both ports.")

    # Safety rules (see mbcas.policy.resize)
    rules: ResizeRules = Field(
        default_factory=ResizeRules, description="The resize safety rules: MBCAS_CONTROLLER_RULES__<KEY>."
    )

    # Work loop
    workers: int = Field(default=2, ge=1, le=64, description="Reconcile worker threads.")
    resync_s: float = Field(default=30.0, gt=0, description="Re-check every allocation this often.")

    # Leader election (coordination.k8s.io Lease)
    leader_election: bool = Field(default=True, description="Act only while holding the Lease.")
    lease_namespace: str = Field(default="default", description="Namespace of the Lease.")
    lease_name: str = Field(default="mbcas-controller", description="Name of the Lease.")
    # client-go's rules: duration > renew deadline > 1.2 x renew (retry) period; see mbcas.kube.lease.
    lease_duration_s: float = Field(
        default=15.0,
        gt=0,
        description="Followers take the Lease over after it has not changed for this long.",
    )
    lease_renew_deadline_s: float = Field(
        default=10.0,
        gt=0,
        description="The leader stops acting once its last renewal is this old (< lease_duration_s).",
    )
    lease_renew_s: float = Field(
        default=2.0, gt=0, description="Try to acquire or renew the Lease this often (x 1.2 < the deadline)."
    )
    identity: str = Field(
        default_factory=_identity, description="This replica's name in the Lease (hostname-pid)."
    )

    @model_validator(mode="after")
    def _lease_timings(self) -> ControllerConfig:
        problems = check_lease_timings(self.lease_duration_s, self.lease_renew_deadline_s, self.lease_renew_s)
        if problems:
            raise ValueError(
                "lease_duration_s > lease_renew_deadline_s > 1.2 x lease_renew_s is required: "
                + "; ".join(problems)
            )
        return self
