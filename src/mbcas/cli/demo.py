"""``mbcas demo``: the whole product on one machine, until Ctrl-C (or ``--duration``).

It starts a local control plane (etcd + kube-apiserver + kube-controller-manager), installs the
PodAllocation CRD, runs the node emulator in real-kernel mode (every pod is a real CPU burner in a
real cgroup under a real CFS quota) with three demo pods whose demand changes over time, the
controller and the node agent, and prints a live table every two seconds: each pod's demand, the
agent's allocation, the limit actually applied, its throttling and the reason. Limits are burst
caps: a pod throttled at its limit is raised at once and uses CPU the other pods leave idle, the
limits adding up to more than the node (up to ``limit_overcommit`` x its shareable CPU). On exit
everything it started is stopped and removed (namespace, cgroups, processes, control plane), and a
summary says how far each pod's allocation moved and which throttled pods got idle CPU above the
limit they started with.

The table is ``mbcas top``'s (:mod:`mbcas.cli.top`), from the PodAllocations and pods in the API
plus the in-process agent's metrics. kopf's warning that it ignores OS signals (it runs in a
thread here; the demo stops it on Ctrl-C itself) is filtered out: a user cannot act on it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from typing import Any

from mbcas.cli.common import command
from mbcas.cli.errors import cpu_quantity, positive_float

__all__ = ["DEMO_PODS", "quiet_kopf_signal_warning", "register", "run_demo"]

NODE = "demo-node"
NAMESPACE = "mbcas-demo"
# name -> (request, limit, demand pattern): seconds:cores steps, looping.
DEMO_PODS: dict[str, tuple[str, str, str]] = {
    "web": ("100m", "500m", "0:0.1,15:0.9,45:0.1,75:loop"),
    "batch": ("100m", "500m", "0:0.9,30:0.1,60:0.9,90:loop"),
    "api": ("200m", "500m", "0:0.3"),
}


def register(subparsers: Any) -> None:
    summary = "run control plane, node emulator (real cgroups), controller and agent; watch CPU move"
    parser = command(subparsers, "demo", summary, __doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument(
        "--duration", type=positive_float, default=None, metavar="SECONDS", help="stop after this long"
    )
    parser.add_argument(
        "--node-cpu", type=cpu_quantity, default="2", help="the emulated node's allocatable CPU (default 2)"
    )
    parser.set_defaults(func=run_demo)


class _NoSignalWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("OS signals are ignored")


def quiet_kopf_signal_warning() -> None:
    """Drop kopf's "OS signals are ignored: running not in the main thread" warning.

    kopf logs it whenever its operator runs outside the main thread, as the demo's in-process
    controller does; the demo stops the controller through its stop flag on Ctrl-C, so the warning
    is true but tells the user nothing to act on. Only that message of that kopf logger is dropped.
    """
    logger = logging.getLogger("kopf._core.reactor.running")
    if not any(isinstance(f, _NoSignalWarning) for f in logger.filters):
        logger.addFilter(_NoSignalWarning())


def _pod(name: str, request: str, limit: str, pattern: str) -> dict[str, Any]:
    from mbcas.local.emulator import DEMAND_ANNOTATION

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {DEMAND_ANNOTATION: pattern}, "labels": {"app": name}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": request}, "limits": {"cpu": limit}},
                }
            ],
        },
    }


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_demo(args: argparse.Namespace) -> int:
    from mbcas.agent.config import AgentConfig
    from mbcas.agent.loop import NodeAgent
    from mbcas.cgroups.reader import CgroupReader
    from mbcas.cli import top, top_metrics
    from mbcas.controller.config import ControllerConfig
    from mbcas.controller.main import Controller
    from mbcas.core.units import format_cpu, parse_cpu
    from mbcas.kube.client import build_kube
    from mbcas.kube.errors import KubeError
    from mbcas.kube.pods import NodePods
    from mbcas.local.build import ensure_binaries
    from mbcas.local.controlplane import ControlPlane
    from mbcas.local.emulator import NodeEmulator, NodeSpec
    from mbcas.local.kernel import KernelMode
    from mbcas.policy.resize import ResizeRules

    quiet_kopf_signal_warning()
    stop = threading.Event()
    # Until everything runs, Ctrl-C and SIGTERM interrupt whatever is under way (the first run's
    # build takes minutes): the ExitStack stops what already started and main() exits with 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    crd = __import__("pathlib").Path(__file__).resolve().parents[3] / "crds" / "podallocations.mbcas.io.yaml"
    history: dict[str, list[int]] = {name: [] for name in DEMO_PODS}
    peak_use: dict[str, float] = dict.fromkeys(DEMO_PODS, 0.0)
    with contextlib.ExitStack() as stack:
        print("starting the local control plane (first run builds it: minutes)...", flush=True)
        cp = ControlPlane(binaries=ensure_binaries(build=True))
        cp.start()
        stack.callback(cp.stop)
        cp.kubectl("apply", "--server-side", "-f", str(crd), check=True)
        cp.kubectl(
            "wait", "--for=condition=Established", "crd/podallocations.mbcas.io", "--timeout=60s", check=True
        )
        api = cp.api_client()
        emulator = NodeEmulator(
            api_client=api,
            nodes=[NodeSpec(NODE, args.node_cpu, "4Gi")],
            kernel=KernelMode(),
            resize_delay=0.3,
        )
        emulator.start()
        stack.callback(emulator.stop)
        sandbox = emulator.sandbox
        if sandbox is None or not sandbox.available:
            print(
                f"error: cannot run real cgroups here: {sandbox.reason if sandbox else 'no sandbox'}",
                file=sys.stderr,
            )
            return 1
        kube = build_kube(str(cp.kubeconfig))
        stack.callback(kube.close)
        core = kube.core
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        for name, (req, lim, pattern) in DEMO_PODS.items():
            core.create_namespaced_pod(NAMESPACE, _pod(name, req, lim, pattern))
        controller = Controller(
            ControllerConfig(
                kubeconfig=str(cp.kubeconfig), health_port=0, metrics_port=0, leader_election=False,
                rules=ResizeRules(min_interval_s=1.0), resync_s=2.0,
            ),
            kube=kube,
        )  # fmt: skip
        controller.start()
        stack.callback(controller.stop)
        config = AgentConfig(
            node=NODE,
            tick_s=1.0,
            cgroup_root=str(sandbox.root),
            cgroup_prefix=sandbox.prefix,
            config_map=None,
        )
        pods = NodePods(kube, NODE)
        pods.start()
        stack.callback(pods.stop)
        agent = NodeAgent(config, node=NODE, pods=pods, reader=CgroupReader(sandbox.root), kube=kube)
        agent_stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(agent_stop,), name="demo-agent", daemon=True)
        thread.start()
        stack.callback(thread.join, 10)
        stack.callback(agent_stop.set)
        signal.signal(signal.SIGINT, lambda *_: stop.set())  # from now on: stop the loop, clean up
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print(f"node {NODE}: {args.node_cpu} CPU, 200m reserved; pods: " + ", ".join(DEMO_PODS), flush=True)
        print(
            "Ctrl-C to stop." if args.duration is None else f"running for {args.duration:.0f}s.", flush=True
        )
        started = time.monotonic()
        source = top_metrics.FunctionSource(agent.metrics.render)
        while not stop.wait(2.0):
            elapsed = time.monotonic() - started
            try:
                snapshot = top.collect(kube, namespace=NAMESPACE, metrics=source)
            except KubeError as exc:  # one missed refresh; the next one tries again
                print(f"t={elapsed:5.0f}s  (cannot read the allocations now: {exc})", flush=True)
                continue
            for row in snapshot.rows:
                if row.pod in history and row.desired_mcpu:
                    history[row.pod].append(row.desired_mcpu)
                if row.pod in peak_use and row.signals is not None and row.signals.usage_cores is not None:
                    peak_use[row.pod] = max(peak_use[row.pod], row.signals.usage_cores)
            table = (
                top.render_table(snapshot, nodes=False)
                if snapshot.rows
                else "(no decision yet: the agent is warming up on its first samples)"
            )
            print(f"t={elapsed:5.0f}s\n{table}", flush=True)
            if args.duration is not None and elapsed >= args.duration:
                break
        print("stopping and cleaning up...", flush=True)
        with contextlib.suppress(Exception):
            core.delete_namespace(NAMESPACE)
    moved = {name: (min(v), max(v)) for name, v in history.items() if v}
    for name, (lo, hi) in moved.items():
        print(f"summary: {name}: allocation ranged {format_cpu(lo)} .. {format_cpu(hi)}")
    swing = max((hi - lo for lo, hi in moved.values()), default=0)
    if swing >= 200:
        print(f"CPU moved: up to {swing}m between a pod's lowest and highest allocation")
    else:
        print("CPU did not move noticeably (demand too steady or run too short)")
    for name, (_, limit, _) in DEMO_PODS.items():
        if peak_use[name] > 1.1 * parse_cpu(limit) / 1000.0:
            print(
                f"idle CPU to a throttled pod: {name} used up to {peak_use[name]:.2f} cores, above the "
                f"{limit} limit it started with"
            )
    return 0
