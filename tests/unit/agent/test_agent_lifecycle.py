"""The agent around the edges of a pod's life and of the API's: terminating pods keep counting
until their cgroup is gone, and writes back off the shared way (jittered, honouring Retry-After)."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent_fakes import FakeKube, FakeNode, Request, make_agent

from mbcas.agent.loop import NodeAgent
from mbcas.kube.errors import ApiUnavailableError
from mbcas.kube.pods import NodePods, PodInfo


def _agent(node: FakeNode, kube: FakeKube) -> NodeAgent:
    return make_agent(node, kube, allocatable="2")


def _run(node: FakeNode, kube: FakeKube, agent: NodeAgent, seconds: int) -> None:
    for _ in range(seconds):
        node.advance(1.0)
        agent.tick()
        node.apply(kube)


def _capacity(agent: NodeAgent) -> int:
    assert agent.last_plan is not None
    return agent.last_plan.capacity_mcpu


# ------------------------------------------------------------------------------ terminating pods


def _pod_body(deleting: bool, phase: str = "Running") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "3"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {
            "nodeName": "n1",
            "containers": [
                {"name": "app", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}}
            ],
        },
        "status": {"phase": phase, "qosClass": "Burstable"},
    }


def test_the_pod_cache_keeps_terminating_pods() -> None:
    cache = NodePods(None, "n1")  # type: ignore[arg-type]  # parsing only: no API needed
    info = cache._parse(_pod_body(deleting=True))
    assert info is not None, "a terminating pod still runs until its containers stop"
    assert info.terminating
    running = cache._parse(_pod_body(deleting=False))
    assert running is not None and not running.terminating
    assert cache._parse(_pod_body(deleting=True, phase="Succeeded")) is None  # containers exited


def test_a_terminating_pod_keeps_counting_and_is_not_managed(tmp_path: Path) -> None:
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.3)
    going = node.add("going", 0.9, limit="1")
    agent = _agent(node, kube)
    _run(node, kube, agent, 30)
    before = _capacity(agent)
    node.pods.by_uid[going] = replace(node.pods.by_uid[going], terminating=True)
    _run(node, kube, agent, 5)
    plan = agent.last_plan
    assert plan is not None
    i = plan.uids.index(going)
    assert not plan.managed[i], "a terminating pod is not given a new limit"
    # Counted as an unmanaged pod using ~0.9 CPU: the managed pods' capacity went down by that.
    assert _capacity(agent) <= 2000 - 850, (before, _capacity(agent))
    assert going not in {o["spec"]["podUID"] for o in kube.objects.values()}


def test_a_force_deleted_pod_counts_until_its_cgroup_is_gone(tmp_path: Path) -> None:
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.3)
    going = node.add("going", 0.9, limit="1")
    agent = _agent(node, kube)
    _run(node, kube, agent, 30)
    relpath = node.relpath(going)
    info: PodInfo = node.pods.by_uid.pop(going)  # gone from the API at once (--force --grace-period=0)
    for _ in range(3):  # its processes still run: the cgroup keeps counting usage
        node.pods.by_uid[going] = info
        node.advance(1.0)
        del node.pods.by_uid[going]
        agent.tick()
    plan = agent.last_plan
    assert plan is not None and going in plan.uids, "a pod whose cgroup still runs is not counted"
    assert not plan.managed[plan.uids.index(going)]
    assert _capacity(agent) <= 2000 - 850
    for base in node.fs._dirs():  # the kubelet removes the cgroup at last
        shutil.rmtree(base / relpath)
    _run(node, kube, agent, 2)
    plan = agent.last_plan
    assert plan is not None and going not in plan.uids


# ------------------------------------------------------------------------------ API backoff


class _Throttling(FakeKube):
    """Answers every PodAllocation write with 429 and ``Retry-After: 20`` while ``busy``."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = True

    def request_json(self, method: str, path: str, *, what: str, body: Any = None, **kw: Any) -> Any:
        if self.busy and method in ("POST", "PATCH", "DELETE") and "podallocations" in path:
            self.requests.append(Request(method, path, body))
            raise ApiUnavailableError(f"{what}: too many requests", status=429, retry_after_s=20.0)
        return super().request_json(method, path, what=what, body=body, **kw)


def test_writes_wait_for_retry_after_and_back_off_with_jitter(tmp_path: Path) -> None:
    node, kube = FakeNode(tmp_path / "cg"), _Throttling()
    node.add("busy", 0.9)
    node.add("idle", 0.05)
    agent = _agent(node, kube)
    attempts: list[float] = []
    for _ in range(120):
        node.advance(1.0)
        before = len(kube.writes())
        agent.tick()
        if len(kube.writes()) > before:
            attempts.append(node.now)
    assert len(attempts) >= 2
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert min(gaps) >= 20.0, f"retried {min(gaps):.0f}s after a 429 asking for 20s"
    kube.busy = False
    _run(node, kube, agent, 60)
    assert kube.objects, "writes resume once the API accepts them"
