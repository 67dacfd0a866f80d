"""A named local cluster that outlives the command that started it (``mbcas cluster up``).

:func:`up` starts a :class:`~mbcas.local.controlplane.ControlPlane` in detached mode plus a node
emulator process, records every pid and path in ``<state dir>/state.json`` and returns the
kubeconfig path. :func:`down` stops them by pid (checking each pid still runs the executable
recorded for it, so a recycled pid is never killed) and removes the state directory; the
emulator gets SIGTERM first so it can kill its burners and remove its cgroups. :func:`status`
reports what is alive and whether the apiserver answers ``/readyz``.

With ``real_node=True`` (``mbcas cluster up --real-node``, ``make node``) the control plane also runs
the scheduler and workload controllers, and instead of the emulator a real kubelet + containerd
node (:mod:`mbcas.local.realnode`) joins it; :func:`down` then tears that node down first, which
restores the host (processes, mounts, cgroups, the bridge, host paths, sysctls).

The state directory is ``$MBCAS_CACHE/clusters/<name>`` (default ``~/.cache/mbcas/clusters``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbcas.local.build import cache_dir
from mbcas.local.controlplane import ControlPlane, ControlPlaneError
from mbcas.local.procs import log_tail, pid_runs, start_process, stop_pid

__all__ = ["ClusterStatus", "down", "state_dir", "status", "up"]

_STOP_ORDER = ("node-emulator", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")


def state_dir(name: str) -> Path:
    """Where the named cluster keeps its certificates, data, logs and state.json."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"not a usable cluster name: {name!r}")
    return cache_dir() / "clusters" / name


def _read_state(name: str) -> dict[str, Any] | None:
    path = state_dir(name) / "state.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


@dataclass(frozen=True)
class ClusterStatus:
    """What ``mbcas cluster status`` shows."""

    name: str
    exists: bool
    url: str = ""
    kubeconfig: str = ""
    alive: tuple[tuple[str, int, bool], ...] = ()
    ready: bool = False
    cgroup_prefix: str = ""

    @property
    def healthy(self) -> bool:
        return self.exists and self.ready and all(ok for _, _, ok in self.alive)


def _readyz(state_path: Path, url: str) -> bool:
    pki = state_path / "pki"
    try:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        with urllib.request.urlopen(url + "/readyz", context=ctx, timeout=3) as resp:
            return bool(resp.status == 200)
    except (OSError, ssl.SSLError):
        return False


def status(name: str = "default") -> ClusterStatus:
    """Which components of the named cluster run, and whether the apiserver is ready."""
    state = _read_state(name)
    if state is None:
        return ClusterStatus(name, exists=False)
    alive = tuple(
        (comp, pid, pid_runs(pid, state["executables"].get(comp, ""))) for comp, pid in state["pids"].items()
    )
    return ClusterStatus(
        name,
        exists=True,
        url=state["url"],
        kubeconfig=state["kubeconfig"],
        alive=alive,
        ready=_readyz(state_dir(name), state["url"]),
        cgroup_prefix=state.get("cgroup_prefix", ""),
    )


def down(name: str = "default", log: Callable[[str], None] | None = None) -> bool:
    """Stop the named cluster's processes and remove its state. False if there was none."""
    log = log or (lambda _msg: None)
    directory = state_dir(name)
    state = _read_state(name)
    node_dir = Path((state or {}).get("real_node", {}).get("directory", directory / "node"))
    if (node_dir / "node-state.json").exists():
        from mbcas.local.realnode import teardown

        teardown(node_dir, log=log)  # raises (and keeps the state) if the host is not clean
    if state is None:
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
            log(f"removed the incomplete state of cluster {name!r}")
            return True
        return False
    pids: dict[str, int] = state.get("pids", {})
    executables: dict[str, str] = state.get("executables", {})
    for comp in _STOP_ORDER:
        pid = pids.get(comp)
        if pid is not None and pid_runs(pid, executables.get(comp, "")):
            log(f"stopping {comp} (pid {pid})")
            stop_pid(pid, timeout=20.0 if comp == "node-emulator" else 10.0)
    shutil.rmtree(directory, ignore_errors=True)
    return True


def up(
    name: str = "default",
    *,
    nodes: Sequence[str] = ("mbcas-node-1:4:8Gi",),
    emulator: bool = True,
    kernel: bool = False,
    resize_delay: float = 1.0,
    real_node: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Start (or find running) the named cluster; return its kubeconfig path."""
    log = log or (lambda msg: print(f"[mbcas cluster] {msg}", file=sys.stderr, flush=True))
    current = status(name)
    if current.healthy:
        log(f"cluster {name!r} is already running at {current.url}")
        return Path(current.kubeconfig)
    if current.exists or state_dir(name).exists():
        log(f"cleaning up a stale cluster {name!r}")
        down(name, log)
    directory = state_dir(name)
    cp = ControlPlane(state_dir=directory, detached=True, log=log, workloads=real_node)
    cp.start()
    try:
        record = cp.describe()
        record["name"] = name
        if real_node:
            (directory / "state.json").write_text(json.dumps(record, indent=2))
            record.update(_start_real_node(cp, directory, log))
        elif emulator:
            record.update(_start_emulator(cp, directory, nodes, kernel, resize_delay))
        (directory / "state.json").write_text(json.dumps(record, indent=2))
    except BaseException:
        cp.stop()
        raise
    return cp.kubeconfig


def _start_real_node(cp: ControlPlane, directory: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from mbcas.local.build import ensure_node_binaries
    from mbcas.local.images import ensure_pause
    from mbcas.local.realnode import RealNode

    binaries = ensure_node_binaries()
    pause = ensure_pause(log)
    node = RealNode(
        directory / "node", cp, binaries.kubelet, pause.archive, pause.ref, detached=True, log=log
    )
    node.start()
    info = node.describe()
    pids = dict(cp.pids)
    executables = dict(cp.describe()["executables"])
    for comp, (pid, exe) in info["processes"].items():
        pids[comp] = pid
        executables[comp] = exe
    return {"pids": pids, "executables": executables, "real_node": info}


def _start_emulator(
    cp: ControlPlane, directory: Path, nodes: Sequence[str], kernel: bool, resize_delay: float
) -> dict[str, Any]:
    ready = directory / "emulator.ready"
    argv = [
        sys.executable,
        "-m",
        "mbcas.local.emulator",
        f"--kubeconfig={cp.kubeconfig}",
        f"--resize-delay={resize_delay}",
        f"--ready-file={ready}",
        *(f"--node={n}" for n in nodes),
    ]
    if kernel:
        argv.append("--kernel")
    log_path = directory / "node-emulator.log"
    proc = start_process(argv, log_path, detached=True)
    deadline = time.monotonic() + 30
    try:
        while not ready.exists():
            if proc.poll() is not None:
                raise ControlPlaneError(f"the node emulator exited at start:\n{log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"the node emulator did not start in 30s:\n{log_tail(log_path)}")
            time.sleep(0.1)
    except BaseException:  # also Ctrl-C: never leave the emulator behind
        stop_pid(proc.pid, timeout=20.0)
        raise
    info: dict[str, Any] = {}
    with contextlib.suppress(ValueError, OSError):
        info = json.loads(ready.read_text())
    pids = dict(cp.pids)
    pids["node-emulator"] = proc.pid
    executables = {n: c for n, c in cp.describe()["executables"].items()}
    executables["node-emulator"] = "mbcas.local.emulator"
    return {"pids": pids, "executables": executables, "cgroup_prefix": info.get("cgroup_prefix", "")}
