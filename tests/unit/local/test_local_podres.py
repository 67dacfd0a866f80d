"""Resource arithmetic of the node emulator on raw pod JSON (kubelet rules)."""

from __future__ import annotations

from typing import Any

import pytest

from mbcas.local.emulator import NodeSpec
from mbcas.local.kernel import cpu_quota_us, cpu_shares, cpu_weight
from mbcas.local.podres import Resources, cpu_millis, memory_bytes, pod_requests, qos_class


def _pod(*containers: dict[str, Any], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": "p"}, "spec": spec}


def _c(
    name: str, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    return {"name": name, "resources": res, **extra}


def test_quantities() -> None:
    assert cpu_millis("250m") == 250
    assert cpu_millis("1.5") == 1500
    assert cpu_millis(2) == 2000
    assert cpu_millis("0.0001") == 1  # rounded up to a whole millicore
    assert memory_bytes("8Gi") == 8 * 2**30
    assert memory_bytes("1M") == 1_000_000


def test_pod_requests_sum_containers_and_sidecars_and_take_the_largest_init() -> None:
    pod = _pod(
        _c("a", {"cpu": "100m", "memory": "10Mi"}),
        _c("b", {"cpu": "200m"}),
        init=[
            _c("setup", {"cpu": "2"}),
            _c("sidecar", {"cpu": "50m"}, restartPolicy="Always"),
        ],
    )
    assert pod_requests(pod) == Resources(2000, 10 * 2**20)  # the init container dominates CPU
    pod["spec"]["initContainers"][0]["resources"]["requests"]["cpu"] = "100m"
    assert pod_requests(pod) == Resources(350, 10 * 2**20)


def test_pod_requests_use_allocation_overrides_and_pod_level_resources() -> None:
    pod = _pod(_c("a", {"cpu": "100m"}), _c("b", {"cpu": "200m"}))
    assert pod_requests(pod, {"a": Resources(500, 0)}) == Resources(700, 0)
    pod["spec"]["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"}}
    assert pod_requests(pod) == Resources(1000, 2**30)


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([_c("a")], "BestEffort"),
        ([_c("a", {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
        ([_c("a", None, {"cpu": "1", "memory": "1Gi"})], "Guaranteed"),  # requests default to limits
        ([_c("a", {"cpu": "1000m", "memory": "1Gi"}, {"cpu": "1", "memory": "1024Mi"})], "Guaranteed"),
        ([_c("a", {"cpu": "1"}, {"cpu": "1"})], "Burstable"),  # no memory limit
        ([_c("a", {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}), _c("b")], "Burstable"),
        ([_c("a", {"cpu": "100m"})], "Burstable"),
    ],
)
def test_qos_class(containers: list[dict[str, Any]], expected: str) -> None:
    assert qos_class(_pod(*containers)) == expected


def test_kubelet_cpu_mappings() -> None:
    assert cpu_quota_us(None) is None
    assert cpu_quota_us(200) == 20_000
    assert cpu_quota_us(1) == 1_000  # the kubelet's minimum quota
    assert cpu_shares(None) == 2
    assert cpu_shares(1000) == 1024
    assert cpu_weight(None) == 1
    assert cpu_weight(1000) == 39


def test_node_spec_parse() -> None:
    assert NodeSpec.parse("n1") == NodeSpec("n1", "4", "8Gi")
    assert NodeSpec.parse("n2:2:4Gi").allocatable == Resources(2000, 4 * 2**30)
    for bad in ("", ":2", "n:2:4Gi:x", "n:lots"):
        with pytest.raises(ValueError):
            NodeSpec.parse(bad)
