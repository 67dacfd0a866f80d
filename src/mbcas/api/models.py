"""Pydantic models of the ``PodAllocation`` custom resource (group ``mbcas.io``, ``v1alpha1``).

One object per managed pod, named by the pod's UID, in the pod's namespace, with an
ownerReference to the pod so it is garbage-collected with it. ``spec`` is the agent's decision
(no raw metrics); ``status`` is the controller's record of what happened. Field names are the
camelCase names of the CRD; models accept and emit them via aliases.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mbcas.core.units import format_cpu, parse_cpu

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "Condition",
    "Mode",
    "Phase",
    "PodAllocation",
    "PodAllocationSpec",
    "PodAllocationStatus",
]

GROUP = "mbcas.io"
VERSION = "v1alpha1"
PLURAL = "podallocations"
KIND = "PodAllocation"


class Mode(StrEnum):
    """``enforce``: the controller applies the decision; ``recommend``: recorded, never applied."""

    ENFORCE = "enforce"
    RECOMMEND = "recommend"


class Phase(StrEnum):
    """Where a decision stands. ``Refused``: the controller will not apply it (QoS, UID/node
    mismatch, stale); ``Recommended``: a recommendation, never applied."""

    PENDING = "Pending"
    APPLIED = "Applied"
    DEFERRED = "Deferred"
    INFEASIBLE = "Infeasible"
    FAILED = "Failed"
    REFUSED = "Refused"
    RECOMMENDED = "Recommended"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", use_enum_values=False)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def rfc3339(value: dt.datetime) -> str:
    """Kubernetes' timestamp form: second precision, UTC, trailing ``Z``."""
    return _utc(value).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Condition(_Model):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str
    status: str = Field(pattern="^(True|False|Unknown)$")
    reason: str
    message: str = ""
    last_transition_time: dt.datetime = Field(alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class PodAllocationSpec(_Model):
    """The agent's decision for one pod."""

    pod_name: str = Field(alias="podName", min_length=1, max_length=253)
    pod_uid: str = Field(alias="podUID", min_length=8, max_length=64)
    node_name: str = Field(alias="nodeName", min_length=1, max_length=253)
    cpu_limit_mcpu: int = Field(alias="cpuLimit", gt=0)
    mode: Mode = Mode.ENFORCE
    reason: str = Field(min_length=1, max_length=256)
    decided_at: dt.datetime = Field(alias="decidedAt")

    @field_validator("cpu_limit_mcpu", mode="before")
    @classmethod
    def _parse_quantity(cls, value: Any) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else parse_cpu(value)

    @field_validator("reason", mode="before")
    @classmethod
    def _trim_reason(cls, value: Any) -> Any:
        return value[:256] if isinstance(value, str) else value

    def to_body(self) -> dict[str, Any]:
        """The ``spec`` dict as the apiserver expects it."""
        return {
            "podName": self.pod_name,
            "podUID": self.pod_uid,
            "nodeName": self.node_name,
            "cpuLimit": format_cpu(self.cpu_limit_mcpu),
            "mode": self.mode.value,
            "reason": self.reason,
            "decidedAt": rfc3339(self.decided_at),
        }


class PodAllocationStatus(_Model):
    """The controller's record of what happened to the decision."""

    phase: Phase = Phase.PENDING
    applied_cpu_limit_mcpu: int | None = Field(default=None, alias="appliedCPULimit")
    last_applied_time: dt.datetime | None = Field(default=None, alias="lastAppliedTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    message: str = ""
    conditions: list[Condition] = Field(default_factory=list)

    @field_validator("applied_cpu_limit_mcpu", mode="before")
    @classmethod
    def _parse_quantity(cls, value: Any) -> int | None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        return parse_cpu(value)

    def to_body(self) -> dict[str, Any]:
        """The ``status`` dict as the apiserver expects it (unset optional fields omitted)."""
        body: dict[str, Any] = {"phase": self.phase.value, "message": self.message[:1024]}
        if self.applied_cpu_limit_mcpu is not None:
            body["appliedCPULimit"] = format_cpu(self.applied_cpu_limit_mcpu)
        if self.last_applied_time is not None:
            body["lastAppliedTime"] = rfc3339(self.last_applied_time)
        if self.observed_generation is not None:
            body["observedGeneration"] = self.observed_generation
        body["conditions"] = [
            {
                "type": c.type,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": rfc3339(c.last_transition_time),
                **(
                    {"observedGeneration": c.observed_generation} if c.observed_generation is not None else {}
                ),
            }
            for c in self.conditions
        ]
        return body


class PodAllocation(_Model):
    """A whole PodAllocation object (metadata kept as a plain dict)."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: PodAllocationSpec
    status: PodAllocationStatus | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> PodAllocation:
        """Parse an object as returned by the apiserver (``status`` may be absent)."""
        return cls.model_validate(
            {
                "metadata": body.get("metadata") or {},
                "spec": body.get("spec") or {},
                "status": body.get("status"),
            }
        )

    def to_body(self, owner_uid: str | None = None) -> dict[str, Any]:
        """A full object for create/replace. ``owner_uid`` adds the ownerReference to the pod."""
        meta = dict(self.metadata)
        meta.setdefault("name", self.spec.pod_uid)
        if owner_uid is not None:
            meta["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": self.spec.pod_name,
                    "uid": owner_uid,
                    "controller": False,
                    "blockOwnerDeletion": False,
                }
            ]
        body: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": meta,
            "spec": self.spec.to_body(),
        }
        if self.status is not None:
            body["status"] = self.status.to_body()
        return body
