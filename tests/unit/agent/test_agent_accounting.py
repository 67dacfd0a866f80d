"""The agent counts pods the way the kubelet does and never plans what the controller cannot move
(issue 14 item 1): native sidecars count, held containers' limits are part of a pod's limit and
its floor, and a pod the split cannot bound counts as unmanaged CPU."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from agent_fakes import FakeKube, FakeNode, make_agent

from mbcas.agent.loop import NodeAgent
from mbcas.core.units import parse_cpu


def _agent(node: FakeNode, kube: FakeKube, allocatable: str = "8") -> NodeAgent:
    return make_agent(node, kube, allocatable=allocatable)


def _c(name: str, request: str, limit: str | None, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"requests": {"cpu": request, "memory": "64Mi"}, "limits": {"memory": "64Mi"}}
    if limit is not None:
        res["limits"]["cpu"] = limit
    return {"name": name, "resources": res, **extra}


def _body(
    name: str, qos: str, containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None
) -> Any:
    spec: dict[str, Any] = {"nodeName": "n1", "containers": containers}
    if init:
        spec["initContainers"] = init
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod:shop/{name}"))
    return {
        "metadata": {"namespace": "shop", "name": name, "uid": uid, "resourceVersion": "1"},
        "spec": spec,
        "status": {"phase": "Running", "qosClass": qos},
    }


RESTART = [{"resourceName": "cpu", "restartPolicy": "RestartContainer"}]


def test_the_issues_pod_is_never_planned_below_what_db_holds_plus_apps_request(tmp_path: Path) -> None:
    # app (request 1, limit 2) and db (request 1, limit 2, RestartContainer): the decision is the
    # pod's whole limit, so it can never be below db's 2000m + app's 1000m. It used to be planned
    # from the pod's request (2000m) and split over app alone.
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    pod = node.add_body(
        _body("shop", "Burstable", [_c("app", "1", "2"), _c("db", "1", "2", resizePolicy=RESTART)]),
        0.1,  # nearly idle: the planner lowers it towards its floor
        limit_mcpu=4000,
    )
    agent = _agent(node, kube)
    for _ in range(30 * 60):
        node.advance()
        agent.tick()
    plan = agent.last_plan
    assert plan is not None
    i = plan.uids.index(pod)
    assert plan.managed[i]
    assert plan.allocation_mcpu[i] >= 3000, plan.allocation_mcpu[i]
    written = [o["spec"] for o in kube.objects.values() if o["spec"]["podUID"] == pod]
    assert written and parse_cpu(written[0]["cpuLimit"]) >= 3000


def test_a_guaranteed_pod_with_a_native_sidecar_is_counted_at_3000m(tmp_path: Path) -> None:
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    sidecar = {"restartPolicy": "Always", **_c("proxy", "1", "1")}
    node.add_body(_body("db", "Guaranteed", [_c("app", "2", "2")], [sidecar]), 0.5, limit_mcpu=3000)
    node.add("web", 0.2)
    agent = _agent(node, kube)
    node.advance()
    plan = agent.tick()
    assert plan is not None
    assert plan.capacity_mcpu == 8000 - 3000, "the sidecar's CPU is the Guaranteed pod's too"


def test_a_pod_the_split_cannot_bound_counts_as_unmanaged_cpu(tmp_path: Path) -> None:
    # A container without any CPU limit next to one with a request: no limit MBCAS gives the other
    # bounds the pod. It is not managed and counts as what it uses (at least its request).
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    busy = node.add("busy", 1.5, request="500m", limit="2", bare=True)
    node.add("web", 0.2)
    agent = _agent(node, kube)
    for _ in range(5):
        node.advance()
        plan = agent.tick()
    assert plan is not None
    assert not plan.managed[plan.uids.index(busy)]
    assert plan.capacity_mcpu <= 8000 - 1450, plan.capacity_mcpu
    assert busy not in {o["spec"]["podUID"] for o in kube.objects.values()}
