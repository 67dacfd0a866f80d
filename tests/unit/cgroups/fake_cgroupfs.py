"""A fake cgroupfs in a temporary directory, laid out like a real node for each layout.

Imported by the cgroup unit tests (and usable by others) as ``fake_cgroupfs``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mbcas.cgroups import LayoutKind

__all__ = ["FakeCgroupFS", "FakeClock"]


@dataclass
class FakeCgroupFS:
    """Writes cgroup CPU files the way the kernel lays them out for ``kind``.

    ``v1_comounted`` co-mounts cpu and cpuacct as ``cpu,cpuacct`` with ``cpu``/``cpuacct`` symlinks;
    ``v2_cpu`` says whether the cgroup2 hierarchy has the cpu controller (throttling, cpu.max).
    """

    root: Path
    kind: LayoutKind
    v2_cpu: bool = True
    v1_comounted: bool = False

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.kind is LayoutKind.V2:
            (self.root / "cgroup.controllers").write_text(
                "cpuset cpu io memory pids\n" if self.v2_cpu else "io\n"
            )
            return
        if self.kind is LayoutKind.HYBRID:
            (self.root / "unified").mkdir()
            (self.root / "unified" / "cgroup.controllers").write_text("\n")
            self.v2_cpu = False
        if self.v1_comounted:
            (self.root / "cpu,cpuacct").mkdir()
            os.symlink("cpu,cpuacct", self.root / "cpu")
            os.symlink("cpu,cpuacct", self.root / "cpuacct")
        else:
            (self.root / "cpu").mkdir()
            (self.root / "cpuacct").mkdir()
        (self.root / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
        (self.root / "cpuacct" / "cpuacct.usage").write_text("0\n")

    @property
    def v2_dir(self) -> Path | None:
        if self.kind is LayoutKind.V2:
            return self.root
        if self.kind is LayoutKind.HYBRID:
            return self.root / "unified"
        return None

    def mkdir(self, relpath: str) -> None:
        for base in self._dirs():
            (base / relpath).mkdir(parents=True, exist_ok=True)

    def _dirs(self) -> list[Path]:
        dirs = [self.v2_dir] if self.v2_dir is not None else []
        if self.kind is not LayoutKind.V2:
            dirs += [self.root / "cpu", self.root / "cpuacct"]
        return [d for d in dirs if d is not None]

    def write(
        self,
        relpath: str,
        *,
        usage_usec: int = 0,
        nr_periods: int = 0,
        nr_throttled: int = 0,
        throttled_usec: int = 0,
        some_usec: int | None = 0,
        full_usec: int | None = 0,
        quota_usec: int | None = None,
        period_usec: int = 100_000,
    ) -> None:
        """Write one cgroup's counters (``some_usec=None``: no cpu.pressure file at all)."""
        self.mkdir(relpath)
        v2 = self.v2_dir
        if v2 is not None:
            lines = [
                f"usage_usec {usage_usec}",
                f"user_usec {usage_usec // 2}",
                f"system_usec {usage_usec // 2}",
            ]
            if self.v2_cpu:
                lines += [
                    f"nr_periods {nr_periods}",
                    f"nr_throttled {nr_throttled}",
                    f"throttled_usec {throttled_usec}",
                    "nr_bursts 0",
                    "burst_usec 0",
                ]
                quota = "max" if quota_usec is None else str(quota_usec)
                (v2 / relpath / "cpu.max").write_text(f"{quota} {period_usec}\n")
            (v2 / relpath / "cpu.stat").write_text("\n".join(lines) + "\n")
            pressure = v2 / relpath / "cpu.pressure"
            if some_usec is None:
                pressure.unlink(missing_ok=True)
            else:
                text = f"some avg10=0.00 avg60=0.00 avg300=0.00 total={some_usec}\n"
                if full_usec is not None:
                    text += f"full avg10=0.00 avg60=0.00 avg300=0.00 total={full_usec}\n"
                pressure.write_text(text)
        if self.kind is not LayoutKind.V2:
            cpu = self.root / "cpu" / relpath
            (cpu / "cpu.stat").write_text(
                f"nr_periods {nr_periods}\nnr_throttled {nr_throttled}\n"
                f"throttled_time {throttled_usec * 1000}\nnr_bursts 0\nburst_time 0\n"
            )
            (cpu / "cpu.cfs_quota_us").write_text(f"{-1 if quota_usec is None else quota_usec}\n")
            (cpu / "cpu.cfs_period_us").write_text(f"{period_usec}\n")
            (self.root / "cpuacct" / relpath / "cpuacct.usage").write_text(f"{usage_usec * 1000}\n")


class FakeClock:
    """A monotonic nanosecond clock the test advances by hand."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += round(seconds * 1e9)
