"""The controller on the real apiserver: PodAllocation -> in-place resize -> status, safety rules."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from helpers import make_pod, wait_for, wait_running
from kubernetes import client as k8s
from pa_support import crd, make_allocation, run_controller, set_allocation  # noqa: F401

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
    events = core_v1.list_namespaced_event(namespace, field_selector=f"involvedObject.name=web").items
    assert any(e.reason == "Resized" for e in events)
    assert ctl.metrics.apply_latency._sum.get() > 0  # noqa: SLF001 - a latency was observed
