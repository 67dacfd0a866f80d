"""The node loop: sense -> plan (estimate, want, bound, gate) -> write, once per tick.

:class:`NodeAgent` ties the adapters to the pure planner:

* **sense** — the pods bound to the node come from a watched cache (:class:`mbcas.kube.pods.NodePods`),
  their requests and limits counted as the kubelet counts them (native sidecars, init phases,
  pod-level resources); a pod the controller's split cannot resize (a container it leaves alone
  without a CPU limit, a pod-level CPU limit) is not managed and counts as unmanaged CPU, and a
  managed pod's limit never goes below what its held containers' limits plus the others' requests
  need;
  a terminating pod, or one gone from the API whose cgroup is still there (force-deleted), keeps
  counting as an unmanaged pod until its cgroup is gone: its CPU is not handed out while it runs;
  each pod's cgroup is resolved once through :class:`mbcas.cgroups.PodCgroupResolver` (cached, and
  re-resolved after a read error) and read by :class:`mbcas.cgroups.sampler.Sampler`; a pod whose
  cgroup cannot be read is held this tick (``usage`` NaN) and counted in
  ``mbcas_agent_read_errors_total{kind}``;
* **plan** — :class:`mbcas.policy.node.NodePlanner` on the monotonic clock, its decisions kept in
  the node's :class:`mbcas.policy.ledger.DecisionLedger`, which is restored at start-up from the
  allocations already in the API (an agent restart holds them instead of starting over);
* **write** — the contract's write rule (:func:`mbcas.api.contract.plan_writes`) compares the
  ledger's decisions with what the API holds: one PodAllocation per managed pod in ``enforce`` or
  ``recommend`` mode, written when its ``cpuLimit`` or ``mode`` changes; an unchanged ``enforce``
  decision the pod does not carry yet (outside the contract's deadband of its managed limit) is
  rewritten every ``contract.refresh_s`` so the controller never sees it stale; applied and
  ``recommend`` decisions are not rewritten; allocations of pods that left the node, or are no
  longer managed or written, are deleted. :class:`mbcas.kube.store.AllocationStore` only talks to
  the API. API errors start a backoff (:class:`mbcas.kube.backoff.Backoff`: jittered, doubling to
  ``api_backoff_max_s``, never shorter than the server's ``Retry-After``) during which the loop
  keeps sensing and planning but writes nothing; decisions are never queued, so after an outage
  only the current tick's plan is written.
* **infeasible** — when the managed pods' requests alone exceed the overcommit bound every limit
  stays at its floor; the agent posts one Warning Event on the Node when the condition starts and
  one Normal Event when it clears.

The live ConfigMap is followed by :class:`mbcas.agent.reload.LiveConfigReloader` (polled every
``config_poll_s``, the last good config kept, unknown keys named); a new :class:`LiveConfig` takes
effect at the next tick (planner settings and the contract's deadband swapped on the planner,
selectors, modes and the contract re-evaluated). The agent fails closed: until the ConfigMap has
been read once it only observes (senses, plans, exports metrics, writes and deletes nothing);
``kube-system`` and the agent's own namespace are never managed, whatever ``exclude_namespaces``
says.

Two clocks: ``mono`` (monotonic) for everything that is a duration (the planner's window and
holds, polling, backoff, liveness), ``clock`` (wall) only for ``decidedAt`` and the contract's
ages, which the controller compares with its own wall clock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from mbcas.agent.config import AgentConfig
from mbcas.agent.metrics import AgentMetrics
from mbcas.agent.reload import LiveConfigReloader
from mbcas.api.contract import plan_writes
from mbcas.api.live import LiveConfig, RolloutMode
from mbcas.api.models import Mode, PodAllocationSpec
from mbcas.api.selectors import LabelSelector
from mbcas.cgroups.errors import CgroupError, ErrorKind
from mbcas.cgroups.paths import PodCgroupResolver
from mbcas.cgroups.reader import CgroupReader
from mbcas.cgroups.sampler import Sampler, SenseError
from mbcas.core.units import parse_cpu_cores
from mbcas.kube.backoff import Backoff, BackoffPolicy
from mbcas.kube.client import Kube
from mbcas.kube.errors import ApiUnavailableError, KubeError, NotFoundError
from mbcas.kube.events import EventRecorder, ObjectRef
from mbcas.kube.pods import PodInfo
from mbcas.kube.store import AllocationStore
from mbcas.policy.ledger import DecisionLedger, Written
from mbcas.policy.node import NodeInputs, NodePlan, NodePlanner

__all__ = ["NodeAgent", "PodSource", "Sensed"]

log = logging.getLogger(__name__)


_CRD_MODE: dict[RolloutMode, Mode | None] = {
    RolloutMode.OBSERVE: None,
    RolloutMode.RECOMMEND: Mode.RECOMMEND,
    RolloutMode.ENFORCE: Mode.ENFORCE,
}


class PodSource(Protocol):
    """Where the agent gets the pods of its node (the watch cache, or a fixed dict in tests)."""

    @property
    def synced(self) -> bool: ...

    def pods(self) -> dict[str, PodInfo]: ...


@dataclass(frozen=True)
class Sensed:
    """One tick's input: the planner's arrays plus the pods they came from."""

    inputs: NodeInputs
    pods: tuple[PodInfo, ...]
    names: tuple[tuple[str, str], ...]
    errors: Mapping[str, SenseError]


class NodeAgent:
    """One node's loop (see module docs). ``kube=None`` or ``dry_run=True`` never writes."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        node: str,
        pods: PodSource,
        reader: CgroupReader,
        kube: Kube | None = None,
        metrics: AgentMetrics | None = None,
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.node = node
        self.source = pods
        self.kube = kube
        self.metrics = metrics or AgentMetrics()
        # With a ConfigMap to read, observe only (write nothing) until it has been read once.
        self.reloader = LiveConfigReloader(config, kube, self.metrics)
        self.live = self.reloader.initial()
        self._protected = config.protected_namespaces
        self.dry_run = dry_run or kube is None
        self.clock = clock
        self.mono = mono
        self.reader = reader
        self.resolver = PodCgroupResolver(reader.layout, prefix=config.cgroup_prefix)
        self.sampler = Sampler(reader, limits=False)  # limits come from the pod specs
        self.ledger = DecisionLedger()
        self.planner = NodePlanner(self.live.planner, self.ledger, deadband=self.live.contract.deadband)
        self.store = AllocationStore(kube, node) if kube is not None else None
        self.events = (
            EventRecorder(kube, component="mbcas-agent", instance=node) if kube is not None else None
        )
        self._selectors = self._compile(self.live)
        self._paths: dict[str, str] = {}
        self._spec_key: tuple[tuple[PodInfo, ...], LiveConfig] | None = None
        self._spec: tuple[NodeInputs, tuple[tuple[str, str], ...]] | None = None
        self._known: dict[str, PodInfo] = {}  # pods of the last tick (lingering ones included)
        self._allocatable: float | None = config.allocatable_cores
        self._node_read_at = -math.inf
        self._seeded = False
        self._backoff_until = -math.inf
        self._api_backoff = Backoff(
            BackoffPolicy(base_s=min(1.0, config.api_backoff_max_s), max_s=config.api_backoff_max_s)
        )
        self._infeasible = False
        self.last_plan: NodePlan | None = None
        self.last_tick_at: float | None = None
        self.ticks = 0

    # ------------------------------------------------------------------ config

    @staticmethod
    def _compile(live: LiveConfig) -> tuple[LabelSelector, LabelSelector]:
        return LabelSelector.parse(live.pod_selector), LabelSelector.parse(live.exclude_pod_selector)

    def apply_live(self, live: LiveConfig) -> None:
        """Switch to a new live configuration from the next tick on."""
        self.planner.policy = live.planner
        self.planner.deadband = live.contract.deadband
        self._selectors = self._compile(live)
        self.live = live

    # ------------------------------------------------------------------ sense

    def _eligible(self, pod: PodInfo) -> bool:
        live = self.live
        ns = pod.namespace
        if pod.terminating or ns in self._protected:
            return False
        if ns in live.exclude_namespaces or (live.include_namespaces and ns not in live.include_namespaces):
            return False
        include, exclude = self._selectors
        if not include.empty and not include.matches(pod.labels):
            return False
        return exclude.empty or not exclude.matches(pod.labels)

    def _relpath(self, pod: PodInfo) -> str | None:
        path = self._paths.get(pod.uid)
        if path is None:
            try:
                path = self.resolver.resolve(pod.uid, pod.qos).relpath
            except CgroupError as exc:
                self.metrics.read_errors.labels(exc.kind.value).inc()
                log.debug("no cgroup for %s/%s: %s", pod.namespace, pod.name, exc)
                return None
            self._paths[pod.uid] = path
        return path

    def sense(self) -> Sensed:
        """Read the pods and their cgroups into planner inputs (no API call)."""
        pods_by_uid = self._current_pods()
        pods = tuple(pods_by_uid[uid] for uid in sorted(pods_by_uid))
        uids = [p.uid for p in pods]
        known, paths = self._paths, {}
        for pod in pods:
            path = known.get(pod.uid) or self._relpath(pod)
            if path is not None:
                paths[pod.uid] = path
        results = self.sampler.sample(paths)
        errors = dict(results.errors)
        for uid, error in errors.items():
            if error.kind is not ErrorKind.BASELINE:
                self.metrics.read_errors.labels(error.kind.value).inc()
            if error.kind in (ErrorKind.NOT_FOUND, ErrorKind.VANISHED):
                self._paths.pop(uid, None)  # re-resolve next tick (container restarted?)
        spec, names = self._spec_inputs(pods, uids)
        return Sensed(replace(spec, signals=results.signals(uids)), pods, names, errors)

    def _spec_inputs(
        self, pods: tuple[PodInfo, ...], uids: list[str]
    ) -> tuple[NodeInputs, tuple[tuple[str, str], ...]]:
        """The planner's inputs that come from the pod specs and the live settings alone, and the
        pods' names, built again only when a pod or the settings change (the pod source hands out
        the same objects until a pod changes, so most ticks reuse the last arrays)."""
        key = (pods, self.live)
        if self._spec_key is not None and self._spec_key == key:
            assert self._spec is not None
            return self._spec
        n = len(pods)
        allow_restart = self.live.contract.allow_restart
        floors = [p.split_floor_mcpu(allow_restart=allow_restart) for p in pods]
        spec = NodeInputs.build(
            uids,
            np.fromiter((p.qos.code for p in pods), dtype=np.int8, count=n),
            eligible=np.fromiter(
                (self._eligible(p) and f is not None for p, f in zip(pods, floors, strict=True)),
                dtype=np.bool_,
                count=n,
            ),
            floor=np.fromiter((math.nan if f is None else f / 1000.0 for f in floors), float, count=n),
            request=np.fromiter(
                (math.nan if p.request_mcpu is None else p.request_mcpu / 1000.0 for p in pods),
                float,
                count=n,
            ),
            limit_mcpu=np.fromiter(
                (-1 if p.limit_mcpu is None else p.limit_mcpu for p in pods), np.int64, count=n
            ),
        )
        for array in (spec.qos, spec.eligible, spec.request, spec.limit, spec.limit_mcpu, spec.floor):
            array.setflags(write=False)  # shared by the ticks that reuse them
        self._spec_key, self._spec = key, (spec, tuple((p.namespace, p.name) for p in pods))
        return self._spec

    def _current_pods(self) -> dict[str, PodInfo]:
        """The source's pods, plus those gone from it whose cgroup is still read (they run until
        the kubelet removes it: a force-deleted pod, or the last moments of a deleted one)."""
        pods = dict(self.source.pods())
        for uid, info in self._known.items():
            if uid not in pods and uid in self._paths:
                pods[uid] = info if info.terminating else replace(info, terminating=True)
        for gone in set(self._known) - set(pods):
            self._paths.pop(gone, None)
            self.sampler.forget(gone)
        self._known = pods
        return pods

    # ------------------------------------------------------------------ node

    def refresh_node(self, now: float) -> None:
        if self.config.allocatable_cpu or self.kube is None:
            return
        if now - self._node_read_at < self.config.node_refresh_s and self._allocatable is not None:
            return
        try:
            body = self.kube.request_json("GET", f"/api/v1/nodes/{self.node}", what=f"read node {self.node}")
            self._allocatable = parse_cpu_cores(((body.get("status") or {}).get("allocatable") or {})["cpu"])
            self._node_read_at = now
        except (KubeError, KeyError, ValueError) as exc:
            log.warning("cannot read the allocatable CPU of node %s: %s", self.node, exc)
            self._node_read_at = now - self.config.node_refresh_s + min(5.0, self.config.node_refresh_s)

    @property
    def allocatable(self) -> float | None:
        return self._allocatable

    # ------------------------------------------------------------------ tick

    def tick(self) -> NodePlan | None:
        """One tick; returns the plan (None while the node's allocatable CPU is unknown)."""
        now = self.mono()
        live = self.reloader.poll(now, self.live)
        if live is not None:
            self.apply_live(live)
        self.refresh_node(now)
        if not self._seeded and not self.dry_run:
            self._seed(now)
        started = time.perf_counter()
        sensed = self.sense()
        if self._allocatable is None:
            return None
        solve_started = time.perf_counter()
        plan = self.planner.plan(now, self._allocatable, self.config.reserve_cores, sensed.inputs)
        finished = time.perf_counter()
        self.metrics.solve_seconds.observe(finished - solve_started)
        self.metrics.tick_seconds.observe(finished - started)
        self.metrics.observe_plan(plan, sensed.names, node=self.node)
        self._note_infeasible(plan)
        if not self.dry_run:
            self._write(now, self.clock(), plan, sensed)
        self.last_plan = plan
        self.last_tick_at = now
        self.ticks += 1
        return plan

    def run(self, stop: threading.Event) -> None:
        """Tick every ``tick_s`` until ``stop`` is set; one bad tick never ends the loop."""
        period = self.config.tick_s
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("agent tick failed; continuing")
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()
                delay = 0.0
            stop.wait(delay)

    # ------------------------------------------------------------------ writing

    def _seed(self, now: float) -> None:
        assert self.store is not None
        try:
            known = self.store.list()
        except KubeError as exc:
            log.warning("cannot list existing allocations yet: %s", exc)
            return
        self.ledger.restore(known, mono_now=now, wall_now=self.clock())
        self._seeded = True
        log.info("node %s: %d existing allocations re-learned", self.node, len(known))

    def _api_failed(self, now: float, exc: KubeError) -> None:
        delay = self._api_backoff.failed("api", exc)
        self._backoff_until = now + delay
        log.warning("API write failed, pausing writes for %.1fs: %s", delay, exc)

    def _write(self, now: float, wall: float, plan: NodePlan, sensed: Sensed) -> None:
        """Carry out the contract's write rule for this tick (``now`` monotonic, ``wall`` for
        ``decidedAt`` and the contract's ages)."""
        store = self.store
        if (
            store is None
            or not self.reloader.ready
            or now < self._backoff_until
            or not self._seeded
            or not self.source.synced
        ):
            return
        live = self.live
        allow_restart = live.contract.allow_restart
        writes = plan_writes(
            live.contract,
            wall,
            uids=plan.uids,
            decision_mcpu=np.where(plan.managed, plan.allocation_mcpu, -1),
            modes=[_CRD_MODE[live.mode_for(p.namespace)] for p in sensed.pods],
            managed_limit_mcpu=[
                -1 if (m := p.managed_limit_mcpu(allow_restart=allow_restart)) is None else m
                for p in sensed.pods
            ],
            written=self.ledger.written,
        )
        decided = datetime.fromtimestamp(wall, UTC)
        try:
            for up in writes.upserts:
                pod = sensed.pods[up.index]
                spec = PodAllocationSpec(
                    pod_name=pod.name,
                    pod_uid=pod.uid,
                    node_name=self.node,
                    cpu_limit_mcpu=up.mcpu,
                    mode=up.mode,
                    reason=plan.reason(up.index),
                    decided_at=decided,
                )
                try:
                    result = store.write(pod.namespace, spec, exists=pod.uid in self.ledger.written)
                except NotFoundError as exc:  # namespace or pod gone under us
                    self.metrics.api_writes.labels("write", "gone").inc()
                    log.info("pod %s/%s gone while writing: %s", pod.namespace, pod.name, exc)
                    continue
                except ApiUnavailableError:
                    raise  # the API is down: back off for every pod
                except KubeError as exc:  # this pod only (conflict, forbidden, invalid): next tick
                    self.metrics.api_writes.labels("write", exc.code).inc()
                    log.warning("PodAllocation for %s/%s not written: %s", pod.namespace, pod.name, exc)
                    continue
                self.ledger.wrote(pod.uid, Written(pod.namespace, pod.name, up.mcpu, up.mode.value, wall))
                self.metrics.api_writes.labels("write", result.value).inc()
            for uid in writes.deletes:
                last = self.ledger.written[uid]
                try:
                    store.delete(last.namespace, uid)
                except ApiUnavailableError:
                    raise
                except KubeError as exc:
                    self.metrics.api_writes.labels("delete", exc.code).inc()
                    log.warning("PodAllocation %s/%s not deleted: %s", last.namespace, uid, exc)
                    continue
                self.ledger.deleted(uid)
                self.metrics.api_writes.labels("delete", "deleted").inc()
        except KubeError as exc:
            self.metrics.api_writes.labels("write", exc.code).inc()
            if exc.retryable or exc.status is None:
                self._api_failed(now, exc)
            else:
                log.error("PodAllocation write refused: %s", exc)
            return
        self._api_backoff.success("api")

    def _note_infeasible(self, plan: NodePlan) -> None:
        if plan.infeasible == self._infeasible:
            return
        self._infeasible = plan.infeasible
        if plan.infeasible:
            log.warning("node %s: %s; holding every allocation", self.node, plan.infeasible_message)
        else:
            log.info("node %s: capacity covers the floors again; allocating", self.node)
        if self.events is None or self.dry_run:
            return
        node = ObjectRef("v1", "Node", "default", self.node, self.node)
        if plan.infeasible:
            self.events.post(node, "FloorsExceedCapacity", plan.infeasible_message, warning=True)
        else:
            self.events.post(node, "CapacityRecovered", "managed pods' floors fit the node again")

    # ------------------------------------------------------------------ probes

    def healthy(self) -> tuple[bool, str]:
        if self.last_tick_at is None:
            return True, "starting"
        age = self.mono() - self.last_tick_at
        limit = max(10.0, 5 * self.config.tick_s)
        return age < limit, f"last tick {age:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        if not self.source.synced:
            return False, "pod cache not synced"
        if self.last_plan is None:
            return False, "no tick yet"
        return True, f"{int(self.last_plan.managed.sum())} managed pods"
