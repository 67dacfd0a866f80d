"""What the kernel counted: each pod's cgroup counters over the measurement window.

The experiment reads the pods' container cgroups directly with
:class:`mbcas.cgroups.reader.CgroupReader` (CPU usage, throttled time from v1 ``throttled_time`` or
v2 ``throttled_usec``, PSI ``some`` and ``full``): :func:`container_paths` finds each pod's
container cgroup on the emulated node from its UID, QoS class and container ID (systemd driver
layout under the emulator's prefix), and :func:`kernel_delta` turns two snapshots into a
:class:`KernelDelta` in seconds. :func:`set_node_quota` puts the emulated node's CPU as a CFS quota
on its ``kubepods.slice``, as a kubelet's node allocatable would, so that contention is real and
does not depend on what else runs on the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbcas.cgroups.layout import LayoutKind
from mbcas.cgroups.paths import CgroupDriver, PodCgroup, container_relpath, pod_relpath
from mbcas.cgroups.reader import CgroupReader, CpuSnapshot
from mbcas.core.qos import QoSClass
from mbcas.experiment.scenarios import ExperimentError

__all__ = ["CFS_PERIOD_US", "KernelDelta", "container_paths", "kernel_delta", "set_node_quota"]

CFS_PERIOD_US = 100_000


def container_paths(
    pods: dict[str, Any], prefix: str, driver: CgroupDriver = CgroupDriver.SYSTEMD
) -> dict[str, str]:
    """Each pod's container cgroup path relative to the cgroup root (the emulator lays pods out as
    the systemd driver does; the real node's kubelet uses the cgroupfs driver)."""
    out = {}
    for name, pod in pods.items():
        uid = pod["metadata"]["uid"]
        qos = QoSClass.parse(pod["status"].get("qosClass", "Burstable"))
        cgroup = PodCgroup(
            uid=uid,
            qos=qos,
            driver=driver,
            relpath=pod_relpath(uid, qos, driver, prefix),
        )
        cid = pod["status"]["containerStatuses"][0]["containerID"]
        out[name] = container_relpath(cgroup, cid)
    return out


def set_node_quota(reader: CgroupReader, prefix: str, cores: float, top: str = "kubepods.slice") -> str:
    """Put ``cores`` as a CFS quota on the node's pods cgroup (the emulator's ``kubepods.slice``,
    the real kubelet's ``kubepods``); return the file."""
    layout = reader.layout
    quota = round(cores * CFS_PERIOD_US)
    if layout.kind is LayoutKind.V2:
        path = Path(layout.base_dir) / prefix / top / "cpu.max"
        path.write_text(f"{quota} {CFS_PERIOD_US}")
        return str(path)
    if layout.cpu_dir is None:
        raise ExperimentError("no v1 cpu controller: cannot cap the emulated node")
    directory = Path(layout.cpu_dir) / prefix / top
    (directory / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
    (directory / "cpu.cfs_quota_us").write_text(str(quota))
    return str(directory / "cpu.cfs_quota_us")


@dataclass(frozen=True, slots=True)
class KernelDelta:
    """Counters of one pod over the window, in seconds (CPU or wall)."""

    usage_s: float
    throttled_s: float | None
    psi_full_s: float | None
    psi_some_s: float | None


def kernel_delta(a: CpuSnapshot, b: CpuSnapshot) -> KernelDelta:
    """The counters from snapshot ``a`` to the later ``b``, in seconds (``None`` where unread)."""

    def sub(x: int | None, y: int | None) -> float | None:
        return None if x is None or y is None else max(0, y - x) / 1e6

    return KernelDelta(
        usage_s=max(0, b.usage_usec - a.usage_usec) / 1e6,
        throttled_s=sub(a.throttled_usec, b.throttled_usec),
        psi_full_s=sub(a.psi_full_usec, b.psi_full_usec),
        psi_some_s=sub(a.psi_some_usec, b.psi_some_usec),
    )
