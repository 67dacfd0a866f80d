"""MBCAS on a real node, end to end: real kubelet, real containers, real cgroups, real quotas.

Behaviours:

- a Burstable burner pod throttled under a small limit gets a higher limit through the whole
  chain: the DaemonSet's agent reads the pod's real cgroup, writes a PodAllocation, the
  controller's Deployment resizes the pod (``pods/resize``), the kubelet writes the container's
  CFS quota; the spec, the kubelet's reported resources and the kernel quota agree, the container
  never restarted. The time from a demand step (the container's first CPU use) to the changed
  kernel quota is measured over three pods and written to the e2e measurements;
- a Guaranteed pod and an opted-out pod (``mbcas.io/opt-out=true``), both as throttled, are left
  alone while a managed neighbour is raised;
- a pod deleted while its resize is under way: its PodAllocation goes with it, its cgroups are
  removed by the kubelet, MBCAS's pods do not restart and keep resizing the next pod.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from e2e_support import (
    E2ECluster,
    burner_pod,
    child_quotas_mcpu,
    container_cgroup,
    kernel_quota_mcpu,
    pod_cgroup,
    restart_counts,
    running,
    set_demand,
    spec_limit_mcpu,
    usage_usec,
    wait_for,
)

pytestmark = pytest.mark.timeout(900)

RAISE_TIMEOUT = 120.0


def _create_running(cluster: E2ECluster, namespace: str, pod: dict[str, object]) -> dict[str, object]:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod), check=True)
    name = pod["metadata"]["name"]  # type: ignore[index]
    return wait_for(f"pod {name} Running", lambda: running(cluster, namespace, name), 90)


def _raised(cluster: E2ECluster, namespace: str, name: str, above_mcpu: int) -> dict[str, object] | None:
    pod = running(cluster, namespace, name)
    if pod is None:
        return None
    quota = kernel_quota_mcpu(pod)
    return pod if quota is not None and quota > above_mcpu else None


def test_throttled_burstable_pod_gets_a_higher_limit_through_the_whole_chain(
    real_cluster: E2ECluster, e2e_namespace: str, pattern_dir: Path, e2e_measurements: dict[str, object]
) -> None:
    """Three burner pods in turn, each wanting a full core under a 200m limit from its first instant.

    The reaction time runs from the container's first CPU use (its cgroup's usage counter starts
    moving: the demand step, seen by the kernel) to the kernel quota of the container changing,
    both polled every 10 ms on the cgroup files, so no API round trip is in the measurement.
    """
    image = real_cluster.images.burner.ref
    agents_before = restart_counts(real_cluster.mbcas_pods("agent"))
    reactions: list[float] = []
    set_demand(pattern_dir, 1.0)
    for round_ in range(3):
        name = f"burner-{round_}"
        real_cluster.kubectl(
            "apply",
            "-n",
            e2e_namespace,
            "-f",
            "-",
            input=json.dumps(burner_pod(name, image, pattern_dir)),
            check=True,
        )
        uid = wait_for(
            "the pod's UID",
            lambda n=name: (p := real_cluster.pod(e2e_namespace, n)) and p["metadata"]["uid"],
            30,
        )  # type: ignore[misc]
        cpu_dir, acct_dir = pod_cgroup(uid, "Burstable", "cpu"), pod_cgroup(uid, "Burstable", "cpuacct")
        demand_from = wait_for(
            "the burner's first CPU use",
            lambda d=acct_dir: usage_usec(d) > 20_000 and time.monotonic(),
            90,
            0.01,
        )  # type: ignore[misc]
        assert child_quotas_mcpu(cpu_dir) in ([200], []), "the kubelet starts the container at its 200m limit"
        raised_at = wait_for(
            "the container's kernel quota raised above 200m",
            lambda d=cpu_dir: any(q > 200 for q in child_quotas_mcpu(d)) and time.monotonic(),  # type: ignore[misc]
            RAISE_TIMEOUT,
            0.01,
        )
        reactions.append(raised_at - demand_from)
        print(f"[e2e] {name}: demand step to raised kernel quota in {reactions[-1]:.2f}s")
        if round_ == 0:
            _check_whole_chain(real_cluster, e2e_namespace, name, uid)
        real_cluster.kubectl("delete", "pod", name, "-n", e2e_namespace, "--grace-period=0", "--force")
        wait_for("the pod's cgroups gone", lambda d=cpu_dir: not d.exists(), 60)  # type: ignore[misc]
    assert restart_counts(real_cluster.mbcas_pods("agent")) == agents_before
    e2e_measurements["resize_reaction_s"] = [round(r, 2) for r in reactions]


def _check_whole_chain(cluster: E2ECluster, namespace: str, name: str, uid: str) -> None:
    """The PodAllocation decision is applied (the controller may take a few step-capped resizes,
    10 s apart, to reach it), and pod spec, kubelet's report and kernel quota agree."""
    alloc = wait_for(
        "the PodAllocation applied",
        lambda: (
            (a := cluster.allocation(namespace, uid))
            and (a.get("status") or {}).get("phase") == "Applied"
            and a
        ),
        RAISE_TIMEOUT,
    )
    assert alloc["spec"]["podUID"] == uid and alloc["spec"]["nodeName"] == cluster.node.node_name
    settled = wait_for(
        "spec, kubelet status and kernel quota to agree",
        lambda: (
            (p := running(cluster, namespace, name))
            and spec_limit_mcpu(p) == kernel_quota_mcpu(p)
            and _status_limit_mcpu(p) == spec_limit_mcpu(p)
            and p
        ),
        60,
    )
    assert (spec_limit_mcpu(settled) or 0) > 200
    assert restart_counts([settled]) == {name: 0}, "an in-place resize never restarts the container"


