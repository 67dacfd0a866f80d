"""In-place CPU-limit changes through the pod ``resize`` subresource, with the QoS safety rules.

Used by the controller and by ``mbcas resize`` alike::

    act = Actuator(kube)
    result = act.apply_cpu_limit("default", "web", 1500)            # the pod's whole limit, split by requests
    result = act.apply_cpu_limit("default", "web", 500, container="app")  # one container

The change is a strategic-merge patch of ``spec.containers[].resources.limits.cpu`` on
``/api/v1/namespaces/{ns}/pods/{name}/resize`` (kubernetes >= 1.32), so memory, requests and
the containers that do not take part stay untouched. It carries the ``resourceVersion`` of the
pod that was checked, so if the pod changed in between — or is a different pod recreated under
the same name — the apiserver answers ``409 Conflict`` instead of applying a decision made for
something else. How a pod limit is split into container limits and which pods are refused
(Guaranteed, BestEffort, below request, ``RestartContainer``) is the pure rule of
:mod:`mbcas.policy.resize_split`: a pod-level limit counts the limits of the containers left
alone (native sidecars, ``RestartContainer`` ones), and only the rest is split.
``force=True`` skips MBCAS's own checks and lets the apiserver be the judge (it still rejects QoS
changes and limits below requests with 422).

Errors are typed (:mod:`mbcas.kube.errors`): :class:`PodGoneError`, :class:`ConflictError`,
:class:`ForbiddenError`, :class:`InvalidError` (final), :class:`ApiUnavailableError`,
:class:`RefusedError` (ours, with a reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mbcas.core.units import format_cpu
from mbcas.kube.client import Kube
from mbcas.kube.errors import PodGoneError, RefusedError
from mbcas.kube.podview import PodView
from mbcas.policy.resize_split import LimitPlan, SplitRefusedError, plan_container_limits

__all__ = ["FIELD_MANAGER", "Actuator", "ResizeResult", "resize_patch"]

FIELD_MANAGER = "mbcas"


@dataclass(frozen=True)
class ResizeResult:
    """What :meth:`Actuator.apply_cpu_limit` did. ``patched`` is False for a no-op."""

    pod: PodView
    plan: LimitPlan
    previous: Mapping[str, int | None] = field(default_factory=dict)
    patched: bool = False

    @property
    def changes(self) -> dict[str, tuple[int | None, int]]:
        """Container -> (old limit, new limit), only for containers that changed."""
        return {
            n: (self.previous.get(n), v) for n, v in self.plan.limits.items() if self.previous.get(n) != v
        }

    def describe(self) -> str:
        if not self.changes:
            return f"pod {self.pod.key}: CPU limits already at {_fmt_limits(self.plan.limits)}"
        parts = [f"{n} {_fmt(old)} -> {format_cpu(new)}" for n, (old, new) in self.changes.items()]
        return f"pod {self.pod.key}: CPU limit " + ", ".join(parts)


def _fmt(mc: int | None) -> str:
    return "unlimited" if mc is None else format_cpu(mc)


def _fmt_limits(limits: Mapping[str, int]) -> str:
    return ", ".join(f"{n}={format_cpu(v)}" for n, v in limits.items())


def resize_patch(limits: Mapping[str, int], resource_version: str | None = None) -> dict[str, Any]:
    """The strategic-merge patch body setting only these containers' CPU limits."""
    body: dict[str, Any] = {
        "spec": {
            "containers": [
                {"name": name, "resources": {"limits": {"cpu": format_cpu(value)}}}
                for name, value in limits.items()
            ]
        }
    }
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    return body


class Actuator:
    """Reads pods and changes their CPU limits in place. Thread-safe (no mutable state)."""

    def __init__(self, kube: Kube, *, allow_restart: bool = False, field_manager: str = FIELD_MANAGER):
        self.kube = kube
        self.allow_restart = allow_restart
        self.field_manager = field_manager

    def get_pod(self, namespace: str, name: str) -> PodView:
        """Read a pod (raises :class:`PodGoneError` if it does not exist)."""
        body = self.kube.request_json(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            what=f"read pod {namespace}/{name}",
            gone=PodGoneError,
        )
        return PodView.from_body(body)

    def plan(
        self, pod: PodView, limit_mcpu: int, *, container: str | None = None, force: bool = False
    ) -> LimitPlan:
        """Container limits for ``limit_mcpu`` on ``pod``, or :class:`RefusedError` with the reason."""
        if pod.deleting:
            raise RefusedError("PodTerminating", f"pod {pod.key} is being deleted")
        if force:
            if container is not None:
                if pod.container(container) is None:
                    raise RefusedError("NoSuchContainer", f"pod {pod.key} has no container {container!r}")
                return LimitPlan({container: limit_mcpu})
            try:
                return plan_container_limits(
                    limit_mcpu, pod.containers, qos=None, allow_restart=True, min_container_mcpu=1
                )
            except SplitRefusedError:
                weights = {c.name: 1 for c in pod.containers}
                share, rest = divmod(limit_mcpu, max(len(weights), 1))
                return LimitPlan({n: share + (1 if i < rest else 0) for i, n in enumerate(weights)})
        try:
            return plan_container_limits(
                limit_mcpu, pod.cpu, qos=pod.qos, allow_restart=self.allow_restart, only=container
            )
        except SplitRefusedError as exc:
            raise RefusedError(exc.reason, f"pod {pod.key}: {exc.message}") from exc

    def apply_cpu_limit(
        self,
        pod: PodView | tuple[str, str],
        limit_mcpu: int,
        *,
        container: str | None = None,
        force: bool = False,
        expected_uid: str | None = None,
        dry_run: bool = False,
    ) -> ResizeResult:
        """Set the pod's (or one ``container``'s) CPU limit to ``limit_mcpu`` millicores in place.

        ``pod`` is a :class:`PodView` just read (its resourceVersion guards the patch) or a
        ``(namespace, name)`` pair to read now. ``expected_uid`` refuses a different pod under
        the same name. A pod already at the planned limits is not patched.
        """
        view = self.get_pod(*pod) if isinstance(pod, tuple) else pod
        if expected_uid is not None and view.uid != expected_uid:
            raise PodGoneError(f"pod {view.key} has UID {view.uid}, not {expected_uid}: it was recreated")
        plan = self.plan(view, limit_mcpu, container=container, force=force)
        previous = {n: (c.cpu_limit_mcpu if (c := view.container(n)) else None) for n in plan.limits}
        changed = {n: v for n, v in plan.limits.items() if previous.get(n) != v}
        if not changed:
            return ResizeResult(view, plan, previous, patched=False)
        query: dict[str, str] = {"fieldManager": self.field_manager}
        if dry_run:
            query["dryRun"] = "All"
        body = self.kube.request_json(
            "PATCH",
            f"/api/v1/namespaces/{view.namespace}/pods/{view.name}/resize",
            what=f"resize pod {view.key}",
            body=resize_patch(changed, view.resource_version),
            content_type="application/strategic-merge-patch+json",
            query=query,
            gone=PodGoneError,
        )
        return ResizeResult(PodView.from_body(body), plan, previous, patched=True)
