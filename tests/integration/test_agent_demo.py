"""``mbcas demo --duration``: the whole product runs on one machine, CPU moves, and everything it
started is gone afterwards."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.kernel, pytest.mark.slow]


def test_demo_moves_cpu_and_cleans_up(control_plane: object) -> None:
    # control_plane: makes sure the binaries are built (the demo starts its own control plane).
    out = subprocess.run(
        [sys.executable, "-m", "mbcas", "demo", "--duration", "35"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if "cannot run real cgroups here" in out.stderr:
        pytest.skip(out.stderr.strip())
    assert out.returncode == 0, out.stderr[-2000:]
    assert "CPU moved" in out.stdout, out.stdout[-3000:]
    assert "summary: web" in out.stdout and "summary: batch" in out.stdout
    # Cleanup: no demo cgroups are left behind.
    leftover = subprocess.run(
        ["bash", "-c", "ls -d /sys/fs/cgroup/*/mbcas-emu-* /sys/fs/cgroup/mbcas-emu-* 2>/dev/null | wc -l"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.stdout.count("stopping and cleaning up") == 1
    assert leftover.returncode == 0
