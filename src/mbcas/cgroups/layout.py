"""Detection of the cgroup layout under a host root: pure v2, v1, or hybrid.

The layout is detected from the files present under the root, never from ``/proc/mounts``, so
that it works the same on a node, inside a DaemonSet that mounts the host's ``/sys/fs/cgroup`` at
``/host/sys/fs/cgroup``, and on a fake tree in a temporary directory:

* **v2** (unified): ``<root>/cgroup.controllers`` exists. Everything comes from ``<root>``.
* **hybrid**: v1 controllers under ``<root>/<controller>`` plus a cgroup2 hierarchy at
  ``<root>/unified``. Usage and PSI come from the cgroup2 hierarchy (when the pod has a directory
  there), throttling and quota from the v1 ``cpu`` controller, usage falls back to ``cpuacct``.
* **v1**: only v1 controllers. ``cpu`` and ``cpuacct`` may be separate mounts or co-mounted as
  ``cpu,cpuacct`` (with ``cpu`` and ``cpuacct`` symlinks); both are found. There is no PSI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mbcas.cgroups.errors import CgroupError, ErrorKind

__all__ = ["DEFAULT_ROOT", "Layout", "LayoutKind", "detect_layout"]

DEFAULT_ROOT = "/sys/fs/cgroup"


class LayoutKind(StrEnum):
    """How the cgroup hierarchies are mounted."""

    V2 = "v2"
    V1 = "v1"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each CPU-related hierarchy lives (absolute directories; ``None`` when absent)."""

    kind: LayoutKind
    root: str
    v2_dir: str | None
    """The cgroup2 hierarchy: ``root`` for v2, ``root/unified`` for hybrid, ``None`` for v1."""
    cpu_dir: str | None
    """The v1 ``cpu`` controller (quota and throttling), ``None`` for v2."""
    cpuacct_dir: str | None
    """The v1 ``cpuacct`` controller (usage), ``None`` for v2."""
    v2_cpu_controller: bool = False
    """Whether the cgroup2 root offers the ``cpu`` controller (``cpu.max`` and throttling)."""

    @property
    def base_dir(self) -> str:
        """The hierarchy used to find pods: the cgroup2 one when present, else v1 ``cpu``."""
        base = self.v2_dir or self.cpu_dir or self.cpuacct_dir
        assert base is not None  # guaranteed by detect_layout
        return base

    def describe(self) -> str:
        """A one-line human description, for logs and ``mbcas sense``."""
        parts = [f"{self.kind.value} layout at {self.root}"]
        if self.v2_dir:
            ctl = "with" if self.v2_cpu_controller else "without"
            parts.append(f"cgroup2 {self.v2_dir} ({ctl} cpu controller)")
        if self.cpu_dir:
            parts.append(f"v1 cpu {self.cpu_dir}")
        if self.cpuacct_dir:
            parts.append(f"v1 cpuacct {self.cpuacct_dir}")
        return "; ".join(parts)


def _v1_dir(root: Path, controller: str, marker: str) -> str | None:
    for name in (controller, "cpu,cpuacct", "cpuacct,cpu"):
        candidate = root / name
        if (candidate / marker).exists():
            return str(candidate)
    return None


def _has_cpu_controller(v2_dir: Path) -> bool:
    try:
        return "cpu" in (v2_dir / "cgroup.controllers").read_text().split()
    except OSError:
        return False


def detect_layout(root: str | os.PathLike[str] = DEFAULT_ROOT) -> Layout:
    """Detect the layout under ``root``; raise :class:`CgroupError` when no CPU hierarchy is found."""
    base = Path(root)
    if not base.is_dir():
        raise CgroupError(ErrorKind.NOT_FOUND, "cgroup root is not a directory", str(base))
    if (base / "cgroup.controllers").exists():
        return Layout(
            kind=LayoutKind.V2,
            root=str(base),
            v2_dir=str(base),
            cpu_dir=None,
            cpuacct_dir=None,
            v2_cpu_controller=_has_cpu_controller(base),
        )
    cpu_dir = _v1_dir(base, "cpu", "cpu.cfs_quota_us")
    cpuacct_dir = _v1_dir(base, "cpuacct", "cpuacct.usage")
    unified = base / "unified"
    v2_dir = str(unified) if (unified / "cgroup.controllers").exists() else None
    if cpu_dir is None and cpuacct_dir is None:
        if v2_dir is not None:
            # A cgroup2 mount at unified/ with no v1 CPU controllers: read it as hybrid anyway.
            return Layout(LayoutKind.HYBRID, str(base), v2_dir, None, None, _has_cpu_controller(unified))
        raise CgroupError(
            ErrorKind.NOT_FOUND,
            "no cgroup hierarchy found (no cgroup.controllers, no cpu/ or cpuacct/ controller)",
            str(base),
        )
    if v2_dir is not None:
        return Layout(
            LayoutKind.HYBRID, str(base), v2_dir, cpu_dir, cpuacct_dir, _has_cpu_controller(unified)
        )
    return Layout(LayoutKind.V1, str(base), None, cpu_dir, cpuacct_dir)
