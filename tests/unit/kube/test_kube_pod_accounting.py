"""A pod's CPU request and limit are counted the way the kubelet counts them (issue 14 item 1):
containers plus native sidecars (restartable init containers), the largest init phase for
requests, pod-level resources where set. The agent's pod cache parses pod bodies like these."""

from __future__ import annotations

from typing import Any

from mbcas.core.qos import QoSClass
from mbcas.kube.pods import PodInfo
from mbcas.kube.podview import PodView
from mbcas.policy.resize_split import plan_container_limits

UID = "11111111-2222-3333-4444-555555555555"


def _res(request: str | None, limit: str | None, memory: str = "64Mi") -> dict[str, Any]:
    res: dict[str, Any] = {"requests": {"memory": memory}, "limits": {"memory": memory}}
    if request is not None:
        res["requests"]["cpu"] = request
    if limit is not None:
        res["limits"]["cpu"] = limit
    return res


def _body(
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
    *,
    qos: str | None = None,
    pod_resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": "n1", "containers": containers}
    if init:
        spec["initContainers"] = init
    if pod_resources:
        spec["resources"] = pod_resources
    status: dict[str, Any] = {"phase": "Running"}
    if qos:
        status["qosClass"] = qos
    return {"metadata": {"namespace": "shop", "name": "web", "uid": UID}, "spec": spec, "status": status}


def _sidecar(name: str, request: str | None, limit: str | None) -> dict[str, Any]:
    return {"name": name, "restartPolicy": "Always", "resources": _res(request, limit)}


def test_a_guaranteed_pod_with_a_native_sidecar_counts_it() -> None:
    # It used to be counted at 2000m: the sidecar was never parsed.
    body = _body(
        [{"name": "app", "resources": _res("2", "2")}],
        [_sidecar("proxy", "1", "1")],
        qos="Guaranteed",
    )
    pod = PodInfo.from_body(body)
    assert pod.qos is QoSClass.GUARANTEED
    assert (pod.request_mcpu, pod.limit_mcpu) == (3000, 3000)


def test_a_burstable_pods_request_includes_its_sidecar() -> None:
    body = _body(
        [{"name": "app", "resources": _res("500m", "1")}],
        [_sidecar("proxy", "250m", "500m")],
    )
    pod = PodInfo.from_body(body)
    assert pod.qos is QoSClass.BURSTABLE  # computed over every container, init ones included
    assert (pod.request_mcpu, pod.limit_mcpu) == (750, 1500)
    # The sidecar is held (never resized) and part of the pod's limit.
    assert pod.managed_limit_mcpu(allow_restart=False) == 1500
    assert pod.split_floor_mcpu(allow_restart=False) == 500 + 500


def test_the_largest_init_phase_counts_when_it_is_bigger() -> None:
    # An ordinary init container runs next to the sidecars declared before it, alone otherwise.
    body = _body(
        [{"name": "app", "resources": _res("200m", "400m")}],
        [
            _sidecar("early", "100m", "200m"),
            {"name": "migrate", "resources": _res("1500m", "2")},
            _sidecar("late", "100m", "200m"),
        ],
    )
    pod = PodInfo.from_body(body)
    assert pod.request_mcpu == 1500 + 100  # migrate + early > app + early + late (400m)
    assert pod.limit_mcpu == 2000 + 200
    small = _body(
        [{"name": "app", "resources": _res("200m", "400m")}],
        [{"name": "migrate", "resources": _res("100m", "100m")}, _sidecar("late", "100m", "200m")],
    )
    assert PodInfo.from_body(small).request_mcpu == 300


def test_pod_level_resources_win_and_the_split_leaves_such_a_pod_alone() -> None:
    body = _body(
        [{"name": "app", "resources": _res("200m", None)}],
        pod_resources={"requests": {"cpu": "1"}, "limits": {"cpu": "2"}},
    )
    pod = PodInfo.from_body(body)
    assert (pod.request_mcpu, pod.limit_mcpu) == (1000, 2000)
    assert pod.split_floor_mcpu(allow_restart=False) is None  # resizing containers cannot change it
    assert pod.managed_limit_mcpu(allow_restart=False) is None


def test_a_container_without_a_limit_leaves_the_pod_unlimited() -> None:
    body = _body([{"name": "app", "resources": _res("200m", "400m")}], [_sidecar("proxy", "50m", None)])
    pod = PodInfo.from_body(body)
    assert (pod.request_mcpu, pod.limit_mcpu) == (250, None)
    assert pod.split_floor_mcpu(allow_restart=False) is None  # the sidecar is unbounded


def test_the_controller_view_counts_held_limits_in_the_pods_limit() -> None:
    body = _body(
        [
            {"name": "app", "resources": _res("250m", "2")},
            {
                "name": "db",
                "resources": _res("1", "2"),
                "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "RestartContainer"}],
            },
        ],
        qos="Burstable",
    )
    body["status"]["containerStatuses"] = [
        {"name": "app", "resources": {"limits": {"cpu": "2"}}},
        {"name": "db", "resources": {"limits": {"cpu": "2"}}},
    ]
    view = PodView.from_body(body)
    plan = plan_container_limits(2500, view.cpu, qos=view.qos)
    assert plan.limits == {"app": 500}  # 2500m - db's 2000m, not 2500m (the pod would hold 4500m)
    assert view.limits_of(plan) == (4000, 4000)  # what the pod holds now: app 2000m + db 2000m
