"""A real Kubernetes node on this machine: kubelet + containerd + runc, joined to a local control plane.

:class:`RealNode` starts containerd (:mod:`mbcas.local.containerd`) and a kubelet
(:mod:`mbcas.local.kubelet`) with all their files under one directory, imports the locally built
pause image (and any other image archives given), and waits for the Node to be ``Ready``. The
control plane must run with ``workloads=True`` (scheduler, workload controllers, ServiceAccount
tokens).

Stopping is a complete teardown, written so that it also works from another process (``mbcas
cluster down``) and after a crash (the next start finds the stale claim and cleans up first):
the kubelet is stopped by pid, every container is killed and deleted through containerd (so its
shim unmounts the root filesystem), containerd and any shim of ours are stopped, whatever process
is still in the ``kubepods`` cgroups is killed, everything mounted under the node's directory is
unmounted, the ``kubepods`` cgroups are removed leaf-first in every hierarchy, and the host record
of :mod:`mbcas.local.hostguard` puts the sysctls back and removes the bridge and the host paths that
appeared. A lock file serialises real nodes: there is one per machine (``wait_s`` waits for the
current one to stop instead of failing at once).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbcas.local.containerd import Containerd, find_cni_bin_dir, shim_pids
from mbcas.local.controlplane import ControlPlane, advertise_address
from mbcas.local.hostguard import (
    FIXED_PATHS,
    KUBEPODS,
    HostRecord,
    NodeBusyError,
    NodeLock,
    cgroup_hierarchies,
    kill_cgroup_processes,
    remove_cgroup_tree,
    unmount_under,
)
from mbcas.local.kubelet import BRIDGE_NAME, Kubelet
from mbcas.local.procs import pid_runs, stop_pid

__all__ = ["DEFAULT_NODE_NAME", "RealNode", "RealNodeError", "prerequisites", "teardown"]

DEFAULT_NODE_NAME = "mbcas-real-node"
_REQUIRED_COMMANDS = ("containerd", "ctr", "runc", "ip", "umount")


class RealNodeError(RuntimeError):
    """The real node cannot run here, failed to start, or left something behind; the message says what."""


def _stderr_log(msg: str) -> None:
    print(f"[mbcas node] {msg}", file=sys.stderr, flush=True)


def prerequisites() -> list[str]:
    """Why a real node cannot run on this machine (empty: it can)."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("not root (the kubelet and containerd need root)")
    missing = [c for c in _REQUIRED_COMMANDS if shutil.which(c) is None]
    if missing:
        problems.append(f"missing commands: {', '.join(missing)} (distro packages containerd, runc)")
    try:
        find_cni_bin_dir()
    except RuntimeError as exc:
        problems.append(str(exc))
    if not cgroup_hierarchies():
        problems.append("no cgroup hierarchy under /sys/fs/cgroup")
    elif not os.access(cgroup_hierarchies()[0], os.W_OK):
        problems.append("the cgroup hierarchies are read-only here")
    return problems


def _state_file(directory: Path) -> Path:
    return directory / "node-state.json"


