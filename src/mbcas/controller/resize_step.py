"""The resize step of a reconcile: patch the pod's CPU limit, and report what came of it.

:meth:`ResizeStep._resize` is step 5 of :meth:`~mbcas.controller.reconciler.Reconciler.reconcile`
(a mixin of the reconciler; :class:`_Host` lists what it uses there). The patch goes through the
:class:`~mbcas.kube.actuator.Actuator`, only while this replica leads (else ``Pending``
``NotLeader``). A 409 re-reads the pod and decides again (a pod that was replaced is ``PodGone``),
then tries once more at once; further conflicts back off (``Pending`` ``Conflict``). A pod the
actuator refuses to resize is ``Refused`` with its reason; a 422 is ``Failed`` ``Invalid``, final
for that generation, and counts as a failure for the gate's cooldown. An accepted patch is
recorded in the gate and the allocation's :class:`~mbcas.controller.tracker.Tracking`, and when
it changed the pod it posts a ``Resized`` Event (and ``ManualResizeOverridden`` when it replaced
a limit someone else set); the allocation is then ``Pending`` ``Resizing`` until the kubelet
reports the limit, and a capped step asks to be looked at again after ``min_interval_s``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from mbcas.api.models import Phase, PodAllocation
from mbcas.controller.config import ControllerConfig
from mbcas.controller.decide import Decision
from mbcas.controller.metrics import ControllerMetrics
from mbcas.controller.status import post_events
from mbcas.controller.tracker import Tracking
from mbcas.core.units import format_cpu
from mbcas.kube.actuator import Actuator
from mbcas.kube.backoff import Backoff
from mbcas.kube.errors import ConflictError, InvalidError, PodGoneError, RefusedError
from mbcas.kube.events import EventRecorder
from mbcas.kube.podview import PodView
from mbcas.policy.resize import ResizeGate

__all__ = ["ResizeStep"]


class _Host(Protocol):
    """What the resize step uses of the reconciler."""

    config: ControllerConfig
    metrics: ControllerMetrics
    actuator: Actuator
    events: EventRecorder
    conflicts: Backoff
    gate: ResizeGate
    is_active: Callable[[], bool]
    _lock: threading.RLock
    _by_uid: dict[str, set[str]]
    _pods: dict[str, PodView]
    _clock: Callable[[], float]
    _mono: Callable[[], float]

    def _pod(self, pa: PodAllocation, *, fresh: bool = False) -> PodView | None: ...

    def _decide(self, pa: PodAllocation, pod: PodView | None, track: Tracking) -> Decision: ...


class ResizeStep:
    """The resize step of :class:`~mbcas.controller.reconciler.Reconciler` (a mixin)."""

    def _resize(
        self: _Host, key: str, pa: PodAllocation, pod: PodView, decision: Decision, track: Tracking
    ) -> Decision:
        """Patch the pod to ``decision.resize_to_mcpu``; returns the decision to report."""
        value = decision.resize_to_mcpu
        assert value is not None
        uid = pa.spec.pod_uid
        for attempt in range(2):
            if not self.is_active():  # leadership may have ended since the worker took the key
                return Decision(
                    Phase.PENDING,
                    "NotLeader",
                    "this replica no longer leads; the leader will apply it",
                    applied_mcpu=decision.applied_mcpu,
                    requeue_after_s=self.config.resync_s,
                )
            try:
                result = self.actuator.apply_cpu_limit(pod, value, expected_uid=uid)
            except ConflictError as exc:
                self.metrics.resizes.labels(result="conflict").inc()
                if attempt == 0:
                    fresh = self._pod(pa, fresh=True)
                    if fresh is None or fresh.uid != uid:
                        return Decision(Phase.FAILED, "PodGone", f"pod {pod.key} was deleted")
                    pod = fresh
                    redo = self._decide(pa, pod, track)
                    if redo.resize_to_mcpu is None:
                        return redo
                    decision, value = redo, redo.resize_to_mcpu
                    continue
                delay = self.conflicts.failed(key, exc)
                return Decision(
                    Phase.PENDING,
                    "Conflict",
                    f"pod kept changing; retrying in {delay:.1f}s",
                    applied_mcpu=decision.applied_mcpu,
                    requeue_after_s=delay,
                )
            except PodGoneError as exc:
                return Decision(Phase.FAILED, "PodGone", str(exc))
            except RefusedError as exc:
                return Decision(Phase.REFUSED, exc.reason, str(exc), event_on_pod=True)
            except InvalidError as exc:
                self.metrics.resizes.labels(result="invalid").inc()
                track.final_failure = f"resize rejected by the apiserver (not retried): {exc}"
                with self._lock:
                    self.gate.record_failure(uid, self._mono())
                post_events(self.events, pa, pod, "ResizeRejected", str(exc), warning=True, on_pod=True)
                return Decision(
                    Phase.FAILED, "Invalid", track.final_failure, applied_mcpu=decision.applied_mcpu
                )
            self.conflicts.forget(key)
            with self._lock:
                self.gate.record_applied(uid, self._mono())
                if uid in self._by_uid:
                    self._pods[uid] = result.pod
            track.last_resize_at = self._clock()
            track.own_generation = result.pod.generation
            if result.patched:
                self.metrics.resizes.labels(
                    result="capped" if value != pa.spec.cpu_limit_mcpu else "applied"
                ).inc()
                post_events(self.events, pa, result.pod, "Resized", result.describe(), on_pod=True)
                if decision.manual_override:
                    post_events(
                        self.events,
                        pa,
                        result.pod,
                        "ManualResizeOverridden",
                        f"pod {pod.key}: the CPU limit set by {decision.manual_override} was replaced by "
                        f"PodAllocation {pa.metadata.get('name')} ({format_cpu(value)}); to keep a manual "
                        "limit, opt the pod out of MBCAS",
                        warning=True,
                        on_pod=True,
                    )
            return Decision(
                Phase.PENDING,
                "Resizing",
                decision.message,
                applied_mcpu=result.pod.limits_of(result.plan)[1],
                requeue_after_s=self.config.rules.min_interval_s if value != pa.spec.cpu_limit_mcpu else None,
            )
        raise AssertionError("unreachable")
