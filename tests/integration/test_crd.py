"""The PodAllocation CRD on the real apiserver: schema rejects bad objects, printer columns show."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client as k8s

pytestmark = pytest.mark.integration

UID = "0b6f3a52-1c1d-4c55-9d7e-0f3e2f1a9b10"
GOOD: dict[str, Any] = {
    "apiVersion": "mbcas.io/v1alpha1",
    "kind": "PodAllocation",
    "metadata": {"name": UID},
    "spec": {
        "podName": "web",
        "podUID": UID,
        "nodeName": "mbcas-node-1",
        "cpuLimit": "750m",
        "reason": "throttled 30%",
        "decidedAt": "2026-01-01T00:00:00Z",
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    section, _, field = path.partition(".")
    if value is None:
        del body[section][field]
    else:
        body[section][field] = value
    return body


@pytest.fixture
def custom(api_client: Any, crd: str) -> Any:
    return k8s.CustomObjectsApi(api_client)


def test_valid_object_is_accepted_with_defaults(custom: Any, namespace: str) -> None:
    made = custom.create_namespaced_custom_object("mbcas.io", "v1alpha1", namespace, "podallocations", GOOD)
    assert made["spec"]["mode"] == "enforce"  # schema default


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.cpuLimit", "-1"),
        ("spec.cpuLimit", "0"),
        ("spec.cpuLimit", "0m"),
        ("spec.cpuLimit", "0.000"),
        ("spec.cpuLimit", "1.5x"),
        ("spec.cpuLimit", "abc"),
        ("spec.cpuLimit", ""),
        ("spec.mode", "yolo"),
        ("spec.podUID", "not a uid!"),
        ("spec.podName", None),
        ("spec.cpuLimit", None),
        ("spec.decidedAt", None),
        ("spec.decidedAt", "yesterday"),
        ("spec.reason", ""),
        ("spec.cpuLimit", "999999999999999"),
        ("spec.cpuLimit", "4097"),
        ("spec.cpuLimit", "4096001m"),
        ("spec.podName", "web/../other"),
        ("spec.podName", "Web"),
        ("spec.nodeName", "node/a"),
        ("spec.nodeName", "-node"),
    ],
)
def test_schema_rejects_bad_spec(custom: Any, namespace: str, path: str, value: Any) -> None:
    with pytest.raises(k8s.ApiException) as info:
        custom.create_namespaced_custom_object(
            "mbcas.io", "v1alpha1", namespace, "podallocations", _with(path, value)
        )
    assert info.value.status == 422, info.value.body


@pytest.mark.parametrize("cpu", ["4096", "4096000m", "1m", "0.5"])
def test_cpu_limits_up_to_the_maximum_are_accepted(custom: Any, namespace: str, cpu: str) -> None:
    custom.create_namespaced_custom_object(
        "mbcas.io", "v1alpha1", namespace, "podallocations", _with("spec.cpuLimit", cpu)
    )


def test_the_name_must_be_the_pods_uid(custom: Any, namespace: str) -> None:
    other = "9d8c7b6a-1c1d-4c55-9d7e-0f3e2f1a9b10"
    body = _with("spec.podUID", other)  # named by UID, but for another pod: a squatted name
    with pytest.raises(k8s.ApiException) as info:
        custom.create_namespaced_custom_object("mbcas.io", "v1alpha1", namespace, "podallocations", body)
    assert info.value.status == 422 and "metadata.name must equal spec.podUID" in info.value.body
    body["metadata"]["name"] = other
    custom.create_namespaced_custom_object("mbcas.io", "v1alpha1", namespace, "podallocations", body)


@pytest.mark.parametrize(
    "status",
    [{"phase": "Exploded"}, {"phase": "Applied", "appliedCPULimit": "-5"}, {"observedGeneration": -1}],
)
def test_schema_rejects_bad_status(custom: Any, namespace: str, status: dict[str, Any]) -> None:
    custom.create_namespaced_custom_object("mbcas.io", "v1alpha1", namespace, "podallocations", GOOD)
    with pytest.raises(k8s.ApiException) as info:
        custom.patch_namespaced_custom_object_status(
            "mbcas.io",
            "v1alpha1",
            namespace,
            "podallocations",
            UID,
            {"status": status},
            _content_type="application/merge-patch+json",
        )
    assert info.value.status == 422, info.value.body


def test_printer_columns_in_kubectl(control_plane: Any, custom: Any, namespace: str) -> None:
    custom.create_namespaced_custom_object("mbcas.io", "v1alpha1", namespace, "podallocations", GOOD)
    custom.patch_namespaced_custom_object_status(
        "mbcas.io",
        "v1alpha1",
        namespace,
        "podallocations",
        UID,
        {"status": {"phase": "Applied", "appliedCPULimit": "750m"}},
        _content_type="application/merge-patch+json",
    )
    out = control_plane.kubectl("get", "pa", "-n", namespace, check=True).stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "POD", "NODE", "DESIRED", "APPLIED", "PHASE", "REASON", "AGE"]
    assert row.split()[:6] == [UID, "web", "mbcas-node-1", "750m", "750m", "Applied"]
    wide = control_plane.kubectl("get", "podallocations", "-n", namespace, "-o", "wide", check=True).stdout
    assert "MODE" in wide.splitlines()[0] and "enforce" in wide
