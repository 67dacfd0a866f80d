"""Driving the experiment's local cluster from outside: ``mbcas`` and ``kubectl`` subprocesses.

:func:`local_cluster` brings up ``mbcas cluster up --kernel`` (etcd, kube-apiserver,
kube-controller-manager and the node emulator with one emulated node, :data:`NODE_NAME`) and
always tears it down again (``mbcas cluster down`` kills every burner and removes the cgroups),
even when a run fails. :class:`Kubectl` runs one kubectl command against its kubeconfig;
:class:`Watch` keeps a ``kubectl get -w`` stream, each event timestamped on receipt
(:func:`iter_watch_events` splits kubectl's stream of pretty-printed JSON objects).
:class:`Component` is a long-running ``mbcas agent`` or ``mbcas controller`` we started, stopped
by its pid. :func:`pod_body` and :func:`wait_running` create the scenario's pods and wait for the
emulator to run them. Nothing here imports ``kubernetes`` or :mod:`mbcas.local`: the cluster is
driven only through those commands.

In **real-node mode** (:func:`real_node_cluster`) the cluster is ``mbcas cluster up --real-node``: a
kubelet + containerd + runc node on this machine (:data:`REAL_NODE_NAME`), the burner image built
and imported with ``python -m mbcas.local.images --import-into``; the pods then run that image and
read their demand from a pattern file on a host directory, and the kubelet, not the emulator,
sets every quota.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbcas.experiment.scenarios import ExperimentError, ExperimentPod

__all__ = [
    "CLUSTER_NAME",
    "DEMAND_ANNOTATION",
    "NODE_NAME",
    "PREFIX_ANNOTATION",
    "REAL_NODE_CLUSTER",
    "REAL_NODE_NAME",
    "Component",
    "Kubectl",
    "Watch",
    "command_available",
    "find_kubectl",
    "iter_watch_events",
    "local_cluster",
    "pattern_path",
    "pod_body",
    "real_node_cluster",
    "real_pod_body",
    "start_component",
    "wait_running",
    "write_demand",
]

DEMAND_ANNOTATION = "mbcas.io/emulator-demand"
PREFIX_ANNOTATION = "mbcas.io/emulator-cgroup-prefix"
CLUSTER_NAME = "mbcas-evaluate"
NODE_NAME = "mbcas-eval-node"
REAL_NODE_CLUSTER = "mbcas-evaluate-node"
REAL_NODE_NAME = "mbcas-real-node"


# ----------------------------------------------------------------------------------------------
# kubectl and watches


def find_kubectl() -> str:
    """``$KUBECTL``, else the kubectl built for the local control plane, else ``kubectl``."""
    env = os.environ.get("KUBECTL")
    if env:
        return env
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    candidates = [Path(assets) / "kubectl"] if assets else []
    cache = Path.home() / ".cache" / "mbcas"
    candidates += sorted(cache.glob("k8s-v*/kubectl"), reverse=True)
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("kubectl")
    if not found:
        raise ExperimentError("no kubectl: build it with `make cluster-build` or set KUBECTL")
    return found


@dataclass
class Kubectl:
    """Runs kubectl against one kubeconfig."""

    binary: str
    kubeconfig: str

    def run(self, *args: str, stdin: str | None = None, timeout: float = 30.0) -> str:
        cmd = [self.binary, "--kubeconfig", self.kubeconfig, *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise ExperimentError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def get_json(self, *args: str) -> Any:
        return json.loads(self.run("get", *args, "-o", "json"))


def iter_watch_events(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(type, object)`` of each watch event in kubectl's stream of (pretty-printed) JSON objects."""
    decoder = json.JSONDecoder()
    buf = ""
    for line in lines:
        buf += line
        while True:
            stripped = buf.lstrip()
            if not stripped:
                buf = ""
                break
            try:
                obj, end = decoder.raw_decode(stripped)
            except json.JSONDecodeError:
                buf = stripped
                break
            buf = stripped[end:]
            if isinstance(obj, dict) and isinstance(obj.get("object"), dict):
                yield str(obj.get("type")), obj["object"]


@dataclass
class Watch:
    """A ``kubectl get -w --output-watch-events -o json`` stream, timestamped on receipt."""

    kubectl: Kubectl
    args: tuple[str, ...]
    events: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    _proc: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Watch:
        cmd = [self.kubectl.binary, "--kubeconfig", self.kubectl.kubeconfig, "get", *self.args]
        cmd += ["-w", "--output-watch-events", "-o", "json"]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
        )
        self._thread = threading.Thread(target=self._read, name=f"watch-{self.args[0]}", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for event_type, obj in iter_watch_events(self._proc.stdout):
            with self._lock:
                self.events.append((time.monotonic(), event_type, obj))

    def snapshot(self) -> list[tuple[float, str, dict[str, Any]]]:
        with self._lock:
            return list(self.events)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)


# ----------------------------------------------------------------------------------------------
# processes we start


