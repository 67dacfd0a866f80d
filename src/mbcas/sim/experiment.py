"""The real-kernel experiment: static limits vs the full MBCAS loop on real processes.

``make evaluate`` runs ``python -m mbcas.sim.experiment --out report/experiment``. It needs root
(to create cgroups), the local control plane's binaries (``make cluster-build``) and the
``mbcas agent`` and ``mbcas controller`` commands. Everything runs for real:

1. ``mbcas cluster up --kernel`` starts etcd, kube-apiserver and kube-controller-manager and the
   node emulator, which runs each pod as a CPU-burning process in its own cgroup with the pod's
   CPU limit as a real CFS quota (``docs/local-control-plane.md``). The emulated node has
   ``--node-cpu`` cores (default 1) and, so that contention is real and does not depend on what
   else runs on the machine, the experiment puts the same number of cores as a CFS quota on the
   emulated node's ``kubepods.slice`` (as a kubelet's node allocatable would).
2. For each scenario (``spike``, ``contention``) and each mode:

   * ``static`` — the pods keep the limits they were created with (limit = request);
   * ``mbcas`` — ``mbcas controller`` and ``mbcas agent`` (1 s tick, no reserve: the node quota
     is already what the pods share) run against the cluster and resize the pods in place.

   Pods are created with their demand in the emulator's annotation (read only by the emulator's
   burner, never by MBCAS), given ``warmup_s`` to settle, and measured for ``measure_s``.
   In ``spike`` the experiment changes one pod's demand annotation at ``change_at_s``.
3. Measured from the **kernel**, per pod over the window (cgroup counters read with
   :class:`mbcas.cgroups.reader.CgroupReader`): CPU usage, throttled time (v1 ``throttled_time``
   or v2 ``throttled_usec``), PSI ``full`` time. From the **API** (``kubectl get -w`` streams):
   the reaction time from the demand change to the first reported (kubelet-applied) limit that
   covers 90 % of the new demand (and ``first_response_s``, until the first raise of the applied
   limit), resizes (pod ``metadata.generation`` increments) and
   PodAllocation writes (watch events), per pod per minute.

The experiment imports neither ``kubernetes`` nor :mod:`mbcas.local` (the layer contracts keep
:mod:`mbcas.sim` away from both): it drives the cluster through ``mbcas`` and ``kubectl``
subprocesses. It always tears the cluster down (``mbcas cluster down``), which kills every
burner and removes the cgroups, even when a run fails. Runs are short (2-core machine): about
6 minutes for both scenarios and modes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
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

from mbcas.cgroups.errors import CgroupError
from mbcas.cgroups.layout import LayoutKind
from mbcas.cgroups.paths import CgroupDriver, PodCgroup, QoSClass, container_relpath, pod_relpath
from mbcas.cgroups.reader import CgroupReader, CpuSnapshot

__all__ = [
    "EXPERIMENTS",
    "ExperimentError",
    "ExperimentPod",
    "ExperimentScenario",
    "KernelDelta",
    "applied_limit",
    "generation_bumps",
    "iter_watch_events",
    "main",
    "pod_body",
    "run_experiment",
    "summarise",
]

log = logging.getLogger(__name__)

DEMAND_ANNOTATION = "mbcas.io/emulator-demand"
PREFIX_ANNOTATION = "mbcas.io/emulator-cgroup-prefix"
CLUSTER_NAME = "mbcas-evaluate"
NODE_NAME = "mbcas-eval-node"
CFS_PERIOD_US = 100_000
REPO_ROOT = Path(__file__).resolve().parents[3]


class ExperimentError(RuntimeError):
    """A step of the experiment failed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ExperimentPod:
    """One pod: CPU request (= its initial limit), demand, and an optional new demand."""

    name: str
    request_m: int
    demand: float
    demand_after: float | None = None


