"""``mbcas demo --duration``: the whole product runs on one machine, CPU moves, and everything it
started is gone afterwards."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.kernel, pytest.mark.slow]


def test_demo_moves_cpu_and_cleans_up(control_plane: object) -> None:
    # control_plane: makes sure the binaries are built (the demo starts its own control plane).
    before = _emulator_cgroups()
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
    # The throttled pods get idle CPU: batch wants 0.9 core from the start under a 500m limit.
    assert "idle CPU to a throttled pod: batch used up to" in out.stdout, out.stdout[-3000:]
    assert "OS signals are ignored" not in out.stdout + out.stderr  # kopf noise a user cannot act on
    assert "summary: web" in out.stdout and "summary: batch" in out.stdout
    # Cleanup: the demo's cgroups are gone (other tests' sandboxes may come and go meanwhile).
    assert out.stdout.count("stopping and cleaning up") == 1
    assert _emulator_cgroups() <= before


def _emulator_cgroups() -> set[str]:
    import glob

    return set(glob.glob("/sys/fs/cgroup/*/mbcas-emu-*")) | set(glob.glob("/sys/fs/cgroup/mbcas-emu-*"))
