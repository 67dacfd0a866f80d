"""The reconciler against an in-memory API: tracking state, retries, ownership of the pod's limit.

No kopf and no threads: the tests feed watch events (``on_allocation``/``on_pod``/``on_node``) and
run the due keys of the work queue themselves, on a fake monotonic clock.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fake_api import FakeApi, allocation_body, pod_body

from mbcas.controller.config import ControllerConfig
from mbcas.controller.reconciler import Reconciler
from mbcas.kube.backoff import Backoff
from mbcas.kube.errors import ApiUnavailableError, ConflictError
from mbcas.kube.podview import PodView
from mbcas.policy.resize import ResizeRules


class Mono:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(api: FakeApi, **settings: Any) -> tuple[Reconciler, Mono]:
    """A reconciler on ``api``; ``settings`` are ControllerConfig fields or resize rules."""
    mono = Mono()
    rules = {
        "min_interval_s": 0.0,
        **{k: settings.pop(k) for k in list(settings) if k in ResizeRules.model_fields},
    }
    config = ControllerConfig(
        **{
            "health_port": 0,
            "metrics_port": 0,
            "config_map": None,
            "resync_s": 30.0,
            **settings,
            "rules": rules,
        }
    )
    return Reconciler(api, config, mono=mono), mono  # type: ignore[arg-type]


def drain(rec: Reconciler) -> list[float | None]:
    """Run every key that is due now (as a worker would); the requeue delays they asked for."""
    delays = []
    while (key := rec.queue.get(timeout=0)) is not None:
        delay = rec.reconcile(key)
        rec.queue.done(key, delay)
        delays.append(delay)
    return delays


def entries(rec: Reconciler) -> dict[str, int]:
    """Every non-empty piece of per-object memory the reconciler holds."""
    out = {name: len(v) for name, v in vars(rec).items() if isinstance(v, dict | set | frozenset)}
    out.update({name: len(v) for name, v in vars(rec).items() if isinstance(v, Backoff)})
    out["gate"] = len(rec.gate.known())
    out["queue"] = len(rec.queue) - 1  # the periodic re-list is always scheduled
    return {k: v for k, v in out.items() if v}


def key_of(alloc: dict[str, Any]) -> str:
    return f"{alloc['metadata']['namespace']}/{alloc['metadata']['name']}"


def start(
    api: FakeApi, rec: Reconciler, cpu: str = "1", **pod_kw: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pod and its allocation, both announced to the reconciler as watch events."""
    pod = api.add_pod(pod_body(f"p{len(api.pods)}", **pod_kw))
    rec.on_pod("ADDED", copy.deepcopy(pod))
    alloc = api.add_allocation(allocation_body(pod, cpu))
    rec.on_allocation("ADDED", copy.deepcopy(alloc))
    return pod, alloc


# ------------------------------------------------------------------------------ tracking state


def test_ten_thousand_allocations_come_and_go_and_leave_nothing_behind() -> None:
    api = FakeApi()
    rec, mono = make(api, resync_s=5.0)
    for i in range(10_000):
        pod, alloc = start(api, rec)
        key, pod_key = key_of(alloc), f"ns/{pod['metadata']['name']}"
        variant = i % 5
        if variant == 0:  # deleted while its key is queued
            del api.allocations[key]
            rec.on_allocation("DELETED", copy.deepcopy(alloc))
            drain(rec)
        elif variant == 1:  # resized, then the pod and its allocation go, with events
            drain(rec)
            rec.on_allocation("DELETED", copy.deepcopy(api.allocations.pop(key)))
            rec.on_pod("DELETED", copy.deepcopy(api.pods.pop(pod_key)))
            drain(rec)
        elif variant == 2:  # both deleted during a watch gap: no events at all
            drain(rec)
            del api.allocations[key]
            del api.pods[pod_key]
        elif variant == 3:  # the allocation deleted during a gap before it was ever reconciled
            del api.allocations[key]
            drain(rec)
            del api.pods[pod_key]
        else:  # the pod goes first (its allocation is garbage-collected after it)
            drain(rec)
            rec.on_pod("DELETED", copy.deepcopy(api.pods.pop(pod_key)))
            drain(rec)
            rec.on_allocation("DELETED", copy.deepcopy(api.allocations.pop(key)))
        mono.now += 0.05
        drain(rec)
    assert not api.allocations
    mono.now += 3600  # every requeue and re-list comes due
    drain(rec)
    mono.now += 3600
    drain(rec)
    assert entries(rec) == {}


