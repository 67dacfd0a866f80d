"""The controller's one typed configuration: defaults, ``MBCAS_CONTROLLER_*`` env, then flags.

Every safety rule of :mod:`mbcas.policy.resize` is a field here, so an operator can tune it per
cluster without code changes; :meth:`ControllerConfig.rules` hands them to the gate. Flags of
``mbcas controller`` override the environment, which overrides the defaults.
"""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mbcas.policy.resize import ResizeRules

__all__ = ["ControllerConfig"]


def _identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ControllerConfig(BaseSettings):
    """Settings of ``mbcas controller`` (env prefix ``MBCAS_CONTROLLER_``)."""

    model_config = SettingsConfigDict(env_prefix="MBCAS_CONTROLLER_", extra="forbid", frozen=True)

    # Connection and scope
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = Field(default=None, description="watch only this namespace (None: all)")

    # Endpoints (0 disables)
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    health_port: int = Field(default=8081, ge=0, le=65535)
    bind_address: str = "0.0.0.0"

    # Safety rules (see mbcas.policy.resize)
    min_interval_s: float = Field(default=10.0, ge=0)
    max_step_ratio: float = Field(default=1.0, gt=0)
    max_step_mcpu: int = Field(default=2000, gt=0)
    min_step_mcpu: int = Field(default=10, gt=0)
    deadband_ratio: float = Field(default=0.05, ge=0)
    deadband_mcpu: int = Field(default=10, ge=0)
    failure_cooldown_s: float = Field(default=5.0, ge=0)
    failure_backoff_factor: float = Field(default=2.0, ge=1)
    failure_cooldown_max_s: float = Field(default=300.0, ge=0)
    max_resizes_per_second: float = Field(default=10.0, gt=0)
    burst: int = Field(default=10, ge=1)

    # Trust
    staleness_s: float = Field(default=120.0, gt=0, description="ignore decisions older than this")
    allow_restart: bool = Field(default=False, description="also resize RestartContainer containers")

    # Work loop
    workers: int = Field(default=2, ge=1, le=64)
    resync_s: float = Field(default=30.0, gt=0, description="re-check every allocation this often")

    # Leader election (coordination.k8s.io Lease)
    leader_election: bool = True
    lease_namespace: str = "default"
    lease_name: str = "mbcas-controller"
    lease_duration_s: float = Field(default=15.0, gt=0)
    lease_renew_s: float = Field(default=5.0, gt=0)
    identity: str = Field(default_factory=_identity)

    def rules(self) -> ResizeRules:
        """The pure gate's rules (raises ``ValueError`` on inconsistent values)."""
        return ResizeRules(
            min_interval_s=self.min_interval_s,
            max_step_ratio=self.max_step_ratio,
            max_step_mcpu=self.max_step_mcpu,
            min_step_mcpu=self.min_step_mcpu,
            deadband_ratio=self.deadband_ratio,
            deadband_mcpu=self.deadband_mcpu,
            failure_cooldown_s=self.failure_cooldown_s,
            failure_backoff_factor=self.failure_backoff_factor,
            failure_cooldown_max_s=self.failure_cooldown_max_s,
            max_resizes_per_second=self.max_resizes_per_second,
            burst=self.burst,
        )
