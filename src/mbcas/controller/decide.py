"""The controller's decision for one PodAllocation against the live pod: pure, no I/O.

:func:`decide` compares what the allocation wants with the pod's spec and status and returns a
:class:`Decision`: the phase and reason to report, and the pod-level limit to patch now (if
any). The order of the checks is the trust order:

1. the pod is missing -> ``Failed`` (``PodGone``; the allocation is garbage-collected with it);
2. the live pod has another UID -> ``Refused`` (``UIDMismatch``): a pod recreated under the same
   name never gets an old decision; the pod runs on another node than ``spec.nodeName`` ->
   ``NodeMismatch`` with ``delete``: the allocation was written by an agent that does not run
   the pod (a squatter, since the name is the pod's UID), so the controller deletes it, which
   frees the name for the pod's own agent;
3. ``mode: recommend`` -> ``Recommended``, never applied;
4. QoS and container rules (:mod:`mbcas.policy.resize_split`) -> ``Refused`` with their reason;
   the allocation is the pod's whole limit: only what the containers left alone (native sidecars,
   ``RestartContainer`` ones) do not hold is split, and a pod where one of those has no CPU
   limit is refused (``UnlimitedContainer``);
5. the pod already asks for the target: report what the kubelet says — ``Applied`` once the
   status shows it and ``observedGeneration`` caught up, ``Infeasible``/``Deferred`` from
   ``PodResizePending``, ``Failed`` on a kubelet ``Error``, else ``Pending``. An ``Infeasible``
   is recorded against the value only when the pending resize is the controller's own (the pod's
   ``metadata.generation`` is the one its last patch produced); another writer's infeasible
   resize (a user's memory change, say) is reported but never blamed on the allocation;
6. the pod already carries the decision in the contract's sense
   (:func:`mbcas.api.contract.carries`: its managed limit is within the deadband of it) ->
   ``Applied`` (``Deadband``) once the kubelet settled, never resized;
7. the kubelet is still busy with an earlier resize -> wait (``Pending``);
8. the decision is stale in the contract's sense (:func:`mbcas.api.contract.is_stale`: older than
   ``staleness_s``, or dated in the future beyond the clock-skew tolerance) -> ``Refused``
   (``Stale``);
9. a 422 already rejected this generation -> ``Failed``, not retried until the spec changes;
10. the :class:`~mbcas.policy.resize.ResizeGate` (infeasible memory, cooldown, interval, rate,
    step cap) -> apply now, wait, or skip. A pod without a CPU limit can use its whole node, so
    its first limit is a step down from the node's allocatable CPU; until that is known it waits
    (``NodeUnknown``). Applying over a CPU limit another field manager set
    through ``resize`` (a manual ``kubectl``/``mbcas resize``) sets ``manual_override`` so the
    caller can say so in an Event.

Every target is clamped to the allocatable CPU of the pod's node first: a limit above it means
nothing and a typo would otherwise be patched as is.

The agent judges "applied" and refreshes decisions with the same contract functions and
settings, so a decision it leaves alone is one the controller leaves alone too.
"""

from __future__ import annotations

from dataclasses import dataclass

from mbcas.api.contract import ContractSettings, carries, is_stale
from mbcas.api.models import Phase, PodAllocationSpec
from mbcas.core.units import format_cpu
from mbcas.kube.actuator import FIELD_MANAGER
from mbcas.kube.podview import PodView
from mbcas.policy.resize import GateAction, ResizeGate
from mbcas.policy.resize_split import SplitRefusedError, plan_container_limits

__all__ = ["Decision", "decide"]

REFUSAL_PHASES = frozenset({Phase.REFUSED, Phase.INFEASIBLE})


@dataclass(frozen=True)
class Decision:
    """What to report and what to do for one allocation."""

    phase: Phase
    reason: str
    message: str
    resize_to_mcpu: int | None = None  # pod-level limit to patch now
    applied_mcpu: int | None = None  # what the kubelet reports as applied (for status)
    requeue_after_s: float | None = None
    infeasible_mcpu: int | None = None  # remember this value as infeasible for the pod
    event_on_pod: bool = False  # also post the event on the pod (not just the allocation)
    delete: bool = False  # delete the allocation (it names a pod that runs on another node)
    manual_override: str | None = None  # field manager of the manual resize this one undoes

    @property
    def refusal(self) -> bool:
        return self.phase in REFUSAL_PHASES


