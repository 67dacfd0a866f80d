"""The controller's engine: a work queue, and workers that reconcile allocations into resizes.

The :class:`Reconciler` is a :class:`~mbcas.controller.tracker.Tracker`: the kopf handlers (in
:mod:`mbcas.controller.main`) feed it the watch events of allocations, pods and nodes, which
update what it knows and enqueue the keys of the allocations concerned.

Worker threads take due keys and run :meth:`Reconciler.reconcile`:

1. parse the allocation (a malformed one is ``Failed``, never retried);
2. find its pod by UID (cache, else one GET by name);
3. :func:`~mbcas.controller.decide.decide` (pure) says what to report and what to patch;
4. an allocation that names another node than its pod's is deleted (with an Event);
5. before a resize the allocation is read once more, so a decision deleted while the watch was
   down is never applied; then :mod:`mbcas.controller.resize_step` patches the pod through the
   :class:`~mbcas.kube.actuator.Actuator`, only while this replica leads: a 409 re-reads the pod
   and tries once more, further conflicts back off; a 422 is final for that generation;
6. post Events (each resize, each refusal, each manual resize undone) and write the status only
   when it changed (:mod:`mbcas.controller.status` says what they hold; a 404 on the status write
   means the allocation is gone: forgotten like a delete);
7. requeue after what the decision asks (step-cap continuation, interval, cooldown, kubelet
   pending), and at most ``resync_s`` later: the periodic re-check goes through the queue.

Retries follow one :class:`~mbcas.kube.backoff.Backoff` (jittered, exponential, honouring
``Retry-After``): per allocation for conflicts and errors of one object; for the API as a whole
(unreachable, 429, 503, 504) a shared hold pauses every worker. Every ``resync_s`` a re-list of
the allocations (metadata only) drops those the list no longer has: a delete missed while the
watch was down leaves nothing behind. Only the leader works: followers keep their view warm and
process nothing; a new leader requeues everything it knows.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from mbcas.api.models import GROUP, PLURAL, VERSION, Phase, PodAllocation
from mbcas.controller.config import ControllerConfig
from mbcas.controller.decide import Decision, decide
from mbcas.controller.metrics import ControllerMetrics
from mbcas.controller.resize_step import ResizeStep
from mbcas.controller.shared import SharedSettings
from mbcas.controller.status import next_status, post_events, same_status
from mbcas.controller.tracker import Tracker, Tracking, allocation_key, metadata
from mbcas.core.units import QuantityError, parse_cpu
from mbcas.kube.actuator import Actuator
from mbcas.kube.backoff import Backoff, BackoffPolicy, is_overload
from mbcas.kube.client import Kube
from mbcas.kube.errors import (
    ConflictError,
    KubeError,
    NotFoundError,
    PodGoneError,
)
from mbcas.kube.events import EventRecorder
from mbcas.kube.podview import PodView
from mbcas.kube.workqueue import WorkQueue
from mbcas.policy.resize import ResizeGate

__all__ = ["RELIST_KEY", "Reconciler"]

log = logging.getLogger(__name__)

#: The work-queue key of the periodic re-list (never a valid ``namespace/name``).
RELIST_KEY = "\x00relist"

_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class Reconciler(ResizeStep, Tracker):
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
        super().__init__(ResizeGate(config.rules), WorkQueue(mono), mono)
        self.is_active = is_active
        self._clock = clock
        # One retry rule for everything: the configured failure cooldown as its base for errors,
        # a short base for conflicts (another writer raced us; the pod is re-read at once).
        rules = config.rules
        cap = max(rules.failure_cooldown_max_s, rules.failure_cooldown_s, 0.1)
        self.errors = Backoff(
            BackoffPolicy(
                base_s=max(rules.failure_cooldown_s, 0.1), factor=rules.failure_backoff_factor, max_s=cap
            )
        )
        self.conflicts = Backoff(BackoffPolicy(base_s=0.2, factor=2.0, max_s=min(cap, 30.0)))
        self._hold_until = -math.inf  # every worker waits until then (API overloaded or down)
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.queue.add(RELIST_KEY, config.resync_s)  # always scheduled: it re-adds itself

    def _drop(self, key: str) -> None:
        """Forget ``key`` (see :meth:`Tracker._drop`) and its conflict and error backoffs."""
        super()._drop(key)
        self.conflicts.forget(key)
        self.errors.forget(key)

    def requeue_all(self) -> None:
        """Enqueue every known allocation and a re-list (new leadership)."""
        with self._lock:
            keys = list(self._allocations)
        self.queue.add(RELIST_KEY)
        for key in keys:
            self.queue.add(key)

    # ----------------------------------------------------------------- workers

    def start(self) -> None:
        for i in range(self.config.workers):
            t = threading.Thread(target=self._work, name=f"mbcas-reconcile-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()

    def hold_remaining(self) -> float:
        """Seconds every worker still waits because the API as a whole is overloaded or down."""
        return max(0.0, self._hold_until - self._mono())

    def _work(self) -> None:
        while not self._stop.is_set():
            if not self.is_active():
                self._stop.wait(0.2)
                continue
            hold = self.hold_remaining()
            if hold > 0:
                self._stop.wait(min(hold, 0.5))
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
                requeue = self.errors.failure(key)
            finally:
                self.metrics.reconcile_seconds.observe(self._mono() - started)
                self.queue.done(key, requeue)
                self.metrics.queue_depth.set(len(self.queue))

    # ----------------------------------------------------------------- re-list

    def relist(self) -> float:
        """List the allocations (metadata only) and forget those the list no longer has; returns
        the delay until the next re-list."""
        path = (
            f"/apis/{GROUP}/{VERSION}/namespaces/{self.config.namespace}/{PLURAL}"
            if self.config.namespace
            else f"/apis/{GROUP}/{VERSION}/{PLURAL}"
        )
        started = self._mono()
        try:
            listing = self.kube.request_json("GET", path, what=f"list {PLURAL}", accept=_METADATA_LIST)
        except KubeError as exc:
            log.info("re-list of %s failed: %s", PLURAL, exc)
            return self._api_failed(RELIST_KEY, exc)
        self._api_ok()
        present = set()
        for item in (listing or {}).get("items") or []:
            m = metadata(item)
            present.add(
                (allocation_key(str(m.get("namespace", "")), str(m.get("name", ""))), str(m.get("uid", "")))
            )
        with self._lock:
            gone = [
                key
                for key, track in self._tracking.items()
                if (key, track.uid) not in present and track.event_at < started
            ]
        for key in gone:
            log.info("podallocation %s is gone (missed while the watch was down): forgotten", key)
            self._drop(key)
        return self.config.resync_s

    # ----------------------------------------------------------------- reconcile

    def _pod(self, pa: PodAllocation, *, fresh: bool = False) -> PodView | None:
        """The allocation's pod: cached by UID, else read by name (None when there is none)."""
        uid = pa.spec.pod_uid
        namespace = str(pa.metadata.get("namespace", ""))
        if not fresh:
            with self._lock:
                cached = self._pods.get(uid)
            if cached is not None:
                return cached
        try:
            view = self.actuator.get_pod(namespace, pa.spec.pod_name)
        except PodGoneError:
            with self._lock:
                self._pods.pop(uid, None)
            return None
        if view.uid == uid:
            with self._lock:
                if uid in self._by_uid:
                    self._pods[uid] = view
        return view

    def _api_ok(self) -> None:
        self.errors.forget("api")

    def _api_failed(self, key: str, exc: KubeError) -> float:
        """Back off after ``exc``: every worker for overload errors, ``key`` alone otherwise."""
        if is_overload(exc):
            delay = self.errors.failed("api", exc)
            with self._lock:
                self._hold_until = max(self._hold_until, self._mono() + delay)
            return delay
        return self.errors.failed(key, exc)

    def reconcile(self, key: str) -> float | None:
        """Reconcile one allocation; returns seconds until it should be looked at again (or None)."""
        if key == RELIST_KEY:
            return self.relist()
        with self._lock:
            body = self._allocations.get(key)
            track = self._tracking.get(key)
        if body is None or track is None:
            return None  # deleted meanwhile: nothing to re-create
        try:
            pa = PodAllocation.from_body(body)
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {"msg": str(exc)}
            decision = Decision(Phase.FAILED, "InvalidSpec", f"invalid spec: {first.get('msg')}")
            if self._write_status(key, body, decision) is None:
                self._drop(key)
            return None
        pod: PodView | None = None
        try:
            pod = self._pod(pa)
            decision = self._decide(pa, pod, track)
            if decision.delete and pod is not None:
                self._delete(key, pa, pod, decision)
                return None
            if decision.resize_to_mcpu is not None and pod is not None:
                confirmed = self._confirm(key, body)
                if confirmed is not True:
                    return confirmed
                decision = self._resize(key, pa, pod, decision, track)
        except KubeError as exc:
            # Reading or patching failed (API down, forbidden ...): back off with a condition.
            delay = self._api_failed(key, exc)
            self.metrics.resizes.labels(result="error").inc()
            if self._write_status(key, body, None, retrying=(exc.code, str(exc))) is None:
                self._drop(key)
                return None
            return delay
        self._api_ok()
        self.errors.forget(key)
        uid = pa.spec.pod_uid
        with self._lock:
            if decision.infeasible_mcpu is not None:
                self.gate.record_infeasible(uid, decision.infeasible_mcpu)
            elif pod is not None and pod.uid == uid and pod.resize.pending_reason != "Infeasible":
                self.gate.clear_infeasible(uid)  # the kubelet's condition cleared
        if decision.phase is Phase.APPLIED and not track.latency_observed:
            track.latency_observed = True
            self.metrics.apply_latency.observe(max(0.0, self._mono() - track.seen_at))
        changed = self._write_status(key, body, decision, last_applied=track.last_resize_at)
        if changed is None:
            self._drop(key)
            return None
        if changed and decision.refusal:
            self.metrics.refusals.labels(reason=decision.reason).inc()
            post_events(
                self.events,
                pa,
                pod,
                decision.reason,
                decision.message,
                warning=True,
                on_pod=decision.event_on_pod,
            )
        requeue = decision.requeue_after_s
        return self.config.resync_s if requeue is None else min(requeue, self.config.resync_s)

    def _decide(self, pa: PodAllocation, pod: PodView | None, track: Tracking) -> Decision:
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
                own_generation=track.own_generation,
                node_allocatable_mcpu=self._allocatable_mcpu(pod),
            )

    def _allocatable_mcpu(self, pod: PodView | None) -> int | None:
        """The allocatable CPU of ``pod``'s node as last seen (None: not seen, or unparsable)."""
        cpu = self._node_cpu.get(pod.node_name or "") if pod is not None else None
        try:
            return parse_cpu(cpu) if cpu else None
        except QuantityError:
            return None

    def _confirm(self, key: str, body: Mapping[str, Any]) -> bool | float | None:
        """Read the allocation before acting on it: True to go on; None when it is gone (forgotten
        at once); 0 when it changed (requeue now: the fresh body replaces the one we had)."""
        meta = metadata(body)
        try:
            fresh = self.kube.request_json(
                "GET",
                f"/apis/{GROUP}/{VERSION}/namespaces/{meta.get('namespace')}/{PLURAL}/{meta.get('name')}",
                what=f"read {PLURAL} {key}",
            )
        except NotFoundError:
            log.info("podallocation %s is gone (missed while the watch was down): not applied", key)
            self._drop(key)
            return None
        fresh_meta = metadata(fresh)
        if fresh_meta.get("uid") == meta.get("uid") and fresh_meta.get("generation") == meta.get(
            "generation"
        ):
            return True
        self.on_allocation("MODIFIED", fresh)
        return 0.0

    def _delete(self, key: str, pa: PodAllocation, pod: PodView, decision: Decision) -> None:
        """Delete an allocation that names another node than its pod's (precondition: its UID)."""
        meta = pa.metadata
        if not self.is_active():
            return
        with contextlib.suppress(NotFoundError, ConflictError):  # gone, or replaced (its events follow)
            self.kube.request_json(
                "DELETE",
                f"/apis/{GROUP}/{VERSION}/namespaces/{meta.get('namespace')}/{PLURAL}/{meta.get('name')}",
                what=f"delete {PLURAL} {key}",
                body={"preconditions": {"uid": meta.get("uid")}},
            )
        self.metrics.refusals.labels(reason=decision.reason).inc()
        post_events(self.events, pa, pod, decision.reason, decision.message, warning=True, on_pod=False)
        self._drop(key)

    # ----------------------------------------------------------------- status

    def _write_status(
        self,
        key: str,
        body: Mapping[str, Any],
        decision: Decision | None,
        *,
        retrying: tuple[str, str] | None = None,
        last_applied: float | None = None,
    ) -> bool | None:
        """Merge-patch the allocation's status (:func:`~mbcas.controller.status.next_status`) if it
        differs: whether it was written; None when the allocation is gone (404)."""
        meta = metadata(body)
        old = body.get("status") or {}
        generation = meta.get("generation") if isinstance(meta.get("generation"), int) else None
        new_body = next_status(
            old, decision, generation=generation, retrying=retrying, last_applied=last_applied
        )
        if same_status(old, new_body):
            return False
        if not self.is_active():
            return False
        try:
            self.kube.request_json(
                "PATCH",
                f"/apis/{GROUP}/{VERSION}/namespaces/{meta.get('namespace')}/{PLURAL}/{meta.get('name')}/status",
                what=f"update status of {PLURAL} {key}",
                body={"status": new_body},
                content_type="application/merge-patch+json",
            )
        except NotFoundError:
            return None
        except KubeError as exc:
            log.warning("status update failed: %s", exc)
            return False
        with self._lock:  # remember what we wrote so the next compare does not rewrite it
            cached = self._allocations.get(key)
            if cached is not None and metadata(cached).get("uid") == meta.get("uid"):
                cached["status"] = new_body
        return True
