"""Pod limit -> container limits: QoS refusals, request-share split, floors, restart policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbcas.policy.pod_cpu import PodCpu
from mbcas.policy.resize_split import (
    ContainerResources,
    QoSClass,
    SplitRefusedError,
    plan_container_limits,
    qos_class,
    split_by_weight,
)


def burst(name: str, req: int | None, lim: int | None = None, **kw: object) -> ContainerResources:
    return ContainerResources(name, cpu_request_mcpu=req, cpu_limit_mcpu=lim, memory_request="64Mi", **kw)  # type: ignore[arg-type]


class TestQoS:
    def test_classes(self) -> None:
        assert qos_class([ContainerResources("a")]) is QoSClass.BEST_EFFORT
        assert qos_class([burst("a", 100, 200)]) is QoSClass.BURSTABLE
        g = ContainerResources("a", 500, 500, "1Gi", "1Gi")
        assert qos_class([g]) is QoSClass.GUARANTEED
        # limits only: requests default to limits
        assert qos_class([ContainerResources("a", None, 500, None, "1Gi")]) is QoSClass.GUARANTEED
        assert qos_class([g, burst("b", 100)]) is QoSClass.BURSTABLE

    def test_guaranteed_and_best_effort_are_refused(self) -> None:
        with pytest.raises(SplitRefusedError) as info:
            plan_container_limits(1000, [ContainerResources("a", 500, 500, "1Gi", "1Gi")])
        assert info.value.reason == "GuaranteedPod"
        with pytest.raises(SplitRefusedError) as info:
            plan_container_limits(1000, [ContainerResources("a")])
        assert info.value.reason == "BestEffortPod"

    def test_status_qos_class_wins(self) -> None:
        with pytest.raises(SplitRefusedError, match="Guaranteed"):
            plan_container_limits(1000, [burst("a", 100)], qos=QoSClass.GUARANTEED)


class TestSplit:
    def test_single_container_gets_the_pod_limit(self) -> None:
        plan = plan_container_limits(1500, [burst("app", 250, 500)])
        assert plan.limits == {"app": 1500} and not plan.skipped

    def test_split_by_request_share(self) -> None:
        plan = plan_container_limits(1000, [burst("a", 300), burst("b", 100)])
        assert plan.limits == {"a": 750, "b": 250}

    def test_rounding_sums_exactly(self) -> None:
        plan = plan_container_limits(1001, [burst("a", 100), burst("b", 100), burst("c", 100)])
        assert plan.total_mcpu == 1001
        assert sorted(plan.limits.values()) == [333, 334, 334]

    def test_below_request_refused(self) -> None:
        with pytest.raises(SplitRefusedError) as info:
            plan_container_limits(300, [burst("a", 200), burst("b", 200)])
        assert info.value.reason == "BelowRequest"

    def test_a_container_left_alone_without_a_cpu_limit_is_refused(self) -> None:
        # Issue 14 item 1: the pod's CPU is unbounded whatever "a" gets; "a" used to get all 800m.
        with pytest.raises(SplitRefusedError) as info:
            plan_container_limits(800, [burst("a", 200), burst("side", None)])
        assert info.value.reason == "UnlimitedContainer" and "side" in info.value.message

    def test_restart_policy_containers_are_skipped_unless_allowed(self) -> None:
        cs = [burst("a", 200), burst("b", 200, 300, cpu_restart_required=True)]
        plan = plan_container_limits(1000, cs)
        assert plan.limits == {"a": 700} and plan.held_mcpu == 300 and plan.total_mcpu == 1000
        assert plan_container_limits(1000, cs, allow_restart=True).limits == {"a": 500, "b": 500}
        with pytest.raises(SplitRefusedError) as info:
            plan_container_limits(1000, [burst("b", 200, cpu_restart_required=True)])
        assert info.value.reason == "RestartRequired"

    def test_only_one_container(self) -> None:
        plan = plan_container_limits(700, [burst("a", 200), burst("b", 200)], only="b")
        assert plan.limits == {"b": 700} and plan.skipped == {"a": "not selected"}
        with pytest.raises(SplitRefusedError, match="no container"):
            plan_container_limits(700, [burst("a", 200)], only="zzz")

    def test_never_turns_a_pod_guaranteed(self) -> None:
        c = ContainerResources("a", 500, 800, "1Gi", "1Gi")
        plan = plan_container_limits(500, [c])
        assert plan.limits == {"a": 501}
        assert qos_class([ContainerResources("a", 500, 501, "1Gi", "1Gi")]) is QoSClass.BURSTABLE


@given(
    total=st.integers(1, 100_000),
    reqs=st.lists(st.integers(0, 4000), min_size=1, max_size=8),
)
def test_split_invariants(total: int, reqs: list[int]) -> None:
    floors = [max(r, 10) for r in reqs]
    if sum(floors) > total:
        with pytest.raises(ValueError):
            split_by_weight(total, reqs, floors)
        return
    parts = split_by_weight(total, reqs, floors)
    assert sum(parts) == total
    assert all(p >= f for p, f in zip(parts, floors, strict=True))
    # proportionality among unpinned parts: a larger request never gets a smaller part
    for i in range(len(reqs)):
        for j in range(len(reqs)):
            if reqs[i] > reqs[j]:
                assert parts[i] >= parts[j] - 1


class TestHeldContainers:
    """Issue 14 item 1: the allocation is the pod's whole limit; containers the split leaves alone
    keep theirs, and only the rest is split."""

    APP = ContainerResources("app", 1000, 2000, "64Mi")
    DB = ContainerResources("db", 1000, 2000, "64Mi", cpu_restart_required=True)

    def test_the_issues_example_splits_only_what_db_does_not_hold(self) -> None:
        # 2500m for the pod leaves 500m for app after db's 2000m; app used to get all 2500m (the
        # pod then held 4500m). 500m is below app's 1-CPU request, which Kubernetes rejects
        # (limit < request), so the split refuses and says why.
        with pytest.raises(SplitRefusedError) as info:
            plan_container_limits(2500, [self.APP, self.DB])
        assert info.value.reason == "BelowRequest"
        assert "leaves 500m after the 2000m" in info.value.message and "db" in info.value.message
        plan = plan_container_limits(3500, [self.APP, self.DB])
        assert plan.limits == {"app": 1500} and plan.total_mcpu == 3500

    def test_the_issues_example_with_a_request_app_fits(self) -> None:
        app = ContainerResources("app", 250, 2000, "64Mi")
        plan = plan_container_limits(2500, [app, self.DB])
        assert plan.limits == {"app": 500}, "app must get 2500m - db's 2000m"
        assert plan.skipped == {"db": "CPU resizePolicy is RestartContainer"} and plan.held_mcpu == 2000

    def test_native_sidecars_are_held(self) -> None:
        side = ContainerResources("proxy", 100, 300, "64Mi")
        pod = PodCpu((ContainerResources("app", 200, 1000, "64Mi"),), (side,), frozenset({"proxy"}))
        plan = plan_container_limits(1500, pod)
        assert plan.limits == {"app": 1200} and plan.held_mcpu == 300
        unlimited = PodCpu(pod.containers, (ContainerResources("proxy", 100),), frozenset({"proxy"}))
        with pytest.raises(SplitRefusedError, match="proxy") as info:
            plan_container_limits(1500, unlimited)
        assert info.value.reason == "UnlimitedContainer"

    def test_a_pod_level_cpu_limit_is_refused(self) -> None:
        pod = PodCpu((ContainerResources("app", 200, 1000, "64Mi"),), pod_limit_mcpu=1000)
        with pytest.raises(SplitRefusedError) as info:
            plan_container_limits(1500, pod)
        assert info.value.reason == "PodLevelLimit"

    def test_one_container_set_by_hand_holds_nothing(self) -> None:
        plan = plan_container_limits(1200, [self.APP, self.DB], only="db", allow_restart=True)
        assert plan.limits == {"db": 1200} and plan.held_mcpu == 0