@dataclass(frozen=True, slots=True)
class ExperimentScenario:
    """A real-kernel scenario; ``change_at_s`` is measured from the start of the window."""

    name: str
    description: str
    pods: tuple[ExperimentPod, ...]
    warmup_s: float = 20.0
    measure_s: float = 60.0
    change_at_s: float | None = None

    def demand_at(self, pod: ExperimentPod, t: float) -> float:
        """The configured demand of ``pod`` at ``t`` seconds into the window."""
        if pod.demand_after is not None and self.change_at_s is not None and t >= self.change_at_s:
            return pod.demand_after
        return pod.demand


EXPERIMENTS: dict[str, ExperimentScenario] = {
    "spike": ExperimentScenario(
        name="spike",
        description=(
            "Three pods on a 1-core node; the frontend's demand jumps from 0.1 to 0.6 cores 10 s "
            "into the window (its request and initial limit are 150m)."
        ),
        pods=(
            ExperimentPod("frontend", 150, 0.1, 0.6),
            ExperimentPod("catalog", 150, 0.1),
            ExperimentPod("db", 200, 0.15),
        ),
        warmup_s=20.0,
        measure_s=50.0,
        change_at_s=10.0,
    ),
    "contention": ExperimentScenario(
        name="contention",
        description=(
            "Four pods on a 1-core node wanting 1.35 cores in total (requests 0.8 cores): "
            "0.6, 0.4, 0.25 and 0.1 cores with requests 300m, 200m, 100m and 200m."
        ),
        pods=(
            ExperimentPod("web", 300, 0.6),
            ExperimentPod("api", 200, 0.4),
            ExperimentPod("worker", 100, 0.25),
            ExperimentPod("cache", 200, 0.1),
        ),
        warmup_s=25.0,
        measure_s=60.0,
    ),
}


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
        if up.returncode != 0:
            raise ExperimentError(f"mbcas cluster up failed: {up.stderr.strip()[-2000:]}")
        lines = [ln for ln in up.stdout.splitlines() if ln.startswith("export KUBECONFIG=")]
        if not lines:
            raise ExperimentError("mbcas cluster up printed no KUBECONFIG")
        kubeconfig = lines[-1].split("=", 1)[1].strip().strip("'\"")
        yield Kubectl(find_kubectl(), kubeconfig)
    finally:
        subprocess.run(
            [*_mbcas(), "cluster", "down", "--name", CLUSTER_NAME],
            capture_output=True,
            timeout=120,
            check=False,
        )


# ----------------------------------------------------------------------------------------------
# pods and cgroups


def pod_body(pod: ExperimentPod, namespace: str) -> dict[str, Any]:
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
            "nodeName": NODE_NAME,
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


def _cpu_cores(quantity: str | None) -> float | None:
    if not quantity:
        return None
    if quantity.endswith("m"):
        return int(quantity[:-1]) / 1000.0
    return float(quantity)


def applied_limit(pod: dict[str, Any]) -> float | None:
    """The CPU limit the (emulated) kubelet reports as applied: ``status.containerStatuses[].resources``."""
    for cs in pod.get("status", {}).get("containerStatuses", []) or []:
        res = cs.get("resources") or {}
        return _cpu_cores((res.get("limits") or {}).get("cpu"))
    return None


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


def container_paths(pods: dict[str, Any], prefix: str) -> dict[str, str]:
    """Each pod's container cgroup path relative to the cgroup root."""
    out = {}
    for name, pod in pods.items():
        uid = pod["metadata"]["uid"]
        qos = QoSClass.parse(pod["status"].get("qosClass", "Burstable"))
        cgroup = PodCgroup(
            uid=uid,
            qos=qos,
            driver=CgroupDriver.SYSTEMD,
            relpath=pod_relpath(uid, qos, CgroupDriver.SYSTEMD, prefix),
        )
        cid = pod["status"]["containerStatuses"][0]["containerID"]
        out[name] = container_relpath(cgroup, cid)
    return out