def decide(
    spec: PodAllocationSpec,
    pod: PodView | None,
    gate: ResizeGate,
    *,
    now: float,
    now_mono: float,
    contract: ContractSettings,
    final_failure: str | None = None,
    resync_s: float = 30.0,
    own_generation: int | None = None,
    node_allocatable_mcpu: int | None = None,
) -> Decision:
    """Decide for ``spec`` given the live ``pod`` (None when it does not exist).

    ``now`` is wall-clock epoch seconds (for staleness of ``decidedAt``); ``now_mono`` is the
    monotonic clock the gate runs on; ``contract`` the shared settings (deadband, staleness,
    ``allow_restart``). ``final_failure`` is the message of a 422 that already rejected this
    generation. ``own_generation`` is the pod ``metadata.generation`` the controller's last
    accepted resize patch of this pod produced (None if it made none). ``node_allocatable_mcpu``
    is the allocatable CPU of the pod's node (None: not known yet): no target exceeds it, and a
    pod without a CPU limit steps down from it.
    """
    target = spec.cpu_limit_mcpu
    if node_allocatable_mcpu is not None and node_allocatable_mcpu > 0:
        target = min(target, node_allocatable_mcpu)
    if pod is None:
        return Decision(Phase.FAILED, "PodGone", f"pod {spec.pod_name} not found")
    if pod.uid != spec.pod_uid:
        return Decision(
            Phase.REFUSED,
            "UIDMismatch",
            f"pod {pod.key} has UID {pod.uid}, the allocation is for {spec.pod_uid} (pod was recreated)",
        )
    if pod.node_name != spec.node_name:
        return Decision(
            Phase.REFUSED,
            "NodeMismatch",
            f"pod {pod.key} runs on {pod.node_name or 'no node'}, the allocation names node "
            f"{spec.node_name}: deleting it",
            event_on_pod=True,
            delete=True,
        )
    if spec.mode.value == "recommend":
        return Decision(
            Phase.RECOMMENDED,
            "Recommendation",
            f"recommendation only ({format_cpu(target)}): never applied",
            applied_mcpu=pod.applied_limit_mcpu(),
        )
    try:
        plan = plan_container_limits(target, pod.cpu, qos=pod.qos, allow_restart=contract.allow_restart)
    except SplitRefusedError as exc:
        return Decision(Phase.REFUSED, exc.reason, f"pod {pod.key}: {exc.message}", event_on_pod=True)
    names = list(plan.limits)
    spec_now, applied = pod.limits_of(plan)
    if all((c := pod.container(n)) is not None and c.cpu_limit_mcpu == v for n, v in plan.limits.items()):
        ours = own_generation is not None and pod.generation == own_generation
        return _report(pod, plan.total_mcpu, applied, resync_s, own_resize=ours)
    if carries(contract, spec_now, target):
        # Within the contract's deadband of the current limit: the agent counts it as applied (so
        # it never refreshes it, and it is never stale).
        return _within_deadband(pod, applied, spec_now, resync_s)
    if pod.resize.in_progress or not pod.generation_observed:
        return Decision(
            Phase.PENDING,
            "KubeletBusy",
            "waiting for the kubelet to settle the previous resize",
            applied_mcpu=applied,
            requeue_after_s=resync_s,
        )
    decided = spec.decided_at.timestamp()
    if is_stale(contract, decided, now):
        why = (
            f"is older than {contract.staleness_s:g}s (agent down?)"
            if decided <= now
            else f"is more than {contract.max_future_skew_s:g}s in the future (clock skew?)"
        )
        return Decision(
            Phase.REFUSED,
            "Stale",
            f"decision made at {spec.decided_at.isoformat()} {why}",
            applied_mcpu=applied,
        )
    if final_failure is not None:
        return Decision(Phase.FAILED, "Invalid", final_failure, applied_mcpu=applied)
    if spec_now is None and node_allocatable_mcpu is None:
        return Decision(
            Phase.PENDING,
            "NodeUnknown",
            f"pod {pod.key} has no CPU limit: its first limit steps down from the allocatable CPU of"
            f" node {pod.node_name}, which is not known yet",
            applied_mcpu=applied,
            requeue_after_s=resync_s,
        )
    verdict = gate.evaluate(
        pod.uid,
        spec_now,
        plan.total_mcpu,
        now_mono,
        deadband=contract.deadband,
        unlimited_mcpu=node_allocatable_mcpu,
    )
    if verdict.action is GateAction.APPLY:
        manual = sorted({m for n in names for m in pod.resize_owners(n)} - {FIELD_MANAGER})
        mine = any(FIELD_MANAGER in pod.resize_owners(n) for n in names)
        return Decision(
            Phase.PENDING,
            "Resizing",
            verdict.message,
            resize_to_mcpu=verdict.value,
            applied_mcpu=applied,
            manual_override=", ".join(manual) if manual and not mine else None,
        )
    if verdict.action is GateAction.WAIT:
        return Decision(
            Phase.PENDING,
            verdict.reason,
            verdict.message,
            applied_mcpu=applied,
            requeue_after_s=verdict.retry_after_s,
        )
    if verdict.action is GateAction.BLOCKED:
        return Decision(Phase.INFEASIBLE, "Infeasible", verdict.message, applied_mcpu=applied)
    return _within_deadband(pod, applied, spec_now, resync_s)  # the gate skipped it


