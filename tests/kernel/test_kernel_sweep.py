"""The emulator's start-up sweep removes the cgroup trees of emulators that died without cleaning
up (SIGKILL), whatever their prefix, and never trusts a PID that now belongs to another process.

Each test leaves a real tree behind the way a killed emulator does and checks that a new sandbox
removes it; whatever a test leaves is removed in ``finally`` (directories only, leaf-first).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mbcas.local.kernel import KernelMode, KernelSandbox

ORPHAN = """
import sys, time
from mbcas.local.kernel import KernelMode, KernelSandbox
sandbox = KernelSandbox(KernelMode(prefix=sys.argv[1] or None))
print(sandbox.prefix if sandbox.available else "", flush=True)
time.sleep(600)
"""


def _bases() -> list[Path]:
    probe = KernelSandbox(KernelMode())
    try:
        if not probe.available:
            pytest.skip(f"cannot create cgroups here: {probe.reason}")
        return probe._hierarchies()
    finally:
        probe.close()


def _remove(bases: list[Path], prefix: str) -> None:
    for base in bases:
        root = base / prefix
        if root.is_dir():
            for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                path.rmdir()
            root.rmdir()


def _orphan(prefix: str | None) -> str:
    """A sandbox made by a child process that is then SIGKILLed: its cgroups stay behind."""
    child = subprocess.Popen([sys.executable, "-c", ORPHAN, prefix or ""], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        made = child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait(10)
    if not made:
        pytest.skip("the child could not create its sandbox")
    return made


@pytest.fixture
def bases() -> Iterator[list[Path]]:
    yield _bases()


def test_a_dead_emulators_tree_under_a_custom_prefix_is_swept(bases: list[Path]) -> None:
    prefix = _orphan(f"mbcas-test-custom-{secrets.token_hex(3)}")
    try:
        assert any((base / prefix).is_dir() for base in bases)
        sandbox = KernelSandbox(KernelMode())  # a new emulator starts and sweeps
        sandbox.close()
        assert not any((base / prefix).is_dir() for base in bases), "the custom-prefix tree was left behind"
    finally:
        _remove(bases, prefix)


def test_a_tree_whose_owner_pid_was_reused_is_swept(bases: list[Path]) -> None:
    # An emulator died; its PID now belongs to an unrelated process (a `sleep` here).
    other = subprocess.Popen(["sleep", "60"])
    prefix = f"mbcas-emu-{other.pid}-{secrets.token_hex(3)}"
    owners = Path(tempfile.gettempdir()) / "mbcas-emu-owners"
    marker = owners / f"{prefix}.json"
    try:
        for base in bases:
            (base / prefix / "kubepods.slice").mkdir(parents=True)
        owners.mkdir(exist_ok=True)
        # What the dead emulator recorded: its PID and that process's start time (not sleep's).
        marker.write_text(
            json.dumps(
                {"prefix": prefix, "pid": other.pid, "start": "1", "dirs": [str(b / prefix) for b in bases]}
            )
        )
        sandbox = KernelSandbox(KernelMode())
        sandbox.close()
        assert not any((base / prefix).is_dir() for base in bases), "a reused PID kept a dead tree alive"
        assert not marker.exists()
    finally:
        other.kill()
        other.wait(10)
        _remove(bases, prefix)
        marker.unlink(missing_ok=True)


def test_a_live_emulators_tree_is_left_alone(bases: list[Path]) -> None:
    mine = KernelSandbox(KernelMode(prefix=f"mbcas-test-live-{secrets.token_hex(3)}"))
    try:
        if not mine.available:
            pytest.skip(mine.reason)
        other = KernelSandbox(KernelMode())
        other.close()
        assert all((base / mine.prefix).is_dir() for base in bases)
    finally:
        mine.close()
    assert not any((base / mine.prefix).is_dir() for base in bases)
