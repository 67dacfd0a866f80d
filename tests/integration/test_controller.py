"""The controller on the real apiserver: PodAllocation -> in-place resize -> status, safety rules."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s
from pa_support import make_allocation, set_allocation

from helpers import make_pod, resize_pod, wait_for, wait_running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def custom(api_client: Any) -> Any:
    return k8s.CustomObjectsApi(api_client)


def _pa(custom: Any, ns: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object("mbcas.io", "v1alpha1", ns, "podallocations", name)


def _pod_limit(core_v1: Any, ns: str, name: str) -> tuple[str | None, str | None]:
    pod = core_v1.read_namespaced_pod(name, ns)
    spec = (pod.spec.containers[0].resources.limits or {}).get("cpu")
    st = pod.status.container_statuses[0].resources if pod.status.container_statuses else None
    return spec, ((st.limits or {}).get("cpu") if st else None)


def test_allocation_change_resizes_pod_and_reports_applied(
    core_v1: Any, custom: Any, namespace: str, node_emulator: Any, run_controller: Any
) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("web", "250m", "500m", memory_request="64Mi"))
    pod = wait_running(core_v1, namespace, "web")
    ctl = run_controller()
    custom.create_namespaced_custom_object(
        "mbcas.io", "v1alpha1", namespace, "podallocations", make_allocation(pod, "800m")
    )
    wait_for(lambda: _pod_limit(core_v1, namespace, "web") == ("800m", "800m"), message="pod resized to 800m")
    pa = wait_for(
        lambda: (
            (p := _pa(custom, namespace, pod.metadata.uid)).get("status", {}).get("phase") == "Applied" and p
        ),
        message="allocation Applied",
    )
    assert pa["status"]["appliedCPULimit"] == "800m"
    assert pa["status"]["observedGeneration"] == pa["metadata"]["generation"]
    events = core_v1.list_namespaced_event(namespace, field_selector="involvedObject.name=web").items
    assert any(e.reason == "Resized" for e in events)
    assert ctl.metrics.apply_latency._sum.get() > 0


def _events(core_v1: Any, ns: str, name: str) -> list[Any]:
    return core_v1.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items


def _phase(custom: Any, ns: str, name: str) -> str | None:
    return (_pa(custom, ns, name).get("status") or {}).get("phase")


def _message(custom: Any, ns: str, name: str) -> str:
    return str((_pa(custom, ns, name).get("status") or {}).get("message", ""))


def _create_pa(custom: Any, ns: str, body: dict[str, Any]) -> None:
    custom.create_namespaced_custom_object("mbcas.io", "v1alpha1", ns, "podallocations", body)


def test_guaranteed_pod_is_refused_with_an_event(
    core_v1: Any, custom: Any, namespace: str, node_emulator: Any, run_controller: Any
) -> None:
    core_v1.create_namespaced_pod(
        namespace, make_pod("g", "500m", "500m", memory_request="64Mi", memory_limit="64Mi")
    )
    pod = wait_running(core_v1, namespace, "g")
    run_controller()
    _create_pa(custom, namespace, make_allocation(pod, "1"))
    wait_for(lambda: _phase(custom, namespace, pod.metadata.uid) == "Refused", message="Refused")
    pa_events = wait_for(lambda: _events(core_v1, namespace, pod.metadata.uid), message="event on the PA")
    assert any(e.reason == "GuaranteedPod" and e.type == "Warning" for e in pa_events)
    assert any(e.reason == "GuaranteedPod" for e in _events(core_v1, namespace, "g"))
    assert _pod_limit(core_v1, namespace, "g") == ("500m", "500m")


def test_recommendation_is_never_applied(
    core_v1: Any, custom: Any, namespace: str, node_emulator: Any, run_controller: Any
) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("r", "250m", "500m", memory_request="64Mi"))
    pod = wait_running(core_v1, namespace, "r")
    run_controller()
    _create_pa(custom, namespace, make_allocation(pod, "900m", mode="recommend"))
    pa = wait_for(
        lambda: (
            (p := _pa(custom, namespace, pod.metadata.uid)).get("status", {}).get("phase") == "Recommended"
            and p
        ),
        message="Recommended",
    )
    assert "never applied" in pa["status"]["message"]
    assert _pod_limit(core_v1, namespace, "r") == ("500m", "500m")


def test_uid_mismatch_and_stale_decisions_are_refused(
    core_v1: Any, custom: Any, namespace: str, node_emulator: Any, run_controller: Any
) -> None:
    import datetime as dt
    import uuid

    core_v1.create_namespaced_pod(namespace, make_pod("u", "250m", "500m", memory_request="64Mi"))
    core_v1.create_namespaced_pod(namespace, make_pod("s", "250m", "500m", memory_request="64Mi"))
    pod_u = wait_running(core_v1, namespace, "u")
    pod_s = wait_running(core_v1, namespace, "s")
    run_controller(staleness_s=60)
    other_uid = str(uuid.uuid4())
    mismatch = make_allocation(pod_u, "900m", uid=other_uid, owner=False)
    mismatch["metadata"]["name"] = other_uid
    _create_pa(custom, namespace, mismatch)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    _create_pa(custom, namespace, make_allocation(pod_s, "900m", decided_at=old))
    wait_for(lambda: _phase(custom, namespace, other_uid) == "Refused", message="UID mismatch refused")
    wait_for(lambda: _phase(custom, namespace, pod_s.metadata.uid) == "Refused", message="stale refused")
    assert any(e.reason == "UIDMismatch" for e in _events(core_v1, namespace, other_uid))
    assert any(e.reason == "Stale" for e in _events(core_v1, namespace, pod_s.metadata.uid))
    assert _pod_limit(core_v1, namespace, "u") == ("500m", "500m")
    assert _pod_limit(core_v1, namespace, "s") == ("500m", "500m")
    # a fresh decision for the same pod is applied
    set_allocation(custom, namespace, pod_s.metadata.uid, "700m")
    wait_for(
        lambda: _phase(custom, namespace, pod_s.metadata.uid) == "Applied", message="fresh decision applied"
    )


def test_infeasible_is_remembered_and_not_retried(
    core_v1: Any, custom: Any, namespace: str, node_emulator: Any, run_controller: Any
) -> None:
    # Limits alone never make a resize infeasible (the kubelet checks requests), so someone else
    # raises the request beyond the 4-CPU node; the allocation then asks for that same limit.
    core_v1.create_namespaced_pod(namespace, make_pod("big", "250m", "500m", memory_request="64Mi"))
    pod = wait_running(core_v1, namespace, "big")
    resize_pod(core_v1, namespace, "big", cpu_request="5", cpu_limit="6")
    ctl = run_controller()
    _create_pa(custom, namespace, make_allocation(pod, "6"))
    pa = wait_for(
        lambda: (
            (p := _pa(custom, namespace, pod.metadata.uid)).get("status", {}).get("phase") == "Infeasible"
            and p
        ),
        message="Infeasible",
    )
    assert pa["status"]["appliedCPULimit"] == "500m"
    assert ctl.reconciler.gate.history(pod.metadata.uid).infeasible_mc == 6000
    assert any(e.reason == "Infeasible" for e in _events(core_v1, namespace, "big"))
    # the same or a larger value is never sent
    set_allocation(custom, namespace, pod.metadata.uid, "7")
    wait_for(
        lambda: (
            "not retried" in (_pa(custom, namespace, pod.metadata.uid).get("status") or {}).get("message")
        ),
        message="larger value blocked",
    )
    assert not [e for e in _events(core_v1, namespace, "big") if e.reason == "Resized"]
    assert _pod_limit(core_v1, namespace, "big") == ("6", "500m")


def test_deleted_pod_takes_its_allocation_with_it(
    core_v1: Any, custom: Any, namespace: str, node_emulator: Any, crd: str
) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("gc", "250m", "500m", memory_request="64Mi"))
    pod = wait_running(core_v1, namespace, "gc")
    _create_pa(custom, namespace, make_allocation(pod, "700m"))
    core_v1.delete_namespaced_pod("gc", namespace, body={"gracePeriodSeconds": 0})

    def gone() -> bool:
        try:
            _pa(custom, namespace, pod.metadata.uid)
        except k8s.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=60, message="allocation garbage-collected")
