"""Cgroup trees left behind by node emulators that died without cleaning up.

A kernel-mode sandbox (:class:`mbcas.local.kernel.KernelSandbox`) creates its cgroups under a
prefix such as ``mbcas-emu-<pid>-1a2b3c`` and removes them when it closes. An emulator killed
outright (SIGKILL) cannot, so each sandbox records its owner with :func:`record_owner` (prefix,
directories, work directory, pid and that process's start time) in
``<tmp>/mbcas-emu-owners/<prefix>.json``, and every new sandbox first calls :func:`sweep`, which
removes the trees whose owner is gone, whatever their prefix. A PID that now belongs to another
process (other start time) does not keep a dead tree alive, and a tree that still holds a process
is left alone (rmdir fails on it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from mbcas.local.procs import pid_alive

__all__ = ["OWNERS_DIR", "STALE_PREFIX", "owner_marker", "record_owner", "sweep"]

STALE_PREFIX = "mbcas-emu-"
OWNERS_DIR = Path(tempfile.gettempdir()) / "mbcas-emu-owners"


def _start_time(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks after boot): with the pid, it
    names one process for the life of the machine, where a pid alone may be reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _owner_alive(pid: int, start: str | None) -> bool:
    return pid_alive(pid) and (start is None or _start_time(pid) == start)


def _remove_tree(root: Path) -> None:
    """rmdir ``root`` and the directories under it, leaf-first (a cgroup that still holds a process
    is left alone: rmdir fails on it)."""
    if not root.is_dir():
        return
    dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for path in [*dirs, root]:
        with contextlib.suppress(OSError):
            path.rmdir()


def _owner_pid(name: str) -> int | None:
    """The pid in ``mbcas-emu-<pid>-<hex>``, or None for any other name."""
    if not name.startswith(STALE_PREFIX):
        return None
    pid, sep, _ = name[len(STALE_PREFIX) :].partition("-")
    return int(pid) if sep and pid.isdigit() else None


def owner_marker(prefix: str) -> Path:
    """Where the owner of the tree under ``prefix`` is recorded."""
    return OWNERS_DIR / f"{prefix.replace('/', '_')}.json"


def record_owner(prefix: str, dirs: Iterable[Path], workdir: Path) -> None:
    """Record that this process owns the trees ``dirs`` (named ``prefix``) and ``workdir``, so a
    later :func:`sweep` can tell when they are stale."""
    OWNERS_DIR.mkdir(exist_ok=True)
    pid = os.getpid()
    owner_marker(prefix).write_text(
        json.dumps(
            {
                "prefix": prefix,
                "pid": pid,
                "start": _start_time(pid),
                "dirs": [str(path) for path in dirs],
                "workdir": str(workdir),
            }
        )
    )


def sweep(bases: Iterable[Path]) -> None:
    """Remove empty cgroup trees left by emulators whose process died without cleaning up
    (SIGKILL): every tree recorded in ``OWNERS_DIR`` whose owner (pid and start time) is gone,
    and, for trees of older versions without a record, ``mbcas-emu-<pid>-*`` trees directly under
    ``bases`` whose pid is gone. A tree that still holds a process is left alone (rmdir fails on
    it)."""
    recorded: set[str] = set()
    for marker in sorted(OWNERS_DIR.glob("*.json")) if OWNERS_DIR.is_dir() else []:
        try:
            owner = json.loads(marker.read_text())
            pid, start, prefix = int(owner["pid"]), owner.get("start"), str(owner["prefix"])
            dirs = [Path(d) for d in owner.get("dirs") or []]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        recorded.add(prefix)
        if pid == os.getpid() or _owner_alive(pid, None if start is None else str(start)):
            continue
        for path in dirs:
            if path.name == Path(prefix).name:  # only the tree the record names
                _remove_tree(path)
        if owner.get("workdir") and Path(owner["workdir"]).name.startswith(Path(prefix).name):
            shutil.rmtree(owner["workdir"], ignore_errors=True)
        if not any(path.is_dir() for path in dirs):
            marker.unlink(missing_ok=True)
    for base in bases:
        with contextlib.suppress(OSError):
            for entry in base.iterdir():
                owner_pid = _owner_pid(entry.name)
                if owner_pid is None or entry.name in recorded:
                    continue
                if owner_pid == os.getpid() or pid_alive(owner_pid):
                    continue
                _remove_tree(entry)
    for workdir in Path(tempfile.gettempdir()).glob(f"{STALE_PREFIX}*"):
        owner_pid = _owner_pid(workdir.name)
        if owner_pid is not None and owner_pid != os.getpid() and not pid_alive(owner_pid):
            shutil.rmtree(workdir, ignore_errors=True)
