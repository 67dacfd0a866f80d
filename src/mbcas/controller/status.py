"""What the controller reports: an allocation's status, and the Events of what it did.

:func:`next_status` builds the status a :class:`~mbcas.controller.decide.Decision` reports: phase,
applied limit, last applied time, observed generation, message and one ``Applied`` condition. On
the error path (no decision: the API failed) it keeps the old phase and values and adds a
``Retrying`` condition instead. A condition keeps its ``lastTransitionTime`` while its status
stays the same. :func:`same_status` compares two status bodies as the reconciler needs: the same
fields and the same conditions, timestamps aside, so an unchanged decision is never rewritten.
The reconciler (:meth:`~mbcas.controller.reconciler.Reconciler.reconcile`) merge-patches the
status only when it differs.

:func:`post_events` posts one Event on the allocation and, when asked and the pod is still the one
the allocation names, the same Event on the pod: each resize, each refusal, each manual resize
undone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from mbcas.api.models import GROUP, KIND, VERSION, Condition, Phase, PodAllocation, PodAllocationStatus
from mbcas.controller.decide import Decision
from mbcas.kube.events import EventRecorder, ObjectRef
from mbcas.kube.podview import PodView

__all__ = ["next_status", "post_events", "same_status"]

_FINAL_STATUS_FIELDS = ("phase", "appliedCPULimit", "message", "observedGeneration")


def post_events(
    events: EventRecorder,
    pa: PodAllocation,
    pod: PodView | None,
    reason: str,
    message: str,
    *,
    warning: bool = False,
    on_pod: bool = False,
) -> None:
    """Post an Event on the allocation and, with ``on_pod``, on its pod (if ``pod`` is still it)."""
    meta = pa.metadata
    events.post(
        ObjectRef(
            f"{GROUP}/{VERSION}",
            KIND,
            str(meta.get("namespace", "")),
            str(meta.get("name", "")),
            str(meta.get("uid", "")),
        ),
        reason,
        message,
        warning=warning,
    )
    if on_pod and pod is not None and pod.uid == pa.spec.pod_uid:
        events.post(
            ObjectRef("v1", "Pod", pod.namespace, pod.name, pod.uid), reason, message, warning=warning
        )


def next_status(
    old: Mapping[str, Any],
    decision: Decision | None,
    *,
    generation: int | None,
    retrying: tuple[str, str] | None = None,
    last_applied: float | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The status body to write over ``old`` (the stored one, possibly empty or invalid).

    ``decision`` None is the error path: ``retrying`` (reason, message) becomes a ``Retrying``
    condition. ``last_applied`` is the wall time of our last accepted patch, if any; ``now``
    (default: the current time) stamps conditions that change status.
    """
    now = dt.datetime.now(dt.UTC) if now is None else now
    try:
        old_status = PodAllocationStatus.model_validate(old) if old else PodAllocationStatus()
    except ValidationError:
        old_status = PodAllocationStatus()
    if decision is None:  # error path: keep phase and values, add a Retrying condition
        status = old_status.model_copy()
        status.conditions = [c for c in old_status.conditions if c.type != "Retrying"]
        assert retrying is not None
        status.conditions.append(
            _condition(
                old_status,
                ctype="Retrying",
                status="True",
                reason=retrying[0],
                message=retrying[1],
                now=now,
                generation=generation,
            )
        )
    else:
        applied_time = old_status.last_applied_time
        if last_applied is not None:
            applied_time = dt.datetime.fromtimestamp(last_applied, dt.UTC)
        status = PodAllocationStatus(
            phase=decision.phase,
            applied_cpu_limit_mcpu=decision.applied_mcpu,
            last_applied_time=applied_time,
            observed_generation=generation,
            message=decision.message,
            conditions=[
                _condition(
                    old_status,
                    ctype="Applied",
                    status="True" if decision.phase is Phase.APPLIED else "False",
                    reason=decision.reason,
                    message=decision.message,
                    now=now,
                    generation=generation,
                )
            ],
        )
    return status.to_body()


def _condition(
    old: PodAllocationStatus,
    *,
    ctype: str,
    status: str,
    reason: str,
    message: str,
    now: dt.datetime,
    generation: int | None,
) -> Condition:
    prev = next((c for c in old.conditions if c.type == ctype), None)
    since = prev.last_transition_time if prev is not None and prev.status == status else now
    return Condition(
        type=ctype,
        status=status,
        reason=reason,
        message=message[:32768],
        last_transition_time=since,
        observed_generation=generation,
    )


def same_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Equal for our purposes: same fields and same conditions except timestamps."""
    if any(old.get(f) != new.get(f) for f in _FINAL_STATUS_FIELDS):
        return False
    if old.get("lastAppliedTime") != new.get("lastAppliedTime"):
        return False

    def conds(s: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return sorted(
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            for c in s.get("conditions") or []
        )

    return conds(old) == conds(new)