def test_an_allocation_deleted_during_a_watch_gap_is_never_applied() -> None:
    api = FakeApi()
    rec, _ = make(api)
    _, alloc = start(api, rec, "1")
    del api.allocations[key_of(alloc)]  # the DELETED event is lost
    drain(rec)
    assert api.resizes() == [], "a resize patch was sent for an allocation that no longer exists"
    assert entries(rec) == {}


def test_a_404_on_the_status_write_is_a_delete() -> None:
    api = FakeApi()
    rec, _ = make(api)
    _, alloc = start(api, rec, "500m")  # already at the target: no resize, only a status write
    del api.allocations[key_of(alloc)]
    drain(rec)
    assert entries(rec) == {}


def test_a_relist_drops_what_the_list_no_longer_has() -> None:
    api = FakeApi()
    rec, mono = make(api, resync_s=5.0)
    _, kept = start(api, rec, "500m")
    _, gone = start(api, rec, "500m")
    drain(rec)
    del api.allocations[key_of(gone)]  # deleted while the watch was down, after its last status
    mono.now += 6
    drain(rec)
    mono.now += 6
    drain(rec)
    assert list(rec.allocation_keys()) == [key_of(kept)]


def test_pod_events_of_pods_without_an_allocation_are_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi()
    rec, _ = make(api)
    parsed: list[str] = []
    original = PodView.from_body.__func__  # type: ignore[attr-defined]

    def counting(cls: type[PodView], body: Any) -> PodView:
        parsed.append(body["metadata"]["uid"])
        return original(cls, body)  # type: ignore[no-any-return]

    monkeypatch.setattr(PodView, "from_body", classmethod(counting))
    start(api, rec, "500m")
    parsed.clear()
    for i in range(100):
        rec.on_pod("MODIFIED", pod_body(f"other-{i}"))
    assert parsed == [], f"{len(parsed)} pods without an allocation were parsed"
    tracked = api.pods["ns/p0"]
    assert rec.tracks_pod(tracked["metadata"]["uid"]) and not rec.tracks_pod("nope")
    rec.on_pod("MODIFIED", copy.deepcopy(tracked))
    assert parsed == [tracked["metadata"]["uid"]]
    drain(rec)
    assert not [r for r in api.requests if r.method == "GET" and "/pods/" in r.path]  # found by UID


# ------------------------------------------------------------------------------ retries


def test_a_429_holds_every_write_for_at_least_retry_after() -> None:
    api = FakeApi()
    rec, _ = make(api)
    start(api, rec, "1")
    api.fail = lambda m, p: (
        ApiUnavailableError("too many requests", status=429, retry_after_s=7.0)
        if p.endswith("/resize")
        else None
    )
    (delay,) = drain(rec)
    assert delay is not None and delay >= 7.0
    assert rec.hold_remaining() >= 7.0


def test_conflicts_back_off_exponentially() -> None:
    api = FakeApi()
    rec, mono = make(api)
    start(api, rec, "1")
    api.fail = lambda m, p: ConflictError("modified", status=409) if p.endswith("/resize") else None
    delays = []
    for _ in range(4):
        (delay,) = drain(rec)
        assert delay is not None
        delays.append(delay)
        mono.now += delay
    assert delays[2] > delays[0] and delays[3] > delays[1], delays


def test_an_unreachable_apiserver_is_retried_with_growing_delays() -> None:
    api = FakeApi()
    rec, mono = make(api, failure_cooldown_s=1.0, failure_cooldown_max_s=60.0)
    start(api, rec, "1")
    api.fail = lambda m, p: ApiUnavailableError("connection refused") if "/pods/" in p else None
    delays = []
    for _ in range(4):
        (delay,) = drain(rec) or [None]
        assert delay is not None
        delays.append(delay)
        mono.now += max(delay, rec.hold_remaining()) + 0.01
    assert delays[2] > delays[0] and delays[3] > delays[1], delays


