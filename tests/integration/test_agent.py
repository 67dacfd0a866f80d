"""The node agent and the controller, both as real ``mbcas`` processes, on the real control plane
with the node emulator running real CPU burners under real CFS quotas: CPU moves to the pod that is
short of it (its quota rises, its throttling falls, its usage rises), the decisions show in
``kubectl get podallocations``, and SIGKILLed controller and agent restart without losing or
flapping anything.

The kernel assertions are about what MBCAS controls (the quota and the throttling it causes), and
about usage only relative to the same pod before the move: on a loaded 2-core machine a pod can
wait for CPU (PSI) well below its quota, so no absolute usage is promised.
"""

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import make_pod, wait_for, wait_running
from mbcas.api.models import GROUP, PLURAL, VERSION
from mbcas.core.units import parse_cpu
from mbcas.local.emulator import DEMAND_ANNOTATION, NodeSpec
from mbcas.local.kernel import KernelMode

pytestmark = [pytest.mark.integration, pytest.mark.kernel, pytest.mark.slow]

UNBOUND_MCPU = 650
"""A limit the 0.6-core burner's quota no longer binds at (see the first test)."""

# Fast controller settings (env of the `mbcas controller` process); the Lease lives in the test's
# namespace so no other test's controller holds it.
_CONTROLLER_ENV = {
    "MBCAS_CONTROLLER_RULES__MIN_INTERVAL_S": "1",
    "MBCAS_CONTROLLER_RESYNC_S": "2",
    "MBCAS_CONTROLLER_RULES__FAILURE_COOLDOWN_S": "0.5",
    "MBCAS_CONTROLLER_RULES__FAILURE_COOLDOWN_MAX_S": "4",
    "MBCAS_CONTROLLER_LEASE_DURATION_S": "4",
    "MBCAS_CONTROLLER_LEASE_RENEW_DEADLINE_S": "3",
    "MBCAS_CONTROLLER_LEASE_RENEW_S": "1",
}


def _allocations(api_client: Any, namespace: str) -> dict[str, dict[str, Any]]:
    from kubernetes import client

    items = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )
    return {item["spec"]["podName"]: item for item in items.get("items", [])}


def _limits(core_v1: Any, namespace: str) -> dict[str, int]:
    return {
        pod.metadata.name: parse_cpu(pod.spec.containers[0].resources.limits["cpu"])
        for pod in core_v1.list_namespaced_pod(namespace).items
    }