def _status_limit_mcpu(pod: dict[str, object]) -> int | None:
    status = pod["status"]["containerStatuses"][0]  # type: ignore[index]
    limit = (status.get("resources") or {}).get("limits", {}).get("cpu")
    if limit is None:
        return None
    return int(limit[:-1]) if limit.endswith("m") else int(float(limit) * 1000)


def test_guaranteed_and_opted_out_pods_are_left_alone(
    real_cluster: E2ECluster, e2e_namespace: str, pattern_dir: Path
) -> None:
    image = real_cluster.images.burner.ref
    set_demand(pattern_dir, 1.0)
    guaranteed = burner_pod("guaranteed", image, pattern_dir, request="200m", limit="200m")
    opted_out = burner_pod("opted-out", image, pattern_dir, labels={"mbcas.io/opt-out": "true"})
    managed = burner_pod("managed", image, pattern_dir)
    for pod in (guaranteed, opted_out, managed):
        _create_running(real_cluster, e2e_namespace, pod)
    g = running(real_cluster, e2e_namespace, "guaranteed")
    assert g is not None and g["status"]["qosClass"] == "Guaranteed"
    wait_for(
        "the managed neighbour raised",
        lambda: _raised(real_cluster, e2e_namespace, "managed", 200),
        RAISE_TIMEOUT,
    )
    time.sleep(5.0)  # a few more agent ticks and controller passes
    for name in ("guaranteed", "opted-out"):
        pod = running(real_cluster, e2e_namespace, name)
        assert pod is not None
        assert spec_limit_mcpu(pod) == 200 and kernel_quota_mcpu(pod) == 200, f"{name} was resized"
        assert real_cluster.allocation(e2e_namespace, pod["metadata"]["uid"]) is None or _not_applied(
            real_cluster, e2e_namespace, pod["metadata"]["uid"]
        ), f"{name} has an applied PodAllocation"
        assert restart_counts([pod]) == {name: 0}
        # Both are really throttled: the kernel withheld CPU from them all along.
        stat = (container_cgroup(pod) / "cpu.stat").read_text()
        throttled = dict(line.split() for line in stat.splitlines())
        assert int(throttled["nr_throttled"]) > 0, f"{name} should be throttled under its 200m quota"


def _not_applied(cluster: E2ECluster, namespace: str, uid: str) -> bool:
    alloc = cluster.allocation(namespace, uid) or {}
    return (alloc.get("status") or {}).get("phase") != "Applied"


def test_pod_deleted_mid_resize_leaves_nothing_behind(
    real_cluster: E2ECluster, e2e_namespace: str, pattern_dir: Path
) -> None:
    image = real_cluster.images.burner.ref
    controllers_before = restart_counts(real_cluster.mbcas_pods("controller"))
    agents_before = restart_counts(real_cluster.mbcas_pods("agent"))
    set_demand(pattern_dir, 1.0)
    pod = _create_running(real_cluster, e2e_namespace, burner_pod("doomed", image, pattern_dir))
    uid = pod["metadata"]["uid"]  # type: ignore[index]
    cgroup = container_cgroup(pod)  # type: ignore[arg-type]
    # Delete the pod the moment the resize is under way: the controller patched the spec, the
    # kubelet may not have written the quota yet.
    wait_for(
        "the controller's resize of the doomed pod",
        lambda: (p := real_cluster.pod(e2e_namespace, "doomed")) and spec_limit_mcpu(p) != 200,
        RAISE_TIMEOUT,
        interval=0.05,
    )
    real_cluster.kubectl("delete", "pod", "doomed", "-n", e2e_namespace, "--grace-period=0", "--force")
    wait_for("the pod gone", lambda: real_cluster.pod(e2e_namespace, "doomed") is None, 60)
    wait_for(
        "its PodAllocation garbage-collected", lambda: real_cluster.allocation(e2e_namespace, uid) is None, 60
    )
    wait_for("its cgroups removed by the kubelet", lambda: not cgroup.exists(), 60)
    # MBCAS carries on: the next throttled pod is raised, nothing restarted.
    _create_running(real_cluster, e2e_namespace, burner_pod("next", image, pattern_dir))
    wait_for("the next pod raised", lambda: _raised(real_cluster, e2e_namespace, "next", 200), RAISE_TIMEOUT)
    assert restart_counts(real_cluster.mbcas_pods("controller")) == controllers_before
    assert restart_counts(real_cluster.mbcas_pods("agent")) == agents_before
