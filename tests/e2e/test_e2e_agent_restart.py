"""The agent's pod is deleted; the DaemonSet recreates it and no decision is lost.

Behaviour: a managed burner pod has been raised (its PodAllocation applied). The agent's pod is
deleted; the DaemonSet starts a new one. Throughout, and for a while after the new agent is
Ready, the PodAllocation stays the same object (never deleted and recreated), its decision never
falls back below what was applied, the pod's limit and the kernel quota stay raised, and the
burner's container never restarts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from e2e_support import (
    E2ECluster,
    burner_pod,
    kernel_quota_mcpu,
    restart_counts,
    running,
    set_demand,
    spec_limit_mcpu,
    wait_for,
)

pytestmark = pytest.mark.timeout(900)


def _cpu_mcpu(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def _ready(pod: dict[str, object]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []  # type: ignore[union-attr]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_agent_pod_recreated_by_the_daemonset_keeps_the_decisions(
    real_cluster: E2ECluster, e2e_namespace: str, pattern_dir: Path, e2e_measurements: dict[str, object]
) -> None:
    set_demand(pattern_dir, 1.0)
    pod = burner_pod("steady", real_cluster.images.burner.ref, pattern_dir)
    real_cluster.kubectl("apply", "-n", e2e_namespace, "-f", "-", input=json.dumps(pod), check=True)
    pod = wait_for("the burner Running", lambda: running(real_cluster, e2e_namespace, "steady"), 90)
    uid = pod["metadata"]["uid"]
    alloc = wait_for(
        "a raise applied",
        lambda: (
            (a := real_cluster.allocation(e2e_namespace, uid))
            and (a.get("status") or {}).get("phase") == "Applied"
            and _cpu_mcpu(a["spec"]["cpuLimit"]) > 200
            and a
        ),
        150,
    )
    applied = _cpu_mcpu(alloc["spec"]["cpuLimit"])
    alloc_uid = alloc["metadata"]["uid"]
    [old_agent] = [p for p in real_cluster.mbcas_pods("agent") if not p["metadata"].get("deletionTimestamp")]
    deleted_at = time.monotonic()
    real_cluster.kubectl("delete", "pod", old_agent["metadata"]["name"], "-n", "mbcas-system", "--wait=false")

    def new_agent_ready() -> dict[str, object] | None:
        for agent in real_cluster.mbcas_pods("agent"):
            if agent["metadata"]["uid"] != old_agent["metadata"]["uid"] and _ready(agent):
                return agent
        return None

    lowest_limit = applied
    lowest_decision = applied
    new_agent = None
    watch_until = None
    while watch_until is None or time.monotonic() < watch_until:
        current = real_cluster.allocation(e2e_namespace, uid)
        assert current is not None, "the PodAllocation disappeared while the agent restarted"
        assert current["metadata"]["uid"] == alloc_uid, "the PodAllocation was deleted and recreated"
        lowest_decision = min(lowest_decision, _cpu_mcpu(current["spec"]["cpuLimit"]))
        live = running(real_cluster, e2e_namespace, "steady")
        assert live is not None
        lowest_limit = min(lowest_limit, spec_limit_mcpu(live) or 0, kernel_quota_mcpu(live) or 0)
        if new_agent is None:
            new_agent = new_agent_ready()
            if new_agent is not None:
                e2e_measurements["agent_recreated_ready_s"] = round(time.monotonic() - deleted_at, 1)
                watch_until = time.monotonic() + 20.0
            assert time.monotonic() - deleted_at < 180, "the DaemonSet did not bring a new agent up"
        time.sleep(0.5)
    # The burner still wants a full core: nothing may fall back to (or below) its old 200m limit.
    assert lowest_decision > 200 and lowest_limit > 200, (lowest_decision, lowest_limit)
    assert lowest_decision >= applied * 0.75, f"decision fell from {applied}m to {lowest_decision}m"
    final = running(real_cluster, e2e_namespace, "steady")
    assert final is not None and restart_counts([final]) == {"steady": 0}