def _read_state(directory: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(_state_file(directory).read_text())
    except (OSError, ValueError):
        return None
    return data


def _alive(state: dict[str, Any]) -> bool:
    return any(pid_runs(int(pid), exe) for pid, exe in state.get("processes", {}).values())


def _is_stale(owner: dict[str, Any]) -> bool:
    state = _read_state(Path(owner.get("directory", "/nonexistent")))
    return state is None or not _alive(state)


@dataclass
class RealNode:
    """A kubelet + containerd node named ``node_name``, files under ``directory``."""

    directory: Path
    control_plane: ControlPlane
    kubelet_binary: Path
    pause_archive: Path
    pause_image: str
    node_name: str = DEFAULT_NODE_NAME
    images: Sequence[Path] = ()
    detached: bool = False
    log: Callable[[str], None] = _stderr_log
    wait_s: float = 0.0
    """How long to wait for another real node on this machine to stop (0: fail at once)."""
    ready_in: float = field(default=0.0, init=False)
    _containerd: Containerd | None = field(default=None, init=False, repr=False)
    _kubelet: Kubelet | None = field(default=None, init=False, repr=False)
    _record: HostRecord | None = field(default=None, init=False, repr=False)
    _lock: NodeLock = field(default_factory=NodeLock, init=False, repr=False)

    @property
    def containerd(self) -> Containerd:
        if self._containerd is None:
            raise RealNodeError("the real node is not started")
        return self._containerd

    @property
    def kubelet(self) -> Kubelet:
        if self._kubelet is None:
            raise RealNodeError("the real node is not started")
        return self._kubelet

    def start(self) -> RealNode:
        """Claim the machine, start containerd and the kubelet, wait for the Node to be Ready."""
        problems = prerequisites()
        if problems:
            raise RealNodeError("a real node cannot run here: " + "; ".join(problems))
        self.directory = self.directory.resolve()
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                previous = self._lock.acquire(self.directory, _is_stale)
                break
            except NodeBusyError:
                if time.monotonic() >= deadline:
                    raise
                self.log("another real node runs on this machine; waiting for it to stop")
                time.sleep(min(10.0, max(0.1, deadline - time.monotonic())))
        if previous is not None and previous.get("directory") != str(self.directory):
            self.log(f"cleaning up the leftovers of a real node that died ({previous.get('directory')})")
            teardown(Path(previous["directory"]), log=self.log, release_lock=False)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        leftovers = [str(h / KUBEPODS) for h in cgroup_hierarchies() if (h / KUBEPODS).exists()]
        if leftovers:
            raise RealNodeError(
                f"{', '.join(leftovers)} exist but no MBCAS real node owns them: another kubelet runs "
                "here, or one was killed without cleanup (remove those cgroups, then retry)"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self._record = HostRecord.capture(links=(BRIDGE_NAME,))
        self._save()
        cp = self.control_plane
        cni_conf = self.directory / "kubelet" / "cni" / "net.d"
        self._containerd = Containerd(
            self.directory / "containerd",
            sandbox_image=self.pause_image,
            cni_conf_dir=cni_conf,
            cni_bin_dir=find_cni_bin_dir(),
            detached=self.detached,
            log=self.log,
        )
        self._containerd.start()
        self._save()
        for archive in (self.pause_archive, *self.images):
            self._containerd.import_image(archive)
        addr = advertise_address()
        self._kubelet = Kubelet(
            self.directory / "kubelet",
            binary=self.kubelet_binary,
            node_name=self.node_name,
            server=cp.url,
            certs=cp.certs,
            runtime_socket=self._containerd.socket,
            node_ip=None if addr.startswith("127.") else addr,
            detached=self.detached,
            log=self.log,
        )
        self._kubelet.start()
        self._save()
        self.ready_in = self._kubelet.wait_ready(cp.kubectl)
        self.log(f"node {self.node_name} Ready {self.ready_in:.1f}s after the kubelet started")

    def import_images(self, archives: Sequence[Path]) -> None:
        """Import more image archives into the node's containerd."""
        for archive in archives:
            self.containerd.import_image(archive)

    def describe(self) -> dict[str, Any]:
        """What ``node-state.json`` holds: processes (pid, executable), paths, the host record."""
        processes: dict[str, tuple[int, str]] = {}
        if self._containerd is not None and self._containerd.pid is not None:
            processes["containerd"] = (self._containerd.pid, "containerd")
        if self._kubelet is not None and self._kubelet.pid is not None:
            processes["kubelet"] = (self._kubelet.pid, str(self.kubelet_binary))
        return {
            "node_name": self.node_name,
            "directory": str(self.directory),
            "processes": processes,
            "containerd_socket": str(self.directory / "containerd" / "containerd.sock"),
            "host": self._record.to_json() if self._record is not None else None,
            "ready_in_seconds": round(self.ready_in, 2),
        }

    def _save(self) -> None:
        _state_file(self.directory).write_text(json.dumps(self.describe(), indent=2))

    def stop(self) -> None:
        """Tear the node down completely (see the module docstring); raises if something is left."""
        if self._kubelet is not None:
            self._kubelet.stop()
        self._kubelet = None
        self._save_if_present()
        teardown(self.directory, log=self.log, containerd=self._containerd)
        self._containerd = None

    def _save_if_present(self) -> None:
        if _state_file(self.directory).exists():
            self._save()


def teardown(
    directory: Path,
    *,
    log: Callable[[str], None] = _stderr_log,
    containerd: Containerd | None = None,
    release_lock: bool = True,
) -> None:
    """Undo everything the real node in ``directory`` did to this host (works from any process).

    Raises:
        RealNodeError: something could not be undone; the message lists each item.
    """
    state = _read_state(directory) or {}
    processes: dict[str, list[Any]] = state.get("processes", {})
    kubelet = processes.get("kubelet")
    if kubelet is not None and pid_runs(int(kubelet[0]), str(kubelet[1])):
        log(f"stopping the kubelet (pid {kubelet[0]})")
        stop_pid(int(kubelet[0]), timeout=15.0)
    sock = Path(state.get("containerd_socket", directory / "containerd" / "containerd.sock"))
    if containerd is None:
        containerd = Containerd(
            sock.parent, sandbox_image="", cni_conf_dir=sock.parent, cni_bin_dir=sock.parent
        )
        entry = processes.get("containerd")
        if entry is not None and pid_runs(int(entry[0]), "containerd"):
            containerd.pid = int(entry[0])
    if containerd.pid is not None or containerd.proc is not None:
        log("killing and deleting every container (their shims unmount the root filesystems)")
        containerd.sweep()
    containerd.stop()
    killed = kill_cgroup_processes(KUBEPODS)
    if killed:
        log(f"killed {killed} process(es) left in the {KUBEPODS} cgroups")
    for pid in shim_pids(sock):
        stop_pid(pid, timeout=5.0)
    problems: list[str] = []
    stuck = unmount_under([directory, *(Path(p) for p in FIXED_PATHS)], log)
    problems += [f"still mounted: {p}" for p in stuck]
    problems += [f"cgroup not removed: {p}" for p in remove_cgroup_tree(KUBEPODS)]
    host = state.get("host")
    if host:
        problems += HostRecord.from_json(host).restore(log)
    if not stuck and directory.exists():
        try:
            shutil.rmtree(directory)
        except OSError as exc:
            problems.append(f"{directory}: {exc}")
    if release_lock:
        NodeLock().release(directory)
    if problems:
        raise RealNodeError("the real node left things behind:\n  " + "\n  ".join(problems))
    log("real node stopped; host restored")
