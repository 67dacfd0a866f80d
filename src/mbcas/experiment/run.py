"""Running the experiment: one scenario in one mode, and every scenario in every mode.

:func:`run_one` runs one scenario in one mode in its own namespace: in ``mbcas`` mode it starts
``mbcas controller`` (before the pods, so it sees them created) and ``mbcas agent`` (1 s tick, no
reserve: the node quota is already what the pods share); in ``static`` mode the pods keep the
limits they were created with. It creates the pods, caps the node, waits ``warmup_s``, then for
``measure_s`` samples the kernel counters once a second (changing the spike pod's demand
annotation at ``change_at_s``), and hands the deltas and the watch streams to
:func:`mbcas.experiment.summary.summarise`. Whatever happens, it stops what it started and deletes
the namespace. :func:`run_experiment` brings up one local cluster (with the PodAllocation CRD) and
runs every requested scenario in every mode on it; a failed run becomes a note, not an abort.

``real_node=True`` (``make evaluate-real-node``) runs the same scenarios on a real kubelet +
containerd node instead of the emulator: the pods run the burner image and take their demand from
pattern files, the node's CPU is capped by a CFS quota on the kubelet's ``kubepods`` cgroup (the
agent is told the same capacity with ``--allocatable``), pod cgroups follow the kubelet's
cgroupfs layout, and every quota is written by the kubelet.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mbcas.cgroups.errors import CgroupError
from mbcas.cgroups.paths import CgroupDriver
from mbcas.cgroups.reader import CgroupReader
from mbcas.experiment.cluster import (
    DEMAND_ANNOTATION,
    NODE_NAME,
    PREFIX_ANNOTATION,
    REAL_NODE_NAME,
    Component,
    Kubectl,
    Watch,
    command_available,
    local_cluster,
    pod_body,
    real_node_cluster,
    real_pod_body,
    start_component,
    wait_running,
    write_demand,
)
from mbcas.experiment.measure import container_paths, kernel_delta, set_node_quota
from mbcas.experiment.scenarios import EXPERIMENTS, ExperimentError, ExperimentScenario, with_measure
from mbcas.experiment.summary import latest_limits, summarise

__all__ = ["REPO_ROOT", "run_experiment", "run_one"]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]


def run_one(
    kubectl: Kubectl,
    scenario: ExperimentScenario,
    mode: str,
    *,
    prefix: str,
    reader: CgroupReader,
    node_cpu: float,
    log_dir: Path,
    burner_image: str | None = None,
) -> dict[str, Any]:
    """Run one scenario in one mode; return its measurements (JSON-ready).

    With ``burner_image`` the cluster is the real node (see the module docstring).
    """
    real = burner_image is not None
    node_name = REAL_NODE_NAME if real else NODE_NAME
    namespace = f"eval-{scenario.name}-{mode}"
    pattern_dir = log_dir / "patterns" / namespace
    if real:
        pattern_dir.mkdir(parents=True, exist_ok=True)
        pattern_dir.chmod(0o755)
        for p in scenario.pods:
            write_demand(pattern_dir, p.name, p.demand)
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
        bodies = [
            real_pod_body(p, namespace, burner_image, pattern_dir) if burner_image else pod_body(p, namespace)
            for p in scenario.pods
        ]
        kubectl.run(
            "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": bodies})
        )
        pods = wait_running(kubectl, namespace, names, timeout=120.0 if real else 60.0)
        if real:
            paths = container_paths(pods, "", CgroupDriver.CGROUPFS)
            quota_file = set_node_quota(reader, "", node_cpu, top="kubepods")
        else:
            paths = container_paths(pods, prefix)
            quota_file = set_node_quota(reader, prefix, node_cpu)
        if mode == "mbcas":
            components.append(
                start_component(
                    f"agent-{scenario.name}",
                    [
                        "agent",
                        "--node",
                        node_name,
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
                        *(["--allocatable", f"{node_cpu:g}"] if real else []),
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
                if real:
                    write_demand(pattern_dir, changed_pod.name, changed_pod.demand_after or 0.0)
                else:
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
            limits = latest_limits(pod_watch.snapshot())
            row: dict[str, Any] = {"t": round(time.monotonic() - start, 2)}
            for n in names:
                d = kernel_delta(prev[n], cur[n])
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
            deltas={n: kernel_delta(snap0[n], snap1[n]) for n in names},
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


def run_experiment(
    out: Path,
    scenarios: Sequence[str],
    modes: Sequence[str],
    node_cpu: float,
    measure_s: float | None,
    *,
    real_node: bool = False,
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
    # Absolute: on the real node the pattern files are a hostPath volume, and a relative hostPath
    # is resolved by the container runtime, not here (`make evaluate-real-node` passes a relative --out).
    log_dir = out.resolve() / "logs"
    reader = CgroupReader()
    with contextlib.ExitStack() as stack:
        burner_image: str | None = None
        if real_node:
            kubectl, burner_image = stack.enter_context(real_node_cluster(log_dir))
        else:
            kubectl = stack.enter_context(local_cluster(node_cpu, log_dir))
        crd = REPO_ROOT / "crds" / "podallocations.mbcas.io.yaml"
        if crd.exists():
            kubectl.run("apply", "-f", str(crd))
            kubectl.run("wait", "--for=condition=Established", "crd/podallocations.mbcas.io", "--timeout=30s")
        prefix = ""
        if not real_node:
            node = kubectl.get_json("node", NODE_NAME)
            prefix = node["metadata"].get("annotations", {}).get(PREFIX_ANNOTATION)
            if not prefix:
                raise ExperimentError(
                    "the emulated node runs without kernel mode (no cgroup prefix): see its log"
                )
        for name in scenarios:
            base = EXPERIMENTS[name]
            scenario = base if measure_s is None else with_measure(base, measure_s)
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
                            burner_image=burner_image,
                        )
                    )
                except (ExperimentError, CgroupError, OSError) as exc:
                    notes.append(f"{name}/{mode} failed: {exc}")
                    print(f"[evaluate] {name} / {mode} failed: {exc}", file=sys.stderr, flush=True)
    return {"node_cpu": node_cpu, "runs": runs, "notes": notes, "node": "real" if real_node else "emulated"}
