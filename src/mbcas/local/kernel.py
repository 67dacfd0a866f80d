"""Real cgroups and real processes for the node emulator ("kernel mode").

The emulator plays the kubelet, which is the one component allowed to write cgroup files. In
kernel mode each emulated container gets a real cgroup laid out exactly as the kubelet's systemd
driver lays it out (paths come from :mod:`mbcas.cgroups.paths`, the same code the agent reads
them with), nested under a unique prefix such as ``mbcas-emu-<pid>-1a2b3c``::

    <root>/<prefix>/kubepods.slice/kubepods-burstable.slice/
        kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope

and a real CPU burner (:mod:`mbcas.local.burner`) running in it. The pod's CPU limit is enforced
as a real CFS quota: ``cpu.max`` on a cgroup v2 machine whose root offers the ``cpu``
controller, else v1 ``cpu.cfs_quota_us`` in the ``cpu`` hierarchy. On a hybrid machine the same
relative path is also created in the cgroup2 hierarchy (``<root>/unified``) and the process
placed there too, so ``cpu.stat`` usage and ``cpu.pressure`` are real. Requests become
``cpu.shares`` (v1) or ``cpu.weight`` (v2), limits also bound the pod cgroup when every
container has one, as the kubelet does.

Where cgroups cannot be created (no permission, read-only mount) the sandbox reports
``available = False`` with the reason, and the emulator runs without processes. Everything it
creates is removed by :meth:`KernelSandbox.close`: processes killed by pid, directories removed
leaf-first. A sandbox also records its owner, and first sweeps the trees of emulators killed
before they could clean up (:mod:`mbcas.local.orphans`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import mbcas
from mbcas.cgroups.errors import CgroupError
from mbcas.cgroups.layout import Layout, LayoutKind, detect_layout
from mbcas.cgroups.paths import (
    CgroupDriver,
    ContainerRuntime,
    PodCgroup,
    container_relpath,
    pod_relpath,
)
from mbcas.core.qos import QoSClass
from mbcas.local.orphans import STALE_PREFIX, owner_marker, record_owner, sweep

__all__ = ["ContainerSpec", "KernelMode", "KernelSandbox", "cpu_quota_us", "cpu_shares", "cpu_weight"]

log = logging.getLogger(__name__)

CFS_PERIOD_US = 100_000
_MIN_QUOTA_US = 1_000


def cpu_quota_us(limit_millis: int | None, period_us: int = CFS_PERIOD_US) -> int | None:
    """The kubelet's CFS quota for a CPU limit (None: no limit)."""
    if limit_millis is None:
        return None
    return max(_MIN_QUOTA_US, limit_millis * period_us // 1000)


def cpu_shares(request_millis: int | None) -> int:
    """The kubelet's cgroup v1 ``cpu.shares`` for a CPU request (min 2)."""
    return max(2, (request_millis or 0) * 1024 // 1000)


def cpu_weight(request_millis: int | None) -> int:
    """``cpu.weight`` from shares with the classic formula (1.35 moved to a new one, see docs)."""
    return 1 + ((cpu_shares(request_millis) - 2) * 9999) // 262142


@dataclass(frozen=True)
class KernelMode:
    """How to run emulated containers for real.

    ``prefix`` defaults to ``mbcas-emu-<pid>-<random>``; ``default_demand`` is the pattern used when a
    pod has no ``mbcas.io/emulator-demand`` annotation (idle by default).
    """

    root: Path = Path("/sys/fs/cgroup")
    prefix: str | None = None
    default_demand: str = "0"
    workers: int | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """One container to run: its id and CPU request/limit (millicores, None if unset)."""

    name: str
    container_id: str
    cpu_request: int | None
    cpu_limit: int | None
    demand: str | None


@dataclass
class _Running:
    relpath: str
    proc: subprocess.Popen[bytes] | None
    pattern_file: Path


@dataclass
class _Pod:
    cgroup: PodCgroup
    containers: dict[str, _Running] = field(default_factory=dict)
    limits: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)


class KernelSandbox:
    """Creates, updates and removes the emulated node's cgroups and burner processes."""

    def __init__(self, mode: KernelMode) -> None:
        self.mode = mode
        self.root = Path(mode.root)
        self.prefix = mode.prefix or f"{STALE_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.available = False
        self.reason = ""
        self.layout: Layout | None = None
        self._pods: dict[str, _Pod] = {}
        self._lock = threading.RLock()
        self._created: list[Path] = []  # every directory we made, parents first
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self._probe()

    # ---------------------------------------------------------------- hierarchies

    def _hierarchies(self) -> list[Path]:
        """The directories under which each path is created (quota one first)."""
        layout = self.layout
        assert layout is not None
        if layout.kind is LayoutKind.V2:
            return [Path(layout.base_dir)]
        dirs = [Path(d) for d in (layout.cpu_dir, layout.cpuacct_dir, layout.v2_dir) if d]
        return list(dict.fromkeys(dirs))

    @property
    def quota_files(self) -> str:
        """``cpu.max`` (v2) or ``cpu.cfs_quota_us`` (v1): where limits are enforced."""
        assert self.layout is not None
        return "cpu.max" if self.layout.kind is LayoutKind.V2 else "cpu.cfs_quota_us"

    def _probe(self) -> None:
        try:
            self.layout = detect_layout(self.root)
        except CgroupError as exc:
            self.reason = f"no usable cgroup hierarchy under {self.root}: {exc}"
            return
        if self.layout.kind is LayoutKind.V2 and not self.layout.v2_cpu_controller:
            self.reason = (
                f"the cgroup2 root {self.root} offers no cpu controller, so no quota can be enforced"
            )
            return
        if self.layout.kind is not LayoutKind.V2 and self.layout.cpu_dir is None:
            self.reason = f"no v1 cpu controller under {self.root}, so no quota can be enforced"
            return
        sweep(self._hierarchies())
        try:
            for base in self._hierarchies():
                self._mkdir(base / self.prefix)
            if self.layout.kind is LayoutKind.V2:
                # The root offers cpu (checked above); as on any kubelet node it must also be
                # enabled for its children. Nothing else outside the prefix is changed.
                self._enable_cpu(Path(self.layout.base_dir))
                self._enable_cpu(Path(self.layout.base_dir) / self.prefix)
            record_owner(self.prefix, [base / self.prefix for base in self._hierarchies()], self._workdir)
        except OSError as exc:
            self.reason = f"cannot create cgroups under {self.root} ({exc.strerror or exc})"
            self._remove_dirs()
            return
        self.available = True

    def _mkdir(self, path: Path) -> None:
        if not path.exists():
            path.mkdir()
            self._created.append(path)

    def _enable_cpu(self, directory: Path) -> None:
        control = directory / "cgroup.subtree_control"
        if "cpu" not in control.read_text().split():
            control.write_text("+cpu")

    def _make_path(self, relpath: str) -> None:
        """Create ``relpath`` in every hierarchy; in v2 enable ``cpu`` down to the leaf's parent."""
        parts = relpath.split("/")
        v2 = self.layout is not None and self.layout.kind is LayoutKind.V2
        for base in self._hierarchies():
            current = base
            for i, part in enumerate(parts):
                current = current / part
                self._mkdir(current)
                if v2 and i < len(parts) - 1:
                    self._enable_cpu(current)

    @staticmethod
    def _write(path: Path, value: str) -> None:
        with open(path, "w") as fh:
            fh.write(value)

    def _set_cpu(self, relpath: str, request: int | None, limit: int | None) -> None:
        assert self.layout is not None
        quota = cpu_quota_us(limit)
        if self.layout.kind is LayoutKind.V2:
            directory = Path(self.layout.base_dir) / relpath
            self._write(directory / "cpu.max", f"{quota if quota is not None else 'max'} {CFS_PERIOD_US}")
            self._write(directory / "cpu.weight", str(cpu_weight(request)))
            return
        assert self.layout.cpu_dir is not None
        directory = Path(self.layout.cpu_dir) / relpath
        self._write(directory / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        try:
            self._write(directory / "cpu.cfs_quota_us", str(quota if quota is not None else -1))
        except OSError as exc:
            # A child's quota may not exceed its parent's in v1: raise the parent first.
            if exc.errno != errno.EINVAL:
                raise
            raise OSError(exc.errno, f"quota {quota} rejected at {directory}") from exc
        self._write(directory / "cpu.shares", str(cpu_shares(request)))

    def _apply(self, pod: _Pod) -> None:
        """Write the pod's and its containers' CPU settings.

        cgroup v1 refuses a child quota above its parent's (EINVAL), so the pod's quota is lifted
        first, the containers are set, then the pod gets the sum of the limits (when every
        container has one, as the kubelet does).
        """
        limits = [lim for _, lim in pod.limits.values()]
        total_limit = None if not limits or any(x is None for x in limits) else sum(x or 0 for x in limits)
        total_request = sum(req or 0 for req, _ in pod.limits.values())
        self._set_cpu(pod.cgroup.relpath, total_request, None)
        for name, (req, lim) in pod.limits.items():
            self._set_cpu(pod.containers[name].relpath, req, lim)
        if total_limit is not None:
            self._set_cpu(pod.cgroup.relpath, total_request, total_limit)

    # ---------------------------------------------------------------- pods

    def pod_relpath(self, uid: str, qos: str) -> str:
        """Where the pod's cgroup is, relative to the cgroup root (prefix included)."""
        return pod_relpath(uid, QoSClass.parse(qos), CgroupDriver.SYSTEMD, prefix=self.prefix)

    def container_path(self, uid: str, container_id: str) -> str | None:
        """A running container's cgroup path relative to the root, or None."""
        with self._lock:
            pod = self._pods.get(uid)
            if pod is None:
                return None
            for running in pod.containers.values():
                if running.relpath.endswith(f"{container_id}.scope"):
                    return running.relpath
        return None

    def start_pod(self, uid: str, qos: str, containers: list[ContainerSpec]) -> None:
        """Create the pod's and its containers' cgroups, set CPU limits and start the burners."""
        if not self.available:
            return
        with self._lock:
            if uid in self._pods:
                return
            relpath = self.pod_relpath(uid, qos)
            pod = _Pod(PodCgroup(uid, QoSClass.parse(qos), CgroupDriver.SYSTEMD, relpath))
            self._pods[uid] = pod
            try:
                self._make_path(relpath)
                for spec in containers:
                    crel = container_relpath(pod.cgroup, spec.container_id, ContainerRuntime.CONTAINERD)
                    self._make_path(crel)
                    pod.limits[spec.name] = (spec.cpu_request, spec.cpu_limit)
                    pod.containers[spec.name] = _Running(
                        crel, None, self._workdir / f"{spec.container_id}.pattern"
                    )
                self._apply(pod)
                for spec in containers:
                    running = pod.containers[spec.name]
                    running.pattern_file.write_text(spec.demand or self.mode.default_demand)
                    running.proc = self._spawn(running)
            except OSError as exc:
                log.warning("kernel sandbox: pod %s could not start for real: %s", uid, exc)

    def _spawn(self, running: _Running) -> subprocess.Popen[bytes]:
        procs_files = " ".join(str(base / running.relpath / "cgroup.procs") for base in self._hierarchies())
        script = (
            'for f in $MBCAS_CGROUP_PROCS; do echo $$ > "$f" || exit 97; done; '
            'exec "$MBCAS_PYTHON" -m mbcas.local.burner '
            '--pattern-file "$MBCAS_PATTERN_FILE" --workers "$MBCAS_WORKERS"'
        )
        env = dict(os.environ)
        src = str(Path(mbcas.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        env.update(
            MBCAS_CGROUP_PROCS=procs_files,
            MBCAS_PYTHON=sys.executable,
            MBCAS_PATTERN_FILE=str(running.pattern_file),
            MBCAS_WORKERS=str(self.mode.workers or os.cpu_count() or 1),
        )
        return subprocess.Popen(
            ["/bin/sh", "-c", script],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            close_fds=True,
        )

    def resize(self, uid: str, container_id: str, request: int | None, limit: int | None) -> None:
        """Actuate a resize: write the new quota and weight (pod level too)."""
        with self._lock:
            pod = self._pods.get(uid)
            if pod is None:
                return
            for name, running in pod.containers.items():
                if running.relpath.endswith(f"{container_id}.scope"):
                    pod.limits[name] = (request, limit)
            try:
                self._apply(pod)
            except OSError as exc:
                log.warning("kernel sandbox: resize of pod %s failed: %s", uid, exc)

    def set_demand(self, uid: str, container_id: str, demand: str | None) -> None:
        """Change a running burner's demand pattern (it re-reads its file)."""
        with self._lock:
            pod = self._pods.get(uid)
            if pod is None:
                return
            for running in pod.containers.values():
                if running.relpath.endswith(f"{container_id}.scope"):
                    running.pattern_file.write_text(demand or self.mode.default_demand)

    def stop_pod(self, uid: str) -> None:
        """Kill the pod's processes and remove its cgroups."""
        with self._lock:
            pod = self._pods.pop(uid, None)
        if pod is None:
            return
        for running in pod.containers.values():
            self._kill(running)
            with contextlib.suppress(OSError):
                running.pattern_file.unlink()
        doomed = [base / r.relpath for base in self._hierarchies() for r in pod.containers.values()]
        doomed += [base / pod.cgroup.relpath for base in self._hierarchies()]
        for path in doomed:
            self._rmdir(path)

    def _pids_in(self, relpath: str) -> set[int]:
        pids: set[int] = set()
        for base in self._hierarchies():
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in (base / relpath / "cgroup.procs").read_text().split())
        return pids

    def _kill(self, running: _Running) -> None:
        """SIGKILL the burner and every process in its cgroups (all started by us), and reap."""
        for _round in range(50):
            pids = self._pids_in(running.relpath)
            if running.proc is not None and running.proc.poll() is None:
                pids.add(running.proc.pid)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if running.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    running.proc.wait(0.1)
            time.sleep(0.02)

    def _rmdir(self, path: Path) -> None:
        for _attempt in range(50):
            try:
                path.rmdir()
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno == errno.EBUSY:
                    time.sleep(0.02)
                    continue
                log.warning("kernel sandbox: cannot remove %s: %s", path, exc)
                return
            break
        with contextlib.suppress(ValueError):
            self._created.remove(path)

    def _remove_dirs(self) -> None:
        for path in sorted(self._created, key=lambda p: len(p.parts), reverse=True):
            self._rmdir(path)
        self._created.clear()

    def close(self) -> None:
        """Kill every burner and remove every cgroup and file this sandbox created."""
        with self._lock:
            uids = list(self._pods)
        for uid in uids:
            self.stop_pod(uid)
        self._remove_dirs()
        shutil.rmtree(self._workdir, ignore_errors=True)
        if self.available:
            owner_marker(self.prefix).unlink(missing_ok=True)
        self.available = False