@contextlib.contextmanager
def _process(
    cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` with its output in ``log``; killed (by pid) and reaped even on failure."""
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _agent(
    kubeconfig: str, node: str, sandbox: Any, log: Path, config_map: str = ""
) -> contextlib.AbstractContextManager[Any]:
    cmd = [
        sys.executable, "-m", "mbcas", "-v", "agent",
        "--node", node, "--kubeconfig", kubeconfig, "--tick", "1", "--reserve", "200m",
        "--cgroup-root", str(sandbox.root), "--cgroup-prefix", sandbox.prefix,
        "--config-map", config_map, "--metrics-port", "0",
    ]  # fmt: skip
    return _process(cmd, log, {"MBCAS_AGENT_CONFIG_POLL_S": "1"})


def _controller(kubeconfig: str, namespace: str, log: Path) -> contextlib.AbstractContextManager[Any]:
    cmd = [
        sys.executable, "-m", "mbcas", "-v", "controller", "--kubeconfig", kubeconfig,
        "--namespace", namespace, "--lease-namespace", namespace,
        "--metrics-port", "0", "--health-port", "0",
    ]  # fmt: skip
    return _process(cmd, log, _CONTROLLER_ENV)


@dataclass(frozen=True)
class _Window:
    """The busy pod over one interval: its usage and CFS limit, and the most throttled of the pod
    cgroup and its container cgroups (share of periods throttled, throttled time in cores)."""

    usage_cores: float
    limit_cores: float | None
    throttled_ratio: float
    throttled_cores: float

    @classmethod
    def of(cls, deltas: list[Any]) -> _Window:
        pod = deltas[0]
        ratios = [d.throttled_ratio for d in deltas if d.throttled_ratio is not None]
        times = [d.throttled_cores for d in deltas if d.throttled_cores is not None]
        assert ratios and times, f"this kernel reports no CFS throttling: {deltas}"
        return cls(pod.usage_cores, pod.limit_cores, max(ratios), max(times))


def _alive(proc: subprocess.Popen[bytes], log: Path) -> None:
    assert proc.poll() is None, f"{proc.args[3:5]} exited {proc.returncode}:\n{log.read_text()[-3000:]}"


def test_agent_and_controller_move_cpu_to_the_busy_pod_and_survive_sigkill(  # noqa: PLR0917
    api_client: Any,
    core_v1: Any,
    kubeconfig: str,
    namespace: str,
    control_plane: Any,
    crd: str,
    make_emulator: Callable[..., Any],
    tmp_path: Path,
) -> None:
    from mbcas.cgroups.paths import PodCgroupResolver
    from mbcas.cgroups.reader import CgroupReader
    from mbcas.cgroups.sampler import Sampler, SignalDelta

    node = f"agent-{uuid.uuid4().hex[:6]}"
    # 1.2 cores allocatable − 200m reserve: the two pods share 1 core.
    emulator = make_emulator(nodes=[NodeSpec(node, "1.2", "4Gi")], kernel=KernelMode(), resize_delay=0.3)
    sandbox = emulator.sandbox
    if sandbox is None or not sandbox.available:
        pytest.skip(f"cannot create cgroups here: {sandbox.reason if sandbox else 'no sandbox'}")
    busy = make_pod("busy", "100m", "400m", node, annotations={DEMAND_ANNOTATION: "0.6"})
    idle = make_pod("idle", "100m", "400m", node, annotations={DEMAND_ANNOTATION: "0.05"})
    for body in (busy, idle):
        core_v1.create_namespaced_pod(namespace, body)
    for name in ("busy", "idle"):
        wait_running(core_v1, namespace, name)
    agent_log, controller_log = tmp_path / "agent.log", tmp_path / "controller.log"

    # The busy pod's cgroup, sampled by the same code the agent uses.
    reader = CgroupReader(sandbox.root)
    uid = core_v1.read_namespaced_pod("busy", namespace).metadata.uid
    rel = wait_for(
        lambda: PodCgroupResolver(reader.layout, prefix=sandbox.prefix).resolve(uid, "Burstable").relpath,
        timeout=20,
        message="the busy pod's cgroup",
    )
    # The quota is set on the pod and on its container (as the kubelet does); either may be the one
    # the kernel throttles, so throttling is read from both.
    hierarchy = Path(reader.layout.cpu_dir or reader.layout.base_dir)
    cgroups = [rel] + [f"{rel}/{d.name}" for d in os.scandir(hierarchy / rel) if d.is_dir()]
    sampler = Sampler(reader)

    def window(seconds: float) -> _Window:
        sampler.sample({c: c for c in cgroups})
        time.sleep(seconds)
        deltas = sampler.sample({c: c for c in cgroups})
        assert all(isinstance(d, SignalDelta) for d in deltas.values()), deltas
        return _Window.of([deltas[c] for c in cgroups])  # type: ignore[misc]

    # Before: the busy pod burns against its 400m quota, with nobody to move CPU yet. It wants
    # 0.6 core; once it gets >= UNBOUND_MCPU the quota no longer binds (the burner's 100 ms duty
    # cycle never takes more than 60 ms of a CFS period), so its throttling must nearly vanish. The
    # agent raises it to just above what the kernel's throttled time shows it wants (0.63 cores on a
    # loaded host gave 691m), so the bar sits between the burner's 600m and that.
    wait_for(lambda: window(1.0).usage_cores > 0.1, timeout=30, message="the busy pod burning")
    before = window(3.0)
    assert before.limit_cores == pytest.approx(0.4, abs=0.01)
    assert before.throttled_ratio >= 0.3, f"a 0.6-core burner under a 400m quota is throttled: {before}"
    assert before.throttled_cores > 0, before

    with (
        _controller(kubeconfig, namespace, controller_log) as controller,
        _agent(kubeconfig, node, sandbox, agent_log) as agent,
    ):
        # Both pods get an allocation, and CPU moves to the busy pod.
        allocs = wait_for(
            lambda: (a := _allocations(api_client, namespace)) and len(a) == 2 and a, timeout=30
        )
        assert {a["spec"]["nodeName"] for a in allocs.values()} == {node}
        # The raise needs the kernel to report the quota binding (throttled in most periods); a
        # loaded host starves the burner below its quota for a while, so allow for that.
        try:
            wait_for(lambda: _limits(core_v1, namespace)["busy"] >= UNBOUND_MCPU, timeout=90)
        except AssertionError as exc:
            decided = {n: a["spec"] for n, a in _allocations(api_client, namespace).items()}
            raise AssertionError(
                f"busy pod's limit never reached {UNBOUND_MCPU}m: limits {_limits(core_v1, namespace)}, "
                f"decisions {decided}, agent log:\n{agent_log.read_text()[-2000:]}"
            ) from exc
        _alive(controller, controller_log)
        _alive(agent, agent_log)
        allocs = _allocations(api_client, namespace)
        busy_mcpu, idle_mcpu = (parse_cpu(allocs[n]["spec"]["cpuLimit"]) for n in ("busy", "idle"))
        # Limits are burst caps: they may add up to limit_overcommit (2.0) x the shareable 1 core.
        assert busy_mcpu >= UNBOUND_MCPU and busy_mcpu + idle_mcpu <= 2000
        reason = allocs["busy"]["spec"]["reason"]
        assert "short of CPU" in reason or "throttled" in reason, reason
        assert allocs["busy"]["metadata"]["ownerReferences"][0]["kind"] == "Pod"
        # The decisions and their reasons show in kubectl.
        out = control_plane.kubectl("get", "podallocations", "-n", namespace, check=True).stdout
        assert "busy" in out and "idle" in out and "REASON" in out.upper()

        # After: the kernel enforces the new quota, the pod is throttled far less and uses more.
        unbound = UNBOUND_MCPU / 1000
        wait_for(lambda: window(0.5).limit_cores >= unbound, timeout=10, message="the quota in the cgroup")
        after = window(3.0)
        assert after.limit_cores is not None and after.limit_cores >= unbound
        assert after.throttled_ratio <= 0.5 * before.throttled_ratio, (before, after)
        assert after.throttled_cores <= 0.5 * before.throttled_cores, (before, after)
        assert after.usage_cores > 1.05 * before.usage_cores, (before, after)

        # SIGKILL the controller, then the agent, mid-run.
        kept = {n: a["spec"]["cpuLimit"] for n, a in _allocations(api_client, namespace).items()}
        limits = _limits(core_v1, namespace)
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait(timeout=10)
        time.sleep(1.0)
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(timeout=10)
    # Nothing is lost: the decisions and the pods' limits are what they were.
    assert {n: a["spec"]["cpuLimit"] for n, a in _allocations(api_client, namespace).items()} == kept
    assert _limits(core_v1, namespace) == limits

    with (
        _controller(kubeconfig, namespace, controller_log) as controller,
        _agent(kubeconfig, node, sandbox, agent_log) as agent,
    ):
        seen_allocs: list[dict[str, str]] = []
        seen_limits: list[dict[str, int]] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            _alive(controller, controller_log)
            _alive(agent, agent_log)
            seen_allocs.append(
                {n: a["spec"]["cpuLimit"] for n, a in _allocations(api_client, namespace).items()}
            )
            seen_limits.append(_limits(core_v1, namespace))
            time.sleep(0.5)
        # No oscillation after the restarts: at most one change per pod in 15 s, in the decisions
        # and in the limits the controller applies.
        for name in ("busy", "idle"):
            for series in (
                [s[name] for s in seen_allocs if name in s],
                [s[name] for s in seen_limits if name in s],
            ):
                changes = sum(1 for a, b in itertools.pairwise(series) if a != b)
                assert changes <= 1, series
            assert name in seen_allocs[-1], f"allocation of {name} lost after the restart"
        assert parse_cpu(seen_allocs[-1]["busy"]) >= UNBOUND_MCPU
        assert seen_limits[-1]["busy"] >= UNBOUND_MCPU


def test_limit_overcommit_from_the_config_map_applies_without_a_restart(  # noqa: PLR0917
    api_client: Any,
    core_v1: Any,
    kubeconfig: str,
    namespace: str,
    crd: str,
    make_emulator: Callable[..., Any],
    tmp_path: Path,
) -> None:
    # Three pods throttled at 400m, each wanting 0.6 core, share 1 core (1.2 allocatable - 200m
    # reserve). With the default limit_overcommit 2.0 the agent's decisions add up to more than
    # the node; set to 1.0 in the ConfigMap, the same running agent brings them within 1 core.
    node = f"bound-{uuid.uuid4().hex[:6]}"
    emulator = make_emulator(nodes=[NodeSpec(node, "1.2", "4Gi")], kernel=KernelMode(), resize_delay=0.3)
    sandbox = emulator.sandbox
    if sandbox is None or not sandbox.available:
        pytest.skip(f"cannot create cgroups here: {sandbox.reason if sandbox else 'no sandbox'}")
    names = ("a", "b", "c")
    for name in names:
        body = make_pod(name, "100m", "400m", node, annotations={DEMAND_ANNOTATION: "0.6"})
        core_v1.create_namespaced_pod(namespace, body)
    for name in names:
        wait_running(core_v1, namespace, name)
    core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "mbcas-config"}, "data": {"config.yaml": "mode: enforce\n"}}
    )

    def total() -> int:
        allocs = _allocations(api_client, namespace)
        return sum(parse_cpu(a["spec"]["cpuLimit"]) for a in allocs.values()) if len(allocs) == 3 else -1

    log = tmp_path / "agent.log"
    with _agent(kubeconfig, node, sandbox, log, config_map=f"{namespace}/mbcas-config") as agent:
        wait_for(lambda: total() > 1000, timeout=45, message="decisions overcommitting the node")
        _alive(agent, log)
        core_v1.patch_namespaced_config_map(
            "mbcas-config",
            namespace,
            {"data": {"config.yaml": "mode: enforce\nplanner: {limit_overcommit: 1.0}\n"}},
        )
        wait_for(lambda: 0 < total() <= 1000, timeout=30, message="decisions within the strict bound")
        _alive(agent, log)  # the same process: no restart
        reasons = [a["spec"]["reason"] for a in _allocations(api_client, namespace).values()]
        assert any("1× bound" in r for r in reasons), reasons


def test_the_agent_writes_nothing_before_its_config_map_and_keeps_the_last_good_one(  # noqa: PLR0917
    api_client: Any,
    core_v1: Any,
    kubeconfig: str,
    namespace: str,
    crd: str,
    make_emulator: Callable[..., Any],
    tmp_path: Path,
) -> None:
    # Issue 14 item 10: the agent started in enforce from built-in defaults when its ConfigMap
    # was missing, and went back to them when the ConfigMap was deleted.
    node = f"closed-{uuid.uuid4().hex[:6]}"
    emulator = make_emulator(nodes=[NodeSpec(node, "2", "4Gi")], kernel=KernelMode(), resize_delay=0.3)
    sandbox = emulator.sandbox
    if sandbox is None or not sandbox.available:
        pytest.skip(f"cannot create cgroups here: {sandbox.reason if sandbox else 'no sandbox'}")
    body = make_pod("web", "100m", "400m", node, annotations={DEMAND_ANNOTATION: "0.3"})
    core_v1.create_namespaced_pod(namespace, body)
    wait_running(core_v1, namespace, "web")

    def modes() -> set[str]:
        return {a["spec"]["mode"] for a in _allocations(api_client, namespace).values()}

    log = tmp_path / "agent.log"
    with _agent(kubeconfig, node, sandbox, log, config_map=f"{namespace}/mbcas-config") as agent:
        wait_for(lambda: "tick" in log.read_text() or "ConfigMap" in log.read_text(), timeout=30)
        time.sleep(6)  # several ticks and ConfigMap polls
        _alive(agent, log)
        assert modes() == set(), "the agent wrote decisions before it had read its ConfigMap"
        assert "cannot be read (NotFound), staying in observe mode" in log.read_text()
        core_v1.create_namespaced_config_map(
            namespace, {"metadata": {"name": "mbcas-config"}, "data": {"config.yaml": "mode: recommend\n"}}
        )
        wait_for(lambda: modes() == {"recommend"}, timeout=30, message="a recommendation once it is read")
        core_v1.delete_namespaced_config_map("mbcas-config", namespace)
        wait_for(
            lambda: log.read_text().count("cannot be read (NotFound), keeping the last good config") >= 1,
            timeout=30,
            message="the deletion noticed",
        )
        time.sleep(3)
        _alive(agent, log)
        assert modes() == {"recommend"}, "a deleted ConfigMap reverted the agent to its defaults (enforce)"