def _within_deadband(pod: PodView, applied: int | None, spec_now: int | None, resync_s: float) -> Decision:
    """The current limit is close enough: ``Applied`` once the kubelet shows it, else wait."""
    if applied is not None and applied == spec_now and pod.resize.settled:
        return Decision(
            Phase.APPLIED,
            "Deadband",
            f"within the deadband of the current limit {format_cpu(applied)}",
            applied_mcpu=applied,
        )
    return Decision(
        Phase.PENDING,
        "KubeletBusy",
        "waiting for the kubelet",
        applied_mcpu=applied,
        requeue_after_s=resync_s,
    )


def _report(pod: PodView, total: int, applied: int | None, resync_s: float, *, own_resize: bool) -> Decision:
    """The pod already asks for the target: what does the kubelet say?"""
    res = pod.resize
    if res.pending_reason == "Infeasible":
        why = res.pending_message or "infeasible"
        if own_resize:
            return Decision(
                Phase.INFEASIBLE,
                "Infeasible",
                f"node cannot fit {format_cpu(total)}: {why}",
                applied_mcpu=applied,
                infeasible_mcpu=total,
                event_on_pod=True,
            )
        if applied == total:
            return Decision(
                Phase.APPLIED,
                "Applied",
                f"CPU limit {format_cpu(total)} applied (the kubelet finds another pending resize of "
                f"the pod infeasible: {why})",
                applied_mcpu=applied,
            )
        return Decision(
            Phase.INFEASIBLE,
            "Infeasible",
            f"the kubelet finds the pod's pending resize infeasible (not a change MBCAS made): {why}",
            applied_mcpu=applied,
            event_on_pod=True,
        )
    if res.pending_reason is not None:
        phase, reason = Phase.DEFERRED, "Deferred"
        text = f"kubelet deferred the resize to {format_cpu(total)}: {res.pending_message or 'deferred'}"
    elif res.error is not None:
        phase, reason, text = Phase.FAILED, "KubeletError", f"kubelet failed to resize: {res.error}"
    elif applied == total and pod.generation_observed and res.settled:
        return Decision(
            Phase.APPLIED, "Applied", f"CPU limit {format_cpu(total)} applied", applied_mcpu=applied
        )
    else:
        phase, reason = Phase.PENDING, "InProgress"
        text = f"waiting for the kubelet to apply {format_cpu(total)}"
    return Decision(phase, reason, text, applied_mcpu=applied, requeue_after_s=resync_s)
