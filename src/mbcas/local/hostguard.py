"""What a real node changes on the host, written down before it starts and undone after it stops.

A kubelet and containerd are machine-wide by nature. Even with every configurable path of theirs
in a directory of our own, some things are fixed:

- **sysctls** the kubelet sets at start (``vm.overcommit_memory``, ``kernel.panic``,
  ``kernel.panic_on_oops``, ...): saved before, written back after;
- **host paths** the kubelet or containerd create whatever their configuration says (the
  device-plugins socket under ``/var/lib/kubelet``, ``/var/log/containers``, containerd's shim
  sockets under ``/run/containerd``, ...): for each, whether it existed and which entries it had,
  so that only what appeared is removed;
- **the kubepods cgroups** (``<hierarchy>/kubepods`` in every cgroup hierarchy): the processes in
  them are killed and the directories removed leaf-first;
- **mounts** below the node's directory and the fixed paths (the kubelet bind-mounts its root dir
  onto itself, containers' root filesystems, volumes, network namespaces): unmounted deepest first;
- **the CNI bridge** and its veths: deleted if they did not exist before.

A real node is one per machine (fixed ports 10250/10248 and the paths above). :class:`NodeLock` is a
lock file naming the directory of the node that owns the machine; a record whose node has no live
process left is stale and can be taken over (after the caller cleaned the leftovers it describes).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbcas.local.procs import pid_alive

__all__ = [
    "FIXED_PATHS",
    "KUBEPODS",
    "SYSCTLS",
    "HostRecord",
    "NodeBusyError",
    "NodeLock",
    "cgroup_hierarchies",
    "kill_cgroup_processes",
    "mounts_under",
    "remove_cgroup_tree",
    "unmount_under",
]

SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
FIXED_PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/run/netns",
    "/var/lib/cni",
    "/etc/cni",
    "/opt/cni",
    "/opt/containerd",
    "/usr/libexec/kubernetes",
    "/etc/kubernetes",
)
KUBEPODS = "kubepods"
CGROUP_ROOT = Path("/sys/fs/cgroup")
LOCK_PATH = Path(os.environ.get("MBCAS_REAL_NODE_LOCK", "/run/lock/mbcas-real-node.lock"))


class NodeBusyError(RuntimeError):
    """Another real node runs on this machine; the message names its directory."""


# ---------------------------------------------------------------------------- lock


@dataclass
class NodeLock:
    """The machine-wide claim of the real node: a small JSON file naming its owner's directory."""

    path: Path = LOCK_PATH

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".flock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def owner(self) -> dict[str, Any] | None:
        """The current record, or ``None``."""
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data

    def acquire(self, directory: Path, is_stale: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """Claim the machine for the node in ``directory``.

        Returns the previous owner's record when it was stale (the caller cleans its leftovers),
        ``None`` when there was none. Raises :class:`NodeBusyError` when a live node owns it.
        """
        with self._exclusive():
            previous = self.owner()
            if (
                previous is not None
                and previous.get("directory") != str(directory)
                and not is_stale(previous)
            ):
                raise NodeBusyError(
                    f"a real node already runs on this machine (directory {previous.get('directory')}, "
                    f"started by pid {previous.get('pid')}); stop it first (make node-down, or let the "
                    "test session that started it finish): the kubelet's ports and the kubepods "
                    "cgroups allow one per machine"
                )
            self.path.write_text(json.dumps({"directory": str(directory), "pid": os.getpid()}))
            return previous

    def release(self, directory: Path) -> None:
        """Drop the claim if ``directory`` holds it, and the lock's files with it (no trace on the
        host; a start racing this exact moment could lock the unlinked file, which one node per
        machine started by hand makes harmless)."""
        with self._exclusive():
            current = self.owner()
            if current is not None and current.get("directory") == str(directory):
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            if not self.path.exists():
                with contextlib.suppress(FileNotFoundError):
                    self.path.with_suffix(".flock").unlink()


# ---------------------------------------------------------------------------- host record


def _read_sysctl(name: str) -> str | None:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return None


def _entries(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return None
    except OSError:
        return []


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


@dataclass
class HostRecord:
    """The host's state before the node started, and how to return to it."""

    sysctls: dict[str, str] = field(default_factory=dict)
    paths: dict[str, list[str] | None] = field(default_factory=dict)
    links: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def capture(cls, links: tuple[str, ...]) -> HostRecord:
        """Record the sysctls, fixed paths and network links as they are now."""
        return cls(
            sysctls={n: v for n in SYSCTLS if (v := _read_sysctl(n)) is not None},
            paths={p: _entries(p) for p in FIXED_PATHS},
            links={name: _link_exists(name) for name in links},
        )

    def to_json(self) -> dict[str, Any]:
        return {"sysctls": self.sysctls, "paths": self.paths, "links": self.links}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostRecord:
        return cls(dict(data.get("sysctls", {})), dict(data.get("paths", {})), dict(data.get("links", {})))

    def restore(self, log: Callable[[str], None]) -> list[str]:
        """Put sysctls back, remove links and path entries that appeared; return what failed."""
        problems: list[str] = []
        for name, value in self.sysctls.items():
            if _read_sysctl(name) != value:
                try:
                    (Path("/proc/sys") / name).write_text(value)
                    log(f"restored sysctl {name.replace('/', '.')} = {value}")
                except OSError as exc:
                    problems.append(f"sysctl {name}: {exc}")
        for name, existed in self.links.items():
            if not existed and _link_exists(name):
                proc = subprocess.run(
                    ["ip", "link", "delete", name], capture_output=True, text=True, check=False
                )
                if proc.returncode != 0:
                    problems.append(f"link {name}: {proc.stderr.strip()}")
                else:
                    log(f"deleted network link {name}")
        for path, before in self.paths.items():
            problems += _restore_path(path, before, log)
        return problems


def _remove(path: Path) -> None:
    """Remove a file or a tree that holds no mount point (never crosses into a mount)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    for dirpath, _dirs, _files in os.walk(path):
        if os.path.ismount(dirpath):
            raise OSError(errno.EBUSY, "still a mount point", dirpath)
    shutil.rmtree(path)


def _restore_path(path: str, before: list[str] | None, log: Callable[[str], None]) -> list[str]:
    now = _entries(path)
    if now is None:
        return []
    try:
        if before is None:
            unmount_under([Path(path)], log)
            _remove(Path(path))
            log(f"removed {path}")
        else:
            for name in sorted(set(now) - set(before)):
                unmount_under([Path(path, name)], log)
                _remove(Path(path, name))
                log(f"removed {path}/{name}")
    except OSError as exc:
        return [f"{path}: {exc}"]
    return []


# ---------------------------------------------------------------------------- mounts


def _unescape(field_text: str) -> str:
    return (
        field_text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
    )


def mounts_under(roots: list[Path]) -> list[str]:
    """Mount points at or below any of ``roots`` (from /proc/self/mountinfo), deepest first."""
    prefixes = [str(r).rstrip("/") for r in roots]
    found: list[str] = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as info:
        for line in info:
            point = _unescape(line.split()[4])
            if any(point == p or point.startswith(p + "/") for p in prefixes):
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_under(roots: list[Path], log: Callable[[str], None], attempts: int = 5) -> list[str]:
    """Unmount everything at or below ``roots`` (lazily when busy); return what stays mounted."""
    libc_umount = ["umount"]
    for _ in range(attempts):
        points = mounts_under(roots)
        if not points:
            return []
        for point in points:
            proc = subprocess.run([*libc_umount, point], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                subprocess.run([*libc_umount, "--lazy", point], capture_output=True, text=True, check=False)
        log(f"unmounted {len(points)} mount(s) under {', '.join(str(r) for r in roots)}")
    return mounts_under(roots)


# ---------------------------------------------------------------------------- cgroups


def cgroup_hierarchies(root: Path = CGROUP_ROOT) -> list[Path]:
    """Every mounted cgroup hierarchy under ``root`` (v1 controllers, ``unified``, or ``root`` on v2)."""
    if (root / "cgroup.controllers").exists():
        return [root]
    found: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in sorted(root.iterdir()):
            if entry.is_dir() and not entry.is_symlink() and (entry / "cgroup.procs").exists():
                found.append(entry)
    return found


def _cgroup_dirs(top: Path) -> list[Path]:
    """``top`` and every cgroup below it, leaves first."""
    dirs: list[Path] = []
    for dirpath, _dirnames, _files in os.walk(top):
        dirs.append(Path(dirpath))
    return sorted(dirs, key=lambda p: -len(p.parts))


def kill_cgroup_processes(name: str = KUBEPODS, root: Path = CGROUP_ROOT, timeout: float = 10.0) -> int:
    """SIGKILL every process in ``<hierarchy>/<name>`` (any depth); return how many there were."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        pids: set[int] = set()
        for hierarchy in cgroup_hierarchies(root):
            top = hierarchy / name
            if not top.is_dir():
                continue
            for directory in _cgroup_dirs(top):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        live = {p for p in pids if pid_alive(p)}
        if not live or time.monotonic() > deadline:
            return len(killed)
        for pid in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.1)


def remove_cgroup_tree(name: str = KUBEPODS, root: Path = CGROUP_ROOT, timeout: float = 10.0) -> list[str]:
    """rmdir ``<hierarchy>/<name>`` leaf-first in every hierarchy; return what could not be removed."""
    deadline = time.monotonic() + timeout
    while True:
        left: list[str] = []
        for hierarchy in cgroup_hierarchies(root):
            top = hierarchy / name
            if not top.is_dir():
                continue
            for directory in _cgroup_dirs(top):
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    left.append(f"{directory}: {exc.strerror}")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)
