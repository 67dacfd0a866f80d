"""The node agent on the real control plane, with the node emulator running real CPU burners under
real CFS quotas: CPU moves to the pod that starts burning, its throttling falls, the decisions show
in ``kubectl get podallocations``, and a SIGKILLed agent restarts without losing or flapping
anything."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import make_pod, wait_for, wait_running
from mbcas.api import GROUP, PLURAL, VERSION, parse_cpu
from mbcas.local.emulator import DEMAND_ANNOTATION, NodeSpec
from mbcas.local.kernel import KernelMode

pytestmark = [pytest.mark.integration, pytest.mark.kernel, pytest.mark.slow]


def _allocations(api_client: Any, namespace: str) -> dict[str, dict[str, Any]]:
    from kubernetes import client

    items = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )
    return {item["spec"]["podName"]: item for item in items.get("items", [])}


def _limit_mc(core_v1: Any, namespace: str, name: str) -> int:
    pod = core_v1.read_namespaced_pod(name, namespace)
    return parse_cpu(pod.spec.containers[0].resources.limits["cpu"])


@contextlib.contextmanager
def _agent_process(kubeconfig: str, node: str, sandbox: Any) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [
        sys.executable, "-m", "mbcas", "-v", "agent",
        "--node", node, "--kubeconfig", kubeconfig, "--tick", "1", "--reserve", "200m",
        "--cgroup-root", str(sandbox.root), "--cgroup-prefix", sandbox.prefix,
        "--config-map", "", "--metrics-port", "0",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_agent_and_controller_move_cpu_to_the_busy_pod_and_survive_sigkill(  # noqa: PLR0917
    api_client: Any,
    core_v1: Any,
    kubeconfig: str,
    namespace: str,
    control_plane: Any,
    make_emulator: Callable[..., Any],
    run_controller: Callable[..., Any],
) -> None:
    node = f"agent-{uuid.uuid4().hex[:6]}"
    # 1.2 cores allocatable − 200m reserve: the two pods share 1 core.
    emulator = make_emulator(nodes=[NodeSpec(node, "1.2", "4Gi")], kernel=KernelMode(), resize_delay=0.3)
    sandbox = emulator.sandbox
    if sandbox is None or not sandbox.available:
        pytest.skip(f"cannot create cgroups here: {sandbox.reason if sandbox else 'no sandbox'}")
    busy = make_pod("busy", "100m", "400m", node, annotations={DEMAND_ANNOTATION: "0:0.05,12:0.9"})
    idle = make_pod("idle", "100m", "400m", node, annotations={DEMAND_ANNOTATION: "0.05"})
    for body in (busy, idle):
        core_v1.create_namespaced_pod(namespace, body)
    for name in ("busy", "idle"):
        wait_running(core_v1, namespace, name)
    run_controller()

    with _agent_process(kubeconfig, node, sandbox) as agent:
        # Both pods get an allocation; once "busy" burns (from t = 12 s) CPU moves to it.
        allocs = wait_for(
            lambda: (a := _allocations(api_client, namespace)) and len(a) == 2 and a, timeout=60
        )
        assert {a["spec"]["nodeName"] for a in allocs.values()} == {node}
        wait_for(
            lambda: _limit_mc(core_v1, namespace, "busy") >= 700,
            timeout=60,
            message="busy pod's limit never reached 700m",
        )
        allocs = _allocations(api_client, namespace)
        assert parse_cpu(allocs["busy"]["spec"]["cpuLimit"]) >= 700
        assert (
            parse_cpu(allocs["busy"]["spec"]["cpuLimit"]) + parse_cpu(allocs["idle"]["spec"]["cpuLimit"])
            <= 1000
        )
        assert (
            "short of CPU" in allocs["busy"]["spec"]["reason"]
            or "throttled" in allocs["busy"]["spec"]["reason"]
        )
        assert allocs["busy"]["metadata"]["ownerReferences"][0]["kind"] == "Pod"
        # The decisions and their reasons show in kubectl.
        out = control_plane.kubectl("get", "podallocations", "-n", namespace, check=True).stdout
        assert "busy" in out and "idle" in out and "Reason".upper() in out.upper()

        # Its throttling falls: a fresh interval at the new limit is mostly unthrottled.
        from mbcas.cgroups.paths import PodCgroupResolver
        from mbcas.cgroups.reader import CgroupReader
        from mbcas.cgroups.sampler import Sampler, SignalDelta

        reader = CgroupReader(sandbox.root)
        uid = core_v1.read_namespaced_pod("busy", namespace).metadata.uid
        rel = PodCgroupResolver(reader.layout, prefix=sandbox.prefix).resolve(uid, "Burstable").relpath
        sampler = Sampler(reader)
        sampler.sample({uid: rel})
        time.sleep(2.0)
        delta = sampler.sample({uid: rel})[uid]
        assert isinstance(delta, SignalDelta)
        assert delta.usage_cores >= 0.6
        if delta.throttled_ratio is not None:
            assert delta.throttled_ratio < 0.5

        # SIGKILL the agent mid-run: nothing is lost, and the restarted agent holds the decisions.
        before = {n: a["spec"]["cpuLimit"] for n, a in _allocations(api_client, namespace).items()}
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(timeout=10)
    assert {n: a["spec"]["cpuLimit"] for n, a in _allocations(api_client, namespace).items()} == before

    with _agent_process(kubeconfig, node, sandbox) as agent:
        seen: list[dict[str, str]] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert agent.poll() is None, agent.stderr.read().decode() if agent.stderr else ""
            seen.append({n: a["spec"]["cpuLimit"] for n, a in _allocations(api_client, namespace).items()})
            time.sleep(0.5)
        # No oscillation after the restart: at most one change per pod in 15 s, and no back-and-forth.
        for name in ("busy", "idle"):
            values = [s[name] for s in seen if name in s]
            changes = sum(1 for a, b in itertools.pairwise(values) if a != b)
            assert changes <= 1, values
        assert parse_cpu(seen[-1]["busy"]) >= 700