# ------------------------------------------------------------------------------ who owns the limit


def test_overriding_a_manual_resize_posts_an_event() -> None:
    api = FakeApi()
    rec, mono = make(api)
    pod, _ = start(api, rec, "1")
    drain(rec)
    pod_key = f"ns/{pod['metadata']['name']}"
    assert api.pods[pod_key]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "1"
    api.manual_resize(pod_key, "700m")
    rec.on_pod("MODIFIED", copy.deepcopy(api.pods[pod_key]))
    mono.now += 1
    drain(rec)
    assert api.pods[pod_key]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "1"
    overridden = [e for e in api.events if e["reason"] == "ManualResizeOverridden"]
    assert overridden and overridden[0]["type"] == "Warning"
    assert {e["involvedObject"]["kind"] for e in overridden} == {"Pod", "PodAllocation"}
    assert "kubectl-patch" in overridden[0]["message"]


def test_an_allocation_naming_another_node_is_deleted_with_an_event() -> None:
    api = FakeApi()
    rec, _ = make(api)
    pod = api.add_pod(pod_body("web", node="n1"))
    squat = api.add_allocation(allocation_body(pod, "100m", node="n2"))
    rec.on_allocation("ADDED", copy.deepcopy(squat))
    drain(rec)
    assert api.allocations == {} and api.resizes() == []
    assert "NodeMismatch" in api.reasons()
    deletes = [r for r in api.requests if r.method == "DELETE"]
    assert deletes and deletes[0].body["preconditions"]["uid"] == squat["metadata"]["uid"]
    rec.on_allocation("DELETED", copy.deepcopy(squat))
    assert entries(rec) == {}


# ------------------------------------------------------------------------------ infeasible


def _pending(api: FakeApi, pod_key: str, reason: str | None) -> dict[str, Any]:
    pod = api.pods[pod_key]
    pod["status"]["conditions"] = (
        [{"type": "PodResizePending", "status": "True", "reason": reason, "message": "node too small"}]
        if reason
        else []
    )
    pod["metadata"]["resourceVersion"] += "1"
    return copy.deepcopy(pod)


def test_an_infeasible_record_is_forgotten_when_the_condition_clears() -> None:
    api = FakeApi()
    api.kubelet_applies = False
    rec, mono = make(api)
    pod, _ = start(api, rec, "1")
    drain(rec)  # our resize to 1
    uid, pod_key = pod["metadata"]["uid"], f"ns/{pod['metadata']['name']}"
    rec.on_pod("MODIFIED", _pending(api, pod_key, "Infeasible"))
    mono.now += 1
    drain(rec)
    assert rec.gate.history(uid).infeasible_mcpu == 1000
    rec.on_pod("MODIFIED", _pending(api, pod_key, None))
    mono.now += 1
    drain(rec)
    assert rec.gate.history(uid).infeasible_mcpu is None


def test_an_infeasible_record_is_forgotten_when_the_nodes_allocatable_changes() -> None:
    api = FakeApi()
    api.kubelet_applies = False
    rec, mono = make(api)
    node = {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4"}}}
    rec.on_node("ADDED", node)
    pod, _ = start(api, rec, "1")
    drain(rec)
    uid, pod_key = pod["metadata"]["uid"], f"ns/{pod['metadata']['name']}"
    rec.on_pod("MODIFIED", _pending(api, pod_key, "Infeasible"))
    mono.now += 1
    drain(rec)
    assert rec.gate.history(uid).infeasible_mcpu == 1000
    rec.on_node("MODIFIED", node)  # a heartbeat: nothing changed
    assert rec.gate.history(uid).infeasible_mcpu == 1000
    rec.on_node("MODIFIED", {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "8"}}})
    assert rec.gate.history(uid).infeasible_mcpu is None