@dataclass
class Component:
    """A long-running ``mbcas`` sub-command we started (stopped by its pid)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _mbcas() -> list[str]:
    return [sys.executable, "-m", "mbcas"]


def start_component(
    name: str, args: Sequence[str], log_dir: Path, env: dict[str, str] | None = None
) -> Component:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    fh = open(log_path, "ab")  # noqa: SIM115 - closed by the child's exit; kept for its lifetime
    proc = subprocess.Popen(
        [*_mbcas(), "-v", *args],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    fh.close()
    return Component(name, proc, log_path)


def command_available(name: str) -> bool:
    """Whether ``mbcas NAME --help`` works (the sub-command is installed)."""
    proc = subprocess.run([*_mbcas(), name, "--help"], capture_output=True, timeout=60, check=False)
    return proc.returncode == 0


@contextlib.contextmanager
def local_cluster(node_cpu: float, log_dir: Path) -> Iterator[Kubectl]:
    """``mbcas cluster up --kernel`` for the experiment; always ``down`` afterwards."""
    up = subprocess.run(
        [
            *_mbcas(),
            "cluster",
            "up",
            "--kernel",
            "--name",
            CLUSTER_NAME,
            "--node",
            f"{NODE_NAME}:{node_cpu:g}:4Gi",
            "--resize-delay",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "cluster-up.log").write_text(up.stderr + up.stdout)
    try:
        yield Kubectl(find_kubectl(), _kubeconfig_of(up, "mbcas cluster up"))
    finally:
        _cluster_down(CLUSTER_NAME, timeout=120)


def _cluster_down(name: str, *, timeout: float) -> None:
    subprocess.run(
        [*_mbcas(), "cluster", "down", "--name", name], capture_output=True, timeout=timeout, check=False
    )


def _kubeconfig_of(up: subprocess.CompletedProcess[str], what: str) -> str:
    """The kubeconfig path that ``mbcas cluster up`` printed (``export KUBECONFIG=...``)."""
    if up.returncode != 0:
        raise ExperimentError(f"{what} failed: {up.stderr.strip()[-2000:]}")
    lines = [ln for ln in up.stdout.splitlines() if ln.startswith("export KUBECONFIG=")]
    if not lines:
        raise ExperimentError(f"{what} printed no KUBECONFIG")
    return lines[-1].split("=", 1)[1].strip().strip("'\"")


@contextlib.contextmanager
def real_node_cluster(log_dir: Path) -> Iterator[tuple[Kubectl, str]]:
    """``mbcas cluster up --real-node`` with the burner image imported; yields (kubectl, burner
    image); always ``down`` afterwards (which restores the host)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        up = subprocess.run(
            [*_mbcas(), "cluster", "up", "--real-node", "--name", REAL_NODE_CLUSTER],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        (log_dir / "cluster-up.log").write_text(up.stderr + up.stdout)
        kubeconfig = _kubeconfig_of(up, "mbcas cluster up --real-node")
        images = subprocess.run(
            [sys.executable, "-m", "mbcas.local.images", "--import-into", REAL_NODE_CLUSTER],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        (log_dir / "images.log").write_text(images.stderr + images.stdout)
        refs = [ln.split("\t")[0] for ln in images.stdout.splitlines() if "/mbcas-burner:" in ln]
        if images.returncode != 0 or not refs:
            raise ExperimentError(
                f"the burner image could not be built or imported: {images.stderr.strip()[-2000:]}"
            )
        yield Kubectl(find_kubectl(), kubeconfig), refs[0]
    finally:
        _cluster_down(REAL_NODE_CLUSTER, timeout=300)


# ----------------------------------------------------------------------------------------------
# pods


def pattern_path(pattern_dir: Path, pod: str) -> Path:
    """The file a real-node burner pod reads its demand from (``<dir>/<pod>``)."""
    return pattern_dir / pod


def write_demand(pattern_dir: Path, pod: str, cores: float) -> None:
    """Set a real-node burner pod's demand (the burner re-reads its pattern file within 0.5 s)."""
    tmp = pattern_dir / f".{pod}.tmp"
    tmp.write_text(f"{cores:g}\n")
    tmp.chmod(0o644)
    tmp.replace(pattern_path(pattern_dir, pod))


def real_pod_body(pod: ExperimentPod, namespace: str, image: str, pattern_dir: Path) -> dict[str, Any]:
    """The real-node twin of :func:`pod_body`: the burner image reading ``<pattern_dir>/<pod>``."""
    body = pod_body(pod, namespace, node_name=REAL_NODE_NAME)
    container = body["spec"]["containers"][0]
    container.update(
        {
            "image": image,
            "imagePullPolicy": "Never",
            "args": ["--pattern-file", f"/pattern/{pod.name}", "--workers", "1"],
            "volumeMounts": [{"name": "pattern", "mountPath": "/pattern", "readOnly": True}],
        }
    )
    body["spec"]["volumes"] = [
        {"name": "pattern", "hostPath": {"path": str(pattern_dir), "type": "Directory"}}
    ]
    body["spec"]["automountServiceAccountToken"] = False
    return body


def pod_body(pod: ExperimentPod, namespace: str, node_name: str = NODE_NAME) -> dict[str, Any]:
    """A Burstable pod (CPU request = limit, no memory) pinned to the emulated node."""
    cpu = f"{pod.request_m}m"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name,
            "namespace": namespace,
            "annotations": {DEMAND_ANNOTATION: f"{pod.demand:g}"},
        },
        "spec": {
            "nodeName": node_name,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "app",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}},
                }
            ],
        },
    }


def wait_running(
    kubectl: Kubectl, namespace: str, names: Sequence[str], timeout: float = 60.0
) -> dict[str, Any]:
    """Wait until every pod runs with a container ID; return the pods by name."""
    deadline = time.monotonic() + timeout
    while True:
        items = kubectl.get_json("pods", "-n", namespace)["items"]
        pods = {p["metadata"]["name"]: p for p in items}
        ready = [
            n
            for n in names
            if n in pods
            and pods[n].get("status", {}).get("phase") == "Running"
            and all(cs.get("containerID") for cs in pods[n]["status"].get("containerStatuses", []))
        ]
        if len(ready) == len(names):
            return pods
        if time.monotonic() > deadline:
            raise ExperimentError(f"pods not running after {timeout:g}s: {sorted(set(names) - set(ready))}")
        time.sleep(0.5)
