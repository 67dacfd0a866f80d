"""decide(): the trust order and the kubelet's answers, on pod bodies as the apiserver returns them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mbcas.api.contract import ContractSettings
from mbcas.api.models import Phase, PodAllocationSpec
from mbcas.controller.decide import decide
from mbcas.kube.podview import PodView
from mbcas.policy.resize import ResizeGate, ResizeRules

UID = "11111111-2222-3333-4444-555555555555"
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def pod(
    limit: str | None = "500m",
    applied: str | None = "500m",
    *,
    uid: str = UID,
    qos: str = "Burstable",
    conditions: list[dict[str, Any]] | None = None,
    generation: int = 1,
    observed: int = 1,
    managed_fields: list[dict[str, Any]] | None = None,
) -> PodView:
    res: dict[str, Any] = {"requests": {"cpu": "250m", "memory": "64Mi"}}
    if limit:
        res["limits"] = {"cpu": limit}
    status_res = {"limits": {"cpu": applied}} if applied else {}
    return PodView.from_body(
        {
            "metadata": {
                "name": "web",
                "namespace": "ns",
                "uid": uid,
                "resourceVersion": "7",
                "generation": generation,
                "managedFields": managed_fields or [],
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "resources": res}]},
            "status": {
                "qosClass": qos,
                "observedGeneration": observed,
                "conditions": conditions or [],
                "containerStatuses": [{"name": "app", "resources": status_res}],
            },
        }
    )


def spec(cpu: str = "1", *, mode: str = "enforce", node: str = "n1", age_s: float = 0) -> PodAllocationSpec:
    return PodAllocationSpec.model_validate(
        {
            "podName": "web",
            "podUID": UID,
            "nodeName": node,
            "cpuLimit": cpu,
            "mode": mode,
            "reason": "r",
            "decidedAt": NOW - dt.timedelta(seconds=age_s),
        }
    )


CONTRACT = ContractSettings(staleness_s=60, refresh_s=30)


def run(s: PodAllocationSpec, p: PodView | None, gate: ResizeGate | None = None, **kw: Any) -> Any:
    kw.setdefault("contract", CONTRACT)
    return decide(s, p, gate or ResizeGate(ResizeRules()), now=NOW.timestamp(), now_mono=100.0, **kw)


def test_trust_order() -> None:
    assert run(spec(), None).reason == "PodGone"
    assert run(spec(), pod(uid="99999999-2222-3333-4444-555555555555")).reason == "UIDMismatch"
    assert run(spec(node="n2"), pod()).reason == "NodeMismatch"
    rec = run(spec(mode="recommend"), pod())
    assert rec.phase is Phase.RECOMMENDED and rec.resize_to_mcpu is None and rec.applied_mcpu == 500
    assert run(spec(), pod(qos="Guaranteed")).reason == "GuaranteedPod"
    assert run(spec(age_s=120), pod()).reason == "Stale"
    assert run(spec(), pod(), final_failure="422 no").phase is Phase.FAILED


def test_apply_then_report_what_the_kubelet_says() -> None:
    d = run(spec("1"), pod())
    assert d.resize_to_mcpu == 1000 and d.phase is Phase.PENDING
    assert run(spec("1"), pod("1", "1")).phase is Phase.APPLIED
    assert run(spec("1"), pod("1", "500m")).reason == "InProgress"
    assert run(spec("1"), pod("1", "1", generation=2, observed=1)).phase is Phase.PENDING
    infeasible = [
        {"type": "PodResizePending", "status": "True", "reason": "Infeasible", "message": "no room"}
    ]
    d = run(spec("1"), pod("1", "500m", conditions=infeasible), own_generation=1)
    assert d.phase is Phase.INFEASIBLE and d.infeasible_mcpu == 1000 and "no room" in d.message
    deferred = [{"type": "PodResizePending", "status": "True", "reason": "Deferred"}]
    assert run(spec("1"), pod("1", "500m", conditions=deferred)).phase is Phase.DEFERRED


def test_stale_only_matters_when_something_is_to_be_applied() -> None:
    assert run(spec("1", age_s=600), pod("1", "1")).phase is Phase.APPLIED


def test_kubelet_busy_blocks_a_new_patch() -> None:
    busy = [{"type": "PodResizeInProgress", "status": "True"}]
    d = run(spec("2"), pod("1", "500m", conditions=busy))
    assert d.resize_to_mcpu is None and d.reason == "KubeletBusy"


def test_gate_rules_apply() -> None:
    gate = ResizeGate(ResizeRules(max_step_mcpu=300, max_step_ratio=10))
    d = run(spec("2"), pod(), gate)
    assert d.resize_to_mcpu == 800
    gate.record_applied(UID, 100.0)
    d = run(spec("2"), pod("800m", "800m"), gate)
    assert d.reason == "MinInterval" and d.requeue_after_s is not None and d.requeue_after_s > 0
    assert run(spec("505m"), pod(), ResizeGate(ResizeRules())).phase is Phase.APPLIED  # deadband


def test_a_decision_the_pod_carries_within_the_deadband_is_applied_however_old() -> None:
    # 505m on a 500m pod: within the deadband, so the agent counts it as applied and never
    # refreshes it; the controller must not call it stale later (it used to, once 60 s old).
    assert run(spec("505m", age_s=600), pod()).phase is Phase.APPLIED
    assert run(spec("505m", age_s=600), pod()).reason == "Deadband"


def test_the_deadband_and_staleness_come_from_the_contract() -> None:
    tight = ContractSettings(deadband_ratio=0.001, deadband_mcpu=1, staleness_s=60, refresh_s=30)
    d = run(spec("505m"), pod(), contract=tight)
    assert d.resize_to_mcpu == 505  # outside a 1m band: resized
    assert run(spec("1", age_s=100), pod(), contract=ContractSettings(staleness_s=300)).resize_to_mcpu == 1000


INFEASIBLE = [{"type": "PodResizePending", "status": "True", "reason": "Infeasible", "message": "no room"}]


def test_an_infeasible_resize_someone_else_made_is_not_blamed_on_the_allocation() -> None:
    # A user's memory resize is pending as Infeasible; the pod's CPU already equals the allocation.
    d = run(spec("1"), pod("1", "1", conditions=INFEASIBLE, generation=3, observed=3))
    assert d.infeasible_mcpu is None, "a CPU value the controller never asked for is recorded as infeasible"
    assert d.phase is Phase.APPLIED and "no room" in d.message


def test_an_infeasible_resize_is_recorded_only_when_the_controller_made_it() -> None:
    # The pod asks for our value but someone else put it there (no patch of ours): not recorded.
    d = run(spec("1"), pod("1", "500m", conditions=INFEASIBLE, generation=3, observed=3))
    assert d.phase is Phase.INFEASIBLE and d.infeasible_mcpu is None
    # Our patch produced generation 3 and nothing changed the pod since: ours, recorded.
    d = run(spec("1"), pod("1", "500m", conditions=INFEASIBLE, generation=3, observed=3), own_generation=3)
    assert d.phase is Phase.INFEASIBLE and d.infeasible_mcpu == 1000
    # Someone changed the pod after our patch (generation 4): not ours any more.
    d = run(spec("1"), pod("1", "500m", conditions=INFEASIBLE, generation=4, observed=4), own_generation=3)
    assert d.infeasible_mcpu is None


def test_an_allocation_for_another_node_is_deleted() -> None:
    d = run(spec(node="n2"), pod())
    assert d.reason == "NodeMismatch" and d.delete and d.resize_to_mcpu is None
    # A pod recreated under the name is a UID mismatch: refused, left to garbage collection.
    other = run(spec(node="n2"), pod(uid="99999999-2222-3333-4444-555555555555"))
    assert other.reason == "UIDMismatch" and not other.delete


def test_a_decision_from_the_future_beyond_the_skew_tolerance_is_stale() -> None:
    assert run(spec("1", age_s=-4), pod()).resize_to_mcpu == 1000  # 4 s ahead: clock skew, tolerated
    future = run(spec("1", age_s=-60), pod())
    assert future.phase is Phase.REFUSED and future.reason == "Stale" and "in the future" in future.message
    # The tolerance is the contract's max_future_skew_s (default 5 s, inclusive).
    lenient = ContractSettings(staleness_s=60, refresh_s=30, max_future_skew_s=120)
    assert run(spec("1", age_s=-60), pod(), contract=lenient).resize_to_mcpu == 1000
    assert run(spec("1", age_s=-5), pod()).resize_to_mcpu == 1000


def _resize_entry(manager: str, container: str = "app") -> dict[str, Any]:
    key = f'{{"name":"{container}"}}'
    return {
        "manager": manager,
        "operation": "Update",
        "subresource": "resize",
        "apiVersion": "v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:containers": {f"k:{key}": {"f:resources": {"f:limits": {"f:cpu": {}}}}}}},
    }


def test_overriding_a_manual_resize_is_flagged() -> None:
    manual = pod("700m", "700m", managed_fields=[_resize_entry("kubectl-patch")])
    d = run(spec("1"), manual)
    assert d.resize_to_mcpu == 1000 and d.manual_override == "kubectl-patch"
    ours = pod("700m", "700m", managed_fields=[_resize_entry("mbcas")])
    assert run(spec("1"), ours).manual_override is None
    created = pod("700m", "700m", managed_fields=[{**_resize_entry("kubectl-create"), "subresource": None}])
    assert run(spec("1"), created).manual_override is None  # the limit the pod was created with


def test_a_target_above_the_nodes_allocatable_cpu_is_clamped_to_it() -> None:
    # Issue 14 item 6: nothing bounded a target by the node; a 100-core decision on a 4-core node
    # was patched as is.
    wide = ResizeGate(ResizeRules(max_step_mcpu=1_000_000))
    d = run(spec("100"), pod(), wide, node_allocatable_mcpu=4000)
    assert d.resize_to_mcpu == 4000, d
    # At the clamp already: nothing to do, however large the decision.
    assert run(spec("100"), pod("4", "4"), wide, node_allocatable_mcpu=4000).phase is Phase.APPLIED


def test_a_pod_without_a_cpu_limit_steps_down_from_the_nodes_allocatable_cpu() -> None:
    # Issue 14 item 6: a pod with no limit can use the whole node; its first limit used to be the
    # target at once (60m in one step). It now steps from the node's allocatable CPU.
    gate = ResizeGate(ResizeRules())  # max_step_mcpu 2000, max_step_ratio 1.0
    d = run(spec("300m"), pod(None, None), gate, node_allocatable_mcpu=4000)
    assert d.resize_to_mcpu == 2000 and "step-capped" in d.message, d
    # A node smaller than one step: the step is relative to it (ratio 0.5 of 1000m -> 500m).
    half = ResizeGate(ResizeRules(max_step_ratio=0.5))
    assert run(spec("300m"), pod(None, None), half, node_allocatable_mcpu=1000).resize_to_mcpu == 500


def test_a_pod_without_a_cpu_limit_waits_for_the_nodes_allocatable_cpu() -> None:
    # No step can be taken from an unknown size: wait for the node rather than jump to the target.
    d = run(spec("300m"), pod(None, None))
    assert d.resize_to_mcpu is None and d.phase is Phase.PENDING and d.reason == "NodeUnknown", d
    assert d.requeue_after_s is not None
    # A pod with a limit does not need the node to step.
    assert run(spec("1"), pod()).resize_to_mcpu == 1000
