"""The node emulator's kernel mode runs real processes under real CPU quotas: an emulated pod
limited to 200m that wants a full core is throttled and stalls (CPU pressure), and an in-place
resize to 1000m, actuated by the emulator as the kubelet would, lets its usage rise."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import make_pod, resize_pod, wait_for_pod, wait_running
from mbcas.local.emulator import DEMAND_ANNOTATION, NodeSpec
from mbcas.local.kernel import KernelMode

pytestmark = [pytest.mark.integration, pytest.mark.kernel, pytest.mark.slow]


def _kv(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines() if line.strip())}


def _pressure_full_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("full"):
            return int(line.rsplit("total=", 1)[1])
    raise AssertionError(f"no 'full' line in {path}")


class _Files:
    """Where this machine keeps the container's usage, throttling, pressure and quota."""

    def __init__(self, sandbox: Any, relpath: str) -> None:
        layout = sandbox.layout
        self.v2 = Path(layout.v2_dir) / relpath if layout.v2_dir else None
        self.cpu = Path(layout.cpu_dir) / relpath if layout.cpu_dir else None
        self.cpuacct = Path(layout.cpuacct_dir) / relpath if layout.cpuacct_dir else None
        self.v2_quota = layout.kind.value == "v2"

    def usage_usec(self) -> int:
        if self.v2 is not None:
            return _kv(self.v2 / "cpu.stat")["usage_usec"]
        assert self.cpuacct is not None
        return int((self.cpuacct / "cpuacct.usage").read_text()) // 1000

    def throttled(self) -> int:
        directory = self.v2 if self.v2_quota else self.cpu
        assert directory is not None
        return _kv(directory / "cpu.stat")["nr_throttled"]

    def pressure_full_usec(self) -> int | None:
        if self.v2 is None or not (self.v2 / "cpu.pressure").exists():
            return None
        return _pressure_full_total(self.v2 / "cpu.pressure")

    def quota_us(self) -> int:
        if self.v2_quota:
            assert self.v2 is not None
            return int((self.v2 / "cpu.max").read_text().split()[0])
        assert self.cpu is not None
        return int((self.cpu / "cpu.cfs_quota_us").read_text())


def _rate(files: _Files, seconds: float) -> float:
    u0, t0 = files.usage_usec(), time.monotonic()
    time.sleep(seconds)
    return (files.usage_usec() - u0) / 1e6 / (time.monotonic() - t0)


def test_quota_throttles_a_busy_pod_and_a_resize_lifts_it(
    core_v1: Any, namespace: str, make_emulator: Callable[..., Any]
) -> None:
    node = f"kernel-{uuid.uuid4().hex[:6]}"
    emulator = make_emulator(nodes=[NodeSpec(node, "2", "4Gi")], kernel=KernelMode(), resize_delay=0.2)
    sandbox = emulator.sandbox
    if sandbox is None or not sandbox.available:
        pytest.skip(f"cannot create cgroups here: {sandbox.reason if sandbox else 'no sandbox'}")
    core_v1.create_namespaced_pod(
        namespace, make_pod("busy", "100m", "200m", node=node, annotations={DEMAND_ANNOTATION: "1.0"})
    )
    pod = wait_running(core_v1, namespace, "busy")
    cid = pod.status.container_statuses[0].container_id.split("://", 1)[1]
    relpath = sandbox.container_path(pod.metadata.uid, cid)
    assert relpath is not None
    assert relpath.startswith(f"{sandbox.prefix}/kubepods.slice/kubepods-burstable.slice/")
    assert relpath.endswith(f"/cri-containerd-{cid}.scope")
    files = _Files(sandbox, relpath)
    assert files.quota_us() == 20_000  # 200m of a 100 ms period

    time.sleep(0.5)  # let the burner start
    throttled0, pressure0 = files.throttled(), files.pressure_full_usec()
    limited = _rate(files, 2.0)
    throttled1, pressure1 = files.throttled(), files.pressure_full_usec()
    assert limited <= 0.2 * 1.15, f"usage {limited:.3f} cores exceeds the 200m quota"
    assert throttled1 - throttled0 >= 10, "a busy process under a 20% quota must be throttled"
    if pressure0 is not None and pressure1 is not None:
        # Stalled on the quota most of the time: well over half of the 2 s window.
        assert pressure1 - pressure0 > 500_000, f"CPU pressure full rose only {pressure1 - pressure0} us"

    resize_pod(core_v1, namespace, "busy", cpu_limit="1")
    wait_for_pod(
        core_v1,
        namespace,
        "busy",
        lambda p: p.status.container_statuses[0].resources.limits["cpu"] == "1",
        timeout=15,
        message="resize reported",
    )
    assert files.quota_us() == 100_000
    lifted = _rate(files, 2.0)
    assert lifted > max(1.5 * limited, 0.3), (
        f"usage {lifted:.3f} cores after the resize vs {limited:.3f} before"
    )

    # Stopping the emulator kills its processes and removes every cgroup it made.
    pids = {int(p) for p in (Path(sandbox.layout.base_dir) / relpath / "cgroup.procs").read_text().split()}
    assert pids
    emulator.stop()
    hierarchy_dirs = [
        d for d in (sandbox.layout.v2_dir, sandbox.layout.cpu_dir, sandbox.layout.cpuacct_dir) if d
    ]
    assert not any((Path(d) / sandbox.prefix).exists() for d in hierarchy_dirs)
    assert not any(Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid) for pid in pids)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
