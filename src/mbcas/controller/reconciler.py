"""The controller's engine: caches fed by watch events, a work queue, workers that reconcile.

kopf handlers (in :mod:`mbcas.controller.main`) only feed :meth:`Reconciler.on_allocation` and
:meth:`Reconciler.on_pod` with the bodies they receive; those update the caches and enqueue the
allocation's key. Worker threads take due keys and run :meth:`Reconciler.reconcile`:

1. parse the cached allocation (a malformed one is ``Failed``, never retried);
2. find the live pod (cache, else one GET);
3. :func:`~mbcas.controller.decide.decide` (pure) says what to report and what to patch;
4. patch through the :class:`~mbcas.kube.actuator.Actuator` — a 409 re-reads the pod and tries
   once more, a 422 is final for that generation, any other error backs off through the gate's
   failure cooldown with a ``Retrying`` condition (never a hot loop);
5. post Events (each resize, each refusal) and write the status only when it changed;
6. requeue when the decision asks (step-cap continuation, interval, cooldown, kubelet pending).

Every allocation is also re-checked every ``resync_s``. Only the leader works: followers keep
their caches warm and process nothing; a new leader requeues everything it knows.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mbcas.api.models import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    Condition,
    Phase,
    PodAllocation,
    PodAllocationStatus,
)
from mbcas.controller.config import ControllerConfig
from mbcas.controller.decide import Decision, decide
from mbcas.controller.metrics import ControllerMetrics
from mbcas.controller.shared import SharedSettings
from mbcas.core.units import format_cpu
from mbcas.kube.actuator import Actuator
from mbcas.kube.client import Kube
from mbcas.kube.errors import (
    ConflictError,
    InvalidError,
    KubeError,
    NotFoundError,
    PodGoneError,
    RefusedError,
)
from mbcas.kube.events import EventRecorder, ObjectRef
from mbcas.kube.podview import PodView
from mbcas.kube.workqueue import WorkQueue
from mbcas.policy.resize import ResizeGate

__all__ = ["Reconciler"]

log = logging.getLogger(__name__)

_FINAL_STATUS_FIELDS = ("phase", "appliedCPULimit", "message", "observedGeneration")


@dataclass
class _Tracking:
    """Per-allocation memory of the reconciler (not persisted: rebuilt from the API on restart)."""

    generation: int | None = None
    seen_at: float = 0.0  # monotonic time the generation was first seen
    latency_observed: bool = False
    final_failure: str | None = None  # 422 message for this generation
    last_resize_at: float | None = None  # wall time of our last accepted patch


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


class Reconciler:
    """Reconciles PodAllocations into pod resizes. Start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(
        self,
        kube: Kube,
        config: ControllerConfig,
        metrics: ControllerMetrics | None = None,
        *,
        is_active: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.config = config
        self.metrics = metrics or ControllerMetrics()
        self.shared = SharedSettings(kube, config.config_map_ref(), poll_s=config.config_poll_s, mono=mono)
        """The contract settings shared with the agent (deadband, staleness, allow_restart)."""
        self.actuator = Actuator(kube, allow_restart=self.shared.current().allow_restart)
        self.events = EventRecorder(kube, instance=config.identity)
        self.gate = ResizeGate(config.rules)
        self.queue = WorkQueue(mono)
        self.is_active = is_active
        self._clock = clock
        self._mono = mono
        self._lock = threading.RLock()  # caches, gate, tracking
        self._allocations: dict[str, dict[str, Any]] = {}
        self._pods: dict[str, PodView] = {}  # "ns/podName" -> latest pod seen
        self._by_pod: dict[str, set[str]] = {}  # "ns/podName" -> allocation keys
        self._tracking: dict[str, _Tracking] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # ----------------------------------------------------------------- event intake (kopf side)

    def on_allocation(self, event_type: str, body: Mapping[str, Any]) -> None:
        """A PodAllocation watch event (``ADDED``/``MODIFIED``/``DELETED``, or None for listing)."""
        meta = body.get("metadata") or {}
        key = _key(str(meta.get("namespace", "")), str(meta.get("name", "")))
        pod_key = _key(str(meta.get("namespace", "")), str((body.get("spec") or {}).get("podName", "")))
        with self._lock:
            old = self._allocations.get(key)
            if old is not None:
                old_pod = _key(
                    str(meta.get("namespace", "")), str((old.get("spec") or {}).get("podName", ""))
                )
                self._by_pod.get(old_pod, set()).discard(key)
            if event_type == "DELETED":
                self._allocations.pop(key, None)
                self._tracking.pop(key, None)
                return
            self._allocations[key] = dict(body)
            self._by_pod.setdefault(pod_key, set()).add(key)
            track = self._tracking.setdefault(key, _Tracking())
            generation = meta.get("generation")
            if generation != track.generation:
                track.generation = generation if isinstance(generation, int) else None
                track.seen_at = self._mono()
                track.latency_observed = False
                track.final_failure = None
        self.queue.add(key)

    def on_pod(self, event_type: str, body: Mapping[str, Any]) -> None:
        """A pod watch event: refresh the cache and wake the allocations for that pod."""
        view = PodView.from_body(body)
        with self._lock:
            keys = set(self._by_pod.get(view.key, ()))
            if event_type == "DELETED":
                cached = self._pods.get(view.key)
                if cached is not None and cached.uid == view.uid:
                    self._pods.pop(view.key, None)
                self.gate.forget(view.uid)
            elif keys:
                self._pods[view.key] = view
            else:
                self._pods.pop(view.key, None)
        for key in keys:
            self.queue.add(key)

    def allocation_bodies(self) -> list[dict[str, Any]]:
        """A snapshot of the cached PodAllocation bodies (the ``mbcas_controller_allocations`` gauge)."""
        with self._lock:
            return list(self._allocations.values())

    def requeue_all(self) -> None:
        """Enqueue every known allocation (resync, new leadership)."""
        with self._lock:
            keys = list(self._allocations)
        for key in keys:
            self.queue.add(key)

    # ----------------------------------------------------------------- workers

    def start(self) -> None:
        for i in range(self.config.workers):
            t = threading.Thread(target=self._work, name=f"mbcas-reconcile-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._resync_loop, name="mbcas-resync", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()

    def _resync_loop(self) -> None:
        while not self._stop.wait(self.config.resync_s):
            self.requeue_all()

    def _work(self) -> None:
        while not self._stop.is_set():
            if not self.is_active():
                self._stop.wait(0.2)
                continue
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            requeue: float | None = None
            started = self._mono()
            try:
                requeue = self.reconcile(key)
            except Exception:  # never let one allocation kill a worker
                log.exception("reconcile of %s failed unexpectedly", key)
                requeue = self.config.rules.failure_cooldown_s or 1.0
            finally:
                self.metrics.reconcile_seconds.observe(self._mono() - started)
                self.queue.done(key, requeue)
                self.metrics.queue_depth.set(len(self.queue))

    # ----------------------------------------------------------------- reconcile

    def _pod(self, namespace: str, name: str, *, fresh: bool = False) -> PodView | None:
        pod_key = _key(namespace, name)
        if not fresh:
            with self._lock:
                cached = self._pods.get(pod_key)
            if cached is not None:
                return cached
        try:
            view = self.actuator.get_pod(namespace, name)
        except PodGoneError:
            with self._lock:
                self._pods.pop(pod_key, None)
            return None
        with self._lock:
            self._pods[pod_key] = view
        return view

    def reconcile(self, key: str) -> float | None:
        """Reconcile one allocation; returns seconds until it should be looked at again (or None)."""
        with self._lock:
            body = self._allocations.get(key)
            track = self._tracking.setdefault(key, _Tracking())
        if body is None:
            return None
        meta = body.get("metadata") or {}
        namespace = str(meta.get("namespace", ""))
        try:
            pa = PodAllocation.from_body(body)
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {"msg": str(exc)}
            self._write_status(
                body, Decision(Phase.FAILED, "InvalidSpec", f"invalid spec: {first.get('msg')}")
            )
            return None
        try:
            pod = self._pod(namespace, pa.spec.pod_name)
            decision = self._decide(pa, pod, track)
            if decision.resize_to_mcpu is not None and pod is not None:
                decision = self._resize(pa, pod, decision, track)
        except KubeError as exc:
            # Reading the pod failed (API down, forbidden ...): back off with a condition.
            uid = pa.spec.pod_uid
            with self._lock:
                cooldown = self.gate.record_failure(uid, self._mono())
            self.metrics.resizes.labels(result="error").inc()
            self._write_status(body, None, retrying=(exc.code, str(exc)))
            return max(cooldown, 0.5)
        if decision.infeasible_mcpu is not None:
            with self._lock:
                self.gate.record_infeasible(pa.spec.pod_uid, decision.infeasible_mcpu)
        if decision.phase is Phase.APPLIED and not track.latency_observed:
            track.latency_observed = True
            self.metrics.apply_latency.observe(max(0.0, self._mono() - track.seen_at))
        changed = self._write_status(body, decision, last_applied=track.last_resize_at)
        if changed and decision.refusal:
            self.metrics.refusals.labels(reason=decision.reason).inc()
            self._post(pa, pod, decision.reason, decision.message, warning=True, on_pod=decision.event_on_pod)
        return decision.requeue_after_s

    def _decide(self, pa: PodAllocation, pod: PodView | None, track: _Tracking) -> Decision:
        contract = self.shared.current()  # may read the ConfigMap: outside the lock
        with self._lock:
            self.actuator.allow_restart = contract.allow_restart
            return decide(
                pa.spec,
                pod,
                self.gate,
                now=self._clock(),
                now_mono=self._mono(),
                contract=contract,
                final_failure=track.final_failure,
                resync_s=self.config.resync_s,
            )

    def _resize(self, pa: PodAllocation, pod: PodView, decision: Decision, track: _Tracking) -> Decision:
        """Patch the pod to ``decision.resize_to_mcpu``; returns the decision to report."""
        value = decision.resize_to_mcpu
        assert value is not None
        uid = pa.spec.pod_uid
        for attempt in range(2):
            try:
                result = self.actuator.apply_cpu_limit(pod, value, expected_uid=uid)
            except ConflictError:
                self.metrics.resizes.labels(result="conflict").inc()
                if attempt == 0:
                    fresh = self._pod(pod.namespace, pod.name, fresh=True)
                    if fresh is None:
                        return Decision(Phase.FAILED, "PodGone", f"pod {pod.key} was deleted")
                    pod = fresh
                    redo = self._decide(pa, pod, track)
                    if redo.resize_to_mcpu is None:
                        return redo
                    value = redo.resize_to_mcpu
                    continue
                return Decision(Phase.PENDING, "Conflict", "pod kept changing; retrying", requeue_after_s=0.5)
            except PodGoneError as exc:
                return Decision(Phase.FAILED, "PodGone", str(exc))
            except RefusedError as exc:
                return Decision(Phase.REFUSED, exc.reason, str(exc), event_on_pod=True)
            except InvalidError as exc:
                self.metrics.resizes.labels(result="invalid").inc()
                track.final_failure = f"resize rejected by the apiserver (not retried): {exc}"
                with self._lock:
                    self.gate.record_failure(uid, self._mono())
                self._post(pa, pod, "ResizeRejected", str(exc), warning=True, on_pod=True)
                return Decision(
                    Phase.FAILED, "Invalid", track.final_failure, applied_mcpu=decision.applied_mcpu
                )
            with self._lock:
                self.gate.record_applied(uid, self._mono())
            track.last_resize_at = self._clock()
            if result.patched:
                self.metrics.resizes.labels(
                    result="capped" if value != pa.spec.cpu_limit_mcpu else "applied"
                ).inc()
                self._post(pa, result.pod, "Resized", result.describe(), on_pod=True)
            with self._lock:
                self._pods[result.pod.key] = result.pod
            return Decision(
                Phase.PENDING,
                "Resizing",
                decision.message if value == decision.resize_to_mcpu else f"resizing to {format_cpu(value)}",
                applied_mcpu=result.pod.applied_limit_mcpu(list(result.plan.limits)),
                requeue_after_s=self.config.rules.min_interval_s if value != pa.spec.cpu_limit_mcpu else None,
            )
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- side effects

    def _post(
        self,
        pa: PodAllocation,
        pod: PodView | None,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        on_pod: bool = False,
    ) -> None:
        meta = pa.metadata
        self.events.post(
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
            self.events.post(
                ObjectRef("v1", "Pod", pod.namespace, pod.name, pod.uid), reason, message, warning=warning
            )

    def _write_status(
        self,
        body: Mapping[str, Any],
        decision: Decision | None,
        *,
        retrying: tuple[str, str] | None = None,
        last_applied: float | None = None,
    ) -> bool:
        """Merge-patch the allocation's status if it differs; returns whether it was written."""
        meta = body.get("metadata") or {}
        old = body.get("status") or {}
        now = dt.datetime.now(dt.UTC)
        generation = meta.get("generation") if isinstance(meta.get("generation"), int) else None
        try:
            old_status = PodAllocationStatus.model_validate(old) if old else PodAllocationStatus()
        except ValidationError:
            old_status = PodAllocationStatus()
        if decision is None:  # error path: keep phase and values, add a Retrying condition
            status = old_status.model_copy()
            status.conditions = [c for c in old_status.conditions if c.type != "Retrying"]
            assert retrying is not None
            status.conditions.append(
                self._condition(
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
                    self._condition(
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
        new_body = status.to_body()
        if _same_status(old, new_body):
            return False
        try:
            self.kube.request_json(
                "PATCH",
                f"/apis/{GROUP}/{VERSION}/namespaces/{meta.get('namespace')}/{PLURAL}/{meta.get('name')}/status",
                what=f"update status of {PLURAL} {meta.get('namespace')}/{meta.get('name')}",
                body={"status": new_body},
                content_type="application/merge-patch+json",
            )
        except NotFoundError:
            return False
        except KubeError as exc:
            log.warning("status update failed: %s", exc)
            return False
        key = _key(str(meta.get("namespace", "")), str(meta.get("name", "")))
        with self._lock:  # remember what we wrote so the next compare does not rewrite it
            cached = self._allocations.get(key)
            if cached is not None and (cached.get("metadata") or {}).get("uid") == meta.get("uid"):
                cached["status"] = new_body
        return True

    @staticmethod
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


def _same_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
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