def set_node_quota(reader: CgroupReader, prefix: str, cores: float) -> str:
    """Put ``cores`` as a CFS quota on the emulated node's ``kubepods.slice``; return the file."""
    layout = reader.layout
    quota = round(cores * CFS_PERIOD_US)
    if layout.kind is LayoutKind.V2:
        path = Path(layout.base_dir) / prefix / "kubepods.slice" / "cpu.max"
        path.write_text(f"{quota} {CFS_PERIOD_US}")
        return str(path)
    if layout.cpu_dir is None:
        raise ExperimentError("no v1 cpu controller: cannot cap the emulated node")
    directory = Path(layout.cpu_dir) / prefix / "kubepods.slice"
    (directory / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
    (directory / "cpu.cfs_quota_us").write_text(str(quota))
    return str(directory / "cpu.cfs_quota_us")


@dataclass(frozen=True, slots=True)
class KernelDelta:
    """Counters of one pod over the window, in seconds (CPU or wall)."""

    usage_s: float
    throttled_s: float | None
    psi_full_s: float | None
    psi_some_s: float | None


def _delta(a: CpuSnapshot, b: CpuSnapshot) -> KernelDelta:
    def sub(x: int | None, y: int | None) -> float | None:
        return None if x is None or y is None else max(0, y - x) / 1e6

    return KernelDelta(
        usage_s=max(0, b.usage_usec - a.usage_usec) / 1e6,
        throttled_s=sub(a.throttled_usec, b.throttled_usec),
        psi_full_s=sub(a.psi_full_usec, b.psi_full_usec),
        psi_some_s=sub(a.psi_some_usec, b.psi_some_usec),
    )


# ----------------------------------------------------------------------------------------------
# one run


def generation_bumps(events: list[tuple[float, str, dict[str, Any]]], t0: float, t1: float) -> dict[str, int]:
    """Per pod, how often ``metadata.generation`` rose inside ``[t0, t1]`` (resizes)."""
    last: dict[str, int] = {}
    bumps: dict[str, int] = {}
    for t, _, obj in events:
        name = obj["metadata"]["name"]
        gen = int(obj["metadata"].get("generation", 0))
        if name in last and gen > last[name] and t0 <= t <= t1:
            bumps[name] = bumps.get(name, 0) + 1
        last[name] = max(gen, last.get(name, 0))
    return bumps


def run_one(
    kubectl: Kubectl,
    scenario: ExperimentScenario,
    mode: str,
    *,
    prefix: str,
    reader: CgroupReader,
    node_cpu: float,
    log_dir: Path,
) -> dict[str, Any]:
    """Run one scenario in one mode; return its measurements (JSON-ready)."""
    namespace = f"eval-{scenario.name}-{mode}"
    kubectl.run("create", "namespace", namespace)
    components: list[Component] = []
    pod_watch = Watch(kubectl, ("pods", "-n", namespace)).start()
    pa_watch: Watch | None = None
    try:
        if mode == "mbcas":
            pa_watch = Watch(kubectl, ("podallocations.mbcas.io", "-n", namespace)).start()
            components.append(
                start_component(
                    f"controller-{scenario.name}",
                    [
                        "controller",
                        "--kubeconfig",
                        kubectl.kubeconfig,
                        "--namespace",
                        namespace,
                        "--metrics-port",
                        "0",
                        "--health-port",
                        "0",
                        "--no-leader-election",
                    ],
                    log_dir,
                )
            )
        names = [p.name for p in scenario.pods]
        kubectl.run(
            "apply",
            "-f",
            "-",
            stdin=json.dumps(
                {"apiVersion": "v1", "kind": "List", "items": [pod_body(p, namespace) for p in scenario.pods]}
            ),
        )
        pods = wait_running(kubectl, namespace, names)
        paths = container_paths(pods, prefix)
        quota_file = set_node_quota(reader, prefix, node_cpu)
        if mode == "mbcas":
            components.append(
                start_component(
                    f"agent-{scenario.name}",
                    [
                        "agent",
                        "--node",
                        NODE_NAME,
                        "--kubeconfig",
                        kubectl.kubeconfig,
                        "--tick",
                        "1",
                        "--reserve",
                        "0",
                        "--cgroup-prefix",
                        prefix,
                        "--metrics-port",
                        "0",
                        "--config-map",
                        "",
                    ],
                    log_dir,
                )
            )
        time.sleep(scenario.warmup_s)
        for c in components:
            if not c.alive():
                raise ExperimentError(f"{c.name} exited early:\n{c.tail()}")

        start = time.monotonic()
        snap0 = {n: reader.read(p) for n, p in paths.items()}
        series: list[dict[str, Any]] = []
        prev = dict(snap0)
        changed_at: float | None = None
        changed_pod = next((p for p in scenario.pods if p.demand_after is not None), None)
        while (now := time.monotonic()) - start < scenario.measure_s:
            elapsed = now - start
            if (
                changed_pod is not None
                and changed_at is None
                and scenario.change_at_s is not None
                and elapsed >= scenario.change_at_s
            ):
                kubectl.run(
                    "annotate",
                    "pod",
                    "-n",
                    namespace,
                    changed_pod.name,
                    "--overwrite",
                    f"{DEMAND_ANNOTATION}={changed_pod.demand_after:g}",
                )
                changed_at = time.monotonic()
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
            cur = {n: reader.read(p) for n, p in paths.items()}
            limits = _latest_limits(pod_watch.snapshot())
            row: dict[str, Any] = {"t": round(time.monotonic() - start, 2)}
            for n in names:
                d = _delta(prev[n], cur[n])
                dt = max(1e-6, (cur[n].mono_ns - prev[n].mono_ns) / 1e9)
                row[n] = {
                    "usage": round(d.usage_s / dt, 4),
                    "throttled": None if d.throttled_s is None else round(d.throttled_s / dt, 4),
                    "limit": limits.get(n),
                }
            series.append(row)
            prev = cur
        end = time.monotonic()
        snap1 = {n: reader.read(p) for n, p in paths.items()}
        window = end - start
        return summarise(
            scenario,
            mode,
            window=window,
            deltas={n: _delta(snap0[n], snap1[n]) for n in names},
            pod_events=pod_watch.snapshot(),
            pa_events=pa_watch.snapshot() if pa_watch else [],
            start=start,
            end=end,
            changed_at=changed_at,
            changed_pod=changed_pod,
            node_cpu=node_cpu,
            series=series,
            quota_file=quota_file,
        )
    finally:
        for c in reversed(components):
            c.stop()
        pod_watch.stop()
        if pa_watch is not None:
            pa_watch.stop()
        with contextlib.suppress(ExperimentError, subprocess.TimeoutExpired):
            kubectl.run("delete", "namespace", namespace, "--wait=false", timeout=30)
            kubectl.run("delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force", timeout=30)


def _latest_limits(events: list[tuple[float, str, dict[str, Any]]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for _, _, obj in events:
        out[obj["metadata"]["name"]] = applied_limit(obj)
    return out


def summarise(
    scenario: ExperimentScenario,
    mode: str,
    *,
    window: float,
    deltas: dict[str, KernelDelta],
    pod_events: list[tuple[float, str, dict[str, Any]]],
    pa_events: list[tuple[float, str, dict[str, Any]]],
    start: float,
    end: float,
    changed_at: float | None,
    changed_pod: ExperimentPod | None,
    node_cpu: float,
    series: list[dict[str, Any]],
    quota_file: str,
) -> dict[str, Any]:
    """The JSON-ready measurements of one run from its kernel deltas and API event streams.

    ``unserved_share`` compares usage with the configured demand (integrated over ``series``);
    ``reaction_time_s`` is the time from ``changed_at`` to the first pod event reporting an applied
    limit >= 90 % of the new demand (0 if the initial limit already covered it, ``None`` if never);
    ``first_response_s`` the time to the first raise of the applied limit.
    """
    n = len(scenario.pods)
    minutes = window / 60.0
    usage = sum(d.usage_s for d in deltas.values())
    throttled = [d.throttled_s for d in deltas.values()]
    full = [d.psi_full_s for d in deltas.values()]
    # Configured demand (ground truth we set) integrated over the window, from the series' timing.
    demand_s = sum(
        sum(scenario.demand_at(p, float(r["t"])) for r in series) * (window / max(1, len(series)))
        for p in scenario.pods
    )
    unserved = max(0.0, demand_s - usage)
    resizes = generation_bumps(pod_events, start, end)
    pa_writes = sum(1 for t, _, _ in pa_events if start <= t <= end)
    reaction: float | None = None
    first_response: float | None = None
    if changed_at is not None and changed_pod is not None and changed_pod.demand_after is not None:
        need = 0.9 * changed_pod.demand_after
        for t, _, obj in pod_events:
            if t < changed_at or obj["metadata"]["name"] != changed_pod.name:
                continue
            lim = applied_limit(obj)
            if lim is not None and lim >= need - 1e-9:
                reaction = t - changed_at
                break
        before = None
        for t, _, obj in pod_events:
            if obj["metadata"]["name"] != changed_pod.name:
                continue
            lim = applied_limit(obj)
            if t < changed_at:
                before = lim
            elif lim is not None and before is not None and lim > before + 1e-9:
                first_response = t - changed_at
                break
        initial = next((p.request_m / 1000.0 for p in scenario.pods if p is changed_pod), 0.0)
        if reaction is None and initial >= need:
            reaction = 0.0
    return {
        "scenario": scenario.name,
        "mode": mode,
        "window_s": round(window, 2),
        "node_cpu": node_cpu,
        "node_quota_file": quota_file,
        "utilization": usage / (window * node_cpu),
        "usage_cores": usage / window,
        "throttled_s": None if any(x is None for x in throttled) else sum(x or 0.0 for x in throttled),
        "psi_full_s": None if any(x is None for x in full) else sum(x or 0.0 for x in full),
        "unserved_share": unserved / demand_s if demand_s > 0 else 0.0,
        "reaction_time_s": reaction,
        "first_response_s": first_response,
        "resizes": sum(resizes.values()),
        "podallocation_writes": pa_writes,
        "api_writes_per_pod_minute": (sum(resizes.values()) + pa_writes) / (n * minutes),
        "decisions": [
            {
                "t": round(t - start, 2),
                "pod": obj.get("spec", {}).get("podName"),
                "cpu_limit": obj.get("spec", {}).get("cpuLimit"),
                "reason": obj.get("spec", {}).get("reason"),
                "status": (obj.get("status") or {}).get("phase"),
            }
            for t, _, obj in pa_events
            if t >= start - 5.0
        ],
        "per_pod": {
            name: {
                "usage_cores": d.usage_s / window,
                "throttled_s": d.throttled_s,
                "psi_full_s": d.psi_full_s,
                "resizes": resizes.get(name, 0),
            }
            for name, d in deltas.items()
        },
        "series": series,
    }


# ----------------------------------------------------------------------------------------------
# orchestration and report


def run_experiment(
    out: Path, scenarios: Sequence[str], modes: Sequence[str], node_cpu: float, measure_s: float | None
) -> dict[str, Any]:
    """Run every scenario in every mode on one local cluster; write nothing (see :func:`main`)."""
    if os.geteuid() != 0:
        raise ExperimentError("the real-kernel experiment needs root to create cgroups")
    notes: list[str] = []
    if "mbcas" in modes:
        missing = [c for c in ("agent", "controller") if not command_available(c)]
        if missing:
            notes.append(f"mbcas mode not run: `mbcas {' / '.join(missing)}` is not available in this build")
            modes = [m for m in modes if m != "mbcas"]
    runs: list[dict[str, Any]] = []
    log_dir = out / "logs"
    reader = CgroupReader()
    with local_cluster(node_cpu, log_dir) as kubectl:
        crd = REPO_ROOT / "crds" / "podallocations.mbcas.io.yaml"
        if crd.exists():
            kubectl.run("apply", "-f", str(crd))
            kubectl.run("wait", "--for=condition=Established", "crd/podallocations.mbcas.io", "--timeout=30s")
        node = kubectl.get_json("node", NODE_NAME)
        prefix = node["metadata"].get("annotations", {}).get(PREFIX_ANNOTATION)
        if not prefix:
            raise ExperimentError(
                "the emulated node runs without kernel mode (no cgroup prefix): see its log"
            )
        for name in scenarios:
            base = EXPERIMENTS[name]
            scenario = base if measure_s is None else _with_measure(base, measure_s)
            for mode in modes:
                log.info("running %s / %s", name, mode)
                print(
                    f"[evaluate] {name} / {mode}: {scenario.warmup_s:g} s warm-up + {scenario.measure_s:g} s",
                    file=sys.stderr,
                    flush=True,
                )
                try:
                    runs.append(
                        run_one(
                            kubectl,
                            scenario,
                            mode,
                            prefix=prefix,
                            reader=reader,
                            node_cpu=node_cpu,
                            log_dir=log_dir,
                        )
                    )
                except (ExperimentError, CgroupError, OSError) as exc:
                    notes.append(f"{name}/{mode} failed: {exc}")
                    print(f"[evaluate] {name} / {mode} failed: {exc}", file=sys.stderr, flush=True)
    return {"node_cpu": node_cpu, "runs": runs, "notes": notes}


def _with_measure(s: ExperimentScenario, measure_s: float) -> ExperimentScenario:
    change = None if s.change_at_s is None else min(s.change_at_s, measure_s / 3)
    return ExperimentScenario(s.name, s.description, s.pods, s.warmup_s, measure_s, change)


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


def format_runs(result: dict[str, Any]) -> str:
    """A Markdown table of every run and, per scenario, MBCAS against static."""
    lines = [
        "| scenario | mode | util | throttled s | PSI full s | unserved | reaction s | first raise s "
        "| resizes "
        "| PA writes | writes/pod-min |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['scenario']} | {r['mode']} | {r['utilization']:.3f} | {_fmt(r['throttled_s'], '.1f')} | "
            f"{_fmt(r['psi_full_s'], '.1f')} | {r['unserved_share']:.3f} | "
            f"{_fmt(r['reaction_time_s'], '.1f')} | {_fmt(r.get('first_response_s'), '.1f')} | "
            f"{r['resizes']} | {r['podallocation_writes']} | {r['api_writes_per_pod_minute']:.2f} |"
        )
    return "\n".join(lines)


def compare(result: dict[str, Any]) -> list[str]:
    """Sentences comparing MBCAS with static limits per scenario, against the targets."""
    out = []
    by = {(r["scenario"], r["mode"]): r for r in result["runs"]}
    for name in EXPERIMENTS:
        s, m = by.get((name, "static")), by.get((name, "mbcas"))
        if not s or not m:
            continue
        if s["throttled_s"] and m["throttled_s"] is not None:
            cut = 1.0 - m["throttled_s"] / s["throttled_s"]
            verdict = "met" if cut >= 0.8 and m["utilization"] >= s["utilization"] else "missed"
            out.append(
                f"{name}: MBCAS throttled time {m['throttled_s']:.1f} s vs {s['throttled_s']:.1f} s static "
                f"({cut * 100:.0f} % less; target >= 80 % at equal or higher utilisation: {verdict}); "
                f"utilisation {m['utilization']:.3f} vs {s['utilization']:.3f}."
            )
        if m["reaction_time_s"] is not None or name == "spike":
            r = m["reaction_time_s"]
            out.append(
                f"{name}: reaction from demand change to applied limit: "
                f"{'never' if r is None else f'{r:.1f} s'} (target <= 2 s p50 at a 1 s tick; one spike)."
            )
        out.append(
            f"{name}: MBCAS API writes {m['api_writes_per_pod_minute']:.2f} per pod-minute over the window "
            f"(resizes + PodAllocation writes; the <= 0.2 target is for steady state)."
        )
    return out


def write_outputs(result: dict[str, Any], out: Path, command: str) -> None:
    """``results.json``, ``report.md`` and one plot per scenario (when matplotlib is there)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    plots = _plots(result, out)
    lines = [
        "# MBCAS real-kernel experiment",
        "",
        "Real etcd + kube-apiserver, the node emulator running each pod as a CPU-burning process in its "
        f"own cgroup with its limit as a CFS quota, an emulated node of {result['node_cpu']:g} core(s) "
        "enforced as a quota on its kubepods.slice. Definitions: `docs/evaluation.md`.",
        "",
        "```",
        command,
        "```",
        "",
        format_runs(result),
        "",
    ]
    lines += [f"- {c}" for c in compare(result)]
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    for p in plots:
        lines += ["", f"![{p.stem}]({p.name})"]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _plots(result: dict[str, Any], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for name in EXPERIMENTS:
        runs = [r for r in result["runs"] if r["scenario"] == name]
        if not runs:
            continue
        fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.2), sharey=True, squeeze=False)
        for ax, r in zip(axes[0], runs, strict=True):
            t = [row["t"] for row in r["series"]]
            pods = [k for k in r["series"][0] if k != "t"] if r["series"] else []
            for i, pod in enumerate(pods):
                color = f"C{i}"
                ax.plot(t, [row[pod]["usage"] for row in r["series"]], color=color, lw=0.8, alpha=0.6)
                ax.step(
                    t,
                    [row[pod]["limit"] or 0 for row in r["series"]],
                    color=color,
                    lw=1.4,
                    label=pod,
                    where="post",
                )
            ax.set_title(f"{name} / {r['mode']}", fontsize=9)
            ax.set_xlabel("s", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0][0].set_ylabel("cores: limit (thick), usage (thin)", fontsize=8)
        axes[0][0].legend(fontsize=7, frameon=False)
        fig.tight_layout()
        path = out / f"experiment-{name}.png"
        fig.savefig(path, dpi=72)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mbcas.sim.experiment",
        description="Real-kernel experiment: static limits vs the full MBCAS loop (see module docs).",
    )
    parser.add_argument("--out", type=Path, default=Path("report/experiment"), help="output directory")
    parser.add_argument("--scenarios", default="spike,contention", help="comma-separated: spike,contention")
    parser.add_argument("--modes", default="static,mbcas", help="comma-separated: static,mbcas")
    parser.add_argument("--node-cpu", type=float, default=1.0, help="cores of the emulated node (default 1)")
    parser.add_argument("--measure-s", type=float, default=None, help="override each scenario's window")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scenarios = [s for s in args.scenarios.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    bad = [s for s in scenarios if s not in EXPERIMENTS] + [m for m in modes if m not in ("static", "mbcas")]
    if bad:
        print(f"experiment: unknown scenario or mode {bad}", file=sys.stderr)
        return 2
    command = "python -m mbcas.sim.experiment " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        result = run_experiment(args.out, scenarios, modes, args.node_cpu, args.measure_s)
    except ExperimentError as exc:
        print(f"experiment: {exc}", file=sys.stderr)
        return 1
    write_outputs(result, args.out, command.strip())
    print(format_runs(result))
    for line in compare(result) + result["notes"]:
        print(f"- {line}")
    print(f"wrote {args.out / 'report.md'}")
    return 0 if result["runs"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