# ------------------------------------------------------------------------------ node bounds


def _unlimited(api: FakeApi, rec: Reconciler, cpu: str) -> dict[str, Any]:
    """A Burstable pod whose container has a request but no CPU limit, and its allocation."""
    pod, _ = start(api, rec, cpu)
    pod_key = f"ns/{pod['metadata']['name']}"
    body = api.pods[pod_key]
    del body["spec"]["containers"][0]["resources"]["limits"]
    body["status"]["containerStatuses"][0]["resources"] = {}
    rec.on_pod("MODIFIED", copy.deepcopy(body))
    return body


def test_a_pod_without_a_limit_steps_down_from_its_nodes_allocatable_cpu() -> None:
    # Issue 14 item 6: an unlimited pod used to get the target (here 300m) in one step.
    api = FakeApi()
    rec, mono = make(api, min_interval_s=10.0)
    pod = _unlimited(api, rec, "300m")
    drain(rec)
    assert api.resizes() == [], "a pod without a limit was resized before its node's CPU was known"
    rec.on_node("ADDED", {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4"}}})
    drain(rec)  # the node's first sighting wakes the allocations of its pods
    limits = api.pods[f"ns/{pod['metadata']['name']}"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["cpu"] == "2", limits  # 4 cores - one max step (2000m), not 300m
    mono.now += 60
    drain(rec)
    assert (
        api.pods[f"ns/{pod['metadata']['name']}"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]
        == "300m"
    )


def test_a_target_is_clamped_to_the_nodes_allocatable_cpu() -> None:
    api = FakeApi()
    rec, _ = make(api, max_step_mcpu=100_000)
    rec.on_node("ADDED", {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4"}}})
    pod, _ = start(api, rec, "64")
    drain(rec)
    limits = api.pods[f"ns/{pod['metadata']['name']}"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["cpu"] == "4", limits


# ------------------------------------------------------------------------------ held containers


def test_only_what_the_containers_left_alone_do_not_hold_is_split() -> None:
    # Issue 14 item 1: app (request 250m, limit 2) and db (request 1, limit 2, RestartContainer)
    # given 2500m: app gets 2500m - db's 2000m = 500m (it used to get 2500m: the pod held 4500m).
    api = FakeApi()
    rec, mono = make(api)
    body = pod_body("shop", request="250m", limit="2")
    db = copy.deepcopy(body["spec"]["containers"][0])
    db["name"] = "db"
    db["resources"]["requests"]["cpu"] = "1"
    db["resizePolicy"] = [{"resourceName": "cpu", "restartPolicy": "RestartContainer"}]
    body["spec"]["containers"].append(db)
    body["status"]["containerStatuses"].append({"name": "db", "resources": {"limits": {"cpu": "2"}}})
    pod = api.add_pod(body)
    rec.on_pod("ADDED", copy.deepcopy(pod))
    rec.on_allocation("ADDED", copy.deepcopy(api.add_allocation(allocation_body(pod, "2500m"))))
    drain(rec)
    [patch] = api.resizes()
    assert [(c["name"], c["resources"]["limits"]["cpu"]) for c in patch.body["spec"]["containers"]] == [
        ("app", "500m")
    ]
    limits = {c["name"]: c["resources"]["limits"]["cpu"] for c in api.pods["ns/shop"]["spec"]["containers"]}
    assert limits == {"app": "500m", "db": "2"}
    status = next(iter(api.allocations.values()))["status"]
    assert status["appliedCPULimit"] == "2500m", status  # the pod's whole limit, db's part included
    rec.on_pod("MODIFIED", copy.deepcopy(api.pods["ns/shop"]))
    mono.now += 1
    drain(rec)
    assert next(iter(api.allocations.values()))["status"]["phase"] == "Applied"
    assert len(api.resizes()) == 1


def test_only_the_leader_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi()
    rec, _ = make(api)
    start(api, rec, "1")
    rec.is_active = lambda: False  # leadership lost while the key was being reconciled
    delays = drain(rec)
    assert api.resizes() == [] and delays and delays[0] is not None
