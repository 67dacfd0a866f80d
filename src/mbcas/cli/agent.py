"""``mbcas agent``: the node agent (one per node).

::

    mbcas agent [--node NODE] [--kubeconfig K] [--tick 1] [--mode enforce|recommend|observe]
                [--cgroup-root /sys/fs/cgroup] [--cgroup-prefix P] [--metrics-port 9100]
                [--config-map NS/NAME] [--dry-run] [--once [-o table|json]]

The node comes from ``--node`` or ``NODE_NAME`` (downward API); every flag also has an
``MBCAS_AGENT_<FLAG>`` environment variable. ``--once --dry-run`` samples every pod twice, one
tick apart, and prints the decision table (or, with ``-o json``, a node snapshot that
``mbcas plan --input`` replays, with the plan under ``"plan"``) without writing anything.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from typing import Any

from pydantic import ValidationError

from mbcas.agent.config import AgentConfig
from mbcas.agent.health import HealthServer
from mbcas.agent.loop import NodeAgent
from mbcas.agent.metrics import AgentMetrics
from mbcas.agent.snapshot import plan_result, snapshot_pod
from mbcas.api.live import RolloutMode
from mbcas.cgroups.errors import CgroupError
from mbcas.cgroups.reader import CgroupReader
from mbcas.cli.errors import describe_settings, fail, positive_float
from mbcas.cli.plan import POLICY_FLAGS, add_policy_flags, live_from_args, render_table
from mbcas.core.units import format_cpu
from mbcas.kube.client import build_kube
from mbcas.kube.errors import KubeError
from mbcas.kube.pods import NodePods
from mbcas.policy.node import replay

__all__ = ["build_config", "register", "run_agent"]

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "agent",
        help="run the node agent: sense pods' cgroups, share the node's CPU, write PodAllocations",
        description="The MBCAS node agent. Flags override MBCAS_AGENT_* environment variables.",
    )
    parser.add_argument("--node", default=None, help="node name (default: $NODE_NAME)")
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--context", default=None)
    parser.add_argument(
        "--tick", type=positive_float, default=None, metavar="SECONDS", help="tick period (default 1)"
    )
    parser.add_argument(
        "--reserve", default=None, metavar="QTY", help="CPU kept back on the node (default 200m)"
    )
    parser.add_argument(
        "--allocatable", default=None, metavar="QTY", help="override the Node's allocatable CPU"
    )
    parser.add_argument("--cgroup-root", default=None, help="cgroup root (default /sys/fs/cgroup)")
    parser.add_argument("--cgroup-prefix", default=None, help="path under the root holding kubepods")
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="/metrics, /healthz, /readyz port (9100)"
    )
    parser.add_argument("--config-map", default=None, metavar="NS/NAME", help="live ConfigMap ('' = none)")
    parser.add_argument(
        "--mode", choices=[m.value for m in RolloutMode], default=None, help="global rollout mode"
    )
    parser.add_argument("--dry-run", action="store_true", help="plan but never write")
    parser.add_argument("--once", action="store_true", help="one tick, print the decision and exit")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="--once output")
    add_policy_flags(parser)
    parser.set_defaults(func=run_agent)


def build_config(args: argparse.Namespace) -> AgentConfig:
    """Defaults < environment < flags."""
    overrides: dict[str, Any] = {}
    for flag, field in (
        ("node", "node"),
        ("kubeconfig", "kubeconfig"),
        ("context", "context"),
        ("tick", "tick_s"),
        ("reserve", "reserve_cpu"),
        ("allocatable", "allocatable_cpu"),
        ("cgroup_root", "cgroup_root"),
        ("cgroup_prefix", "cgroup_prefix"),
        ("metrics_port", "metrics_port"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides[field] = value
    if args.config_map is not None:
        overrides["config_map"] = args.config_map or None
    base = AgentConfig(**overrides)
    live = live_from_args(args, base.live)
    if args.mode is not None:
        live = live.merged({"mode": args.mode})
    return base.model_copy(update={"live": live})


_AGENT_FLAGS = {
    "node": "--node",
    "kubeconfig": "--kubeconfig",
    "context": "--context",
    "tick_s": "--tick",
    "reserve_cpu": "--reserve",
    "allocatable_cpu": "--allocatable",
    "cgroup_root": "--cgroup-root",
    "cgroup_prefix": "--cgroup-prefix",
    "metrics_port": "--metrics-port",
    "config_map": "--config-map",
    "mode": "--mode",
    **POLICY_FLAGS,
}


def run_agent(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
        if not config.node:
            raise ValueError("no node: pass --node or set NODE_NAME")
    except (ValidationError, ValueError) as exc:
        given = {f for f, flag in _AGENT_FLAGS.items() if getattr(args, flag[2:].replace("-", "_"), None)}
        why = describe_settings(exc, env_prefix="MBCAS_AGENT_", flags=_AGENT_FLAGS, given=given.__contains__)
        return fail("mbcas agent", f"bad agent configuration: {why}")
    try:
        reader = CgroupReader(config.cgroup_root)
    except CgroupError as exc:
        return fail("mbcas agent", f"cgroup root {config.cgroup_root}: {exc}")
    try:
        kube = build_kube(config.kubeconfig, config.context)
    except KubeError as exc:
        return fail("mbcas agent", exc, exc.exit_code)
    try:
        if args.once:
            return _once(config, kube, reader, args)
        return _serve(config, kube, reader, dry_run=args.dry_run)
    finally:
        kube.close()


def _once(config: AgentConfig, kube: Any, reader: CgroupReader, args: argparse.Namespace) -> int:
    assert config.node is not None
    pods = NodePods(kube, config.node)
    try:
        pods.sync_once()
    except KubeError as exc:
        return fail("mbcas agent", exc, exc.exit_code)
    agent = NodeAgent(config, node=config.node, pods=pods, reader=reader, kube=kube, dry_run=True)
    agent.refresh_node(time.monotonic())
    if agent.allocatable is None:
        return fail(
            "mbcas agent", f"cannot read the allocatable CPU of node {config.node} (use --allocatable)", 3
        )
    agent.sense()  # baseline read
    time.sleep(config.tick_s)
    sensed = agent.sense()
    plan = replay(agent.live.planner, agent.allocatable, config.reserve_cores, sensed.inputs)
    if args.output == "json":
        snapshot = {
            "node": config.node,
            "allocatable_cpu": format_cpu(round(agent.allocatable * 1000)),
            "reserve_cpu": config.reserve_cpu,
            "pods": [snapshot_pod(sensed.inputs, i, ns, name) for i, (ns, name) in enumerate(sensed.names)],
            "plan": plan_result(plan),
        }
        json.dump(snapshot, sys.stdout, indent=2)
        print()
    else:
        print(render_table(plan, sensed.names))
        for _uid, err in sorted(sensed.errors.items()):
            print(f"  note: {err}", file=sys.stderr)
    return 0


def _serve(config: AgentConfig, kube: Any, reader: CgroupReader, *, dry_run: bool) -> int:
    assert config.node is not None
    metrics = AgentMetrics()
    pods = NodePods(kube, config.node)
    agent = NodeAgent(
        config, node=config.node, pods=pods, reader=reader, kube=kube, metrics=metrics, dry_run=dry_run
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = None
    if config.metrics_port:
        server = HealthServer(
            metrics, agent.healthy, agent.ready, port=config.metrics_port, addr=config.bind_address
        )
        server.start()
    pods.start()
    if not pods.wait_synced(30):
        log.warning("pod cache not synced after 30s; sensing what is known and retrying")
    log.info(
        "agent on node %s: tick %.1fs, mode %s%s",
        config.node,
        config.tick_s,
        agent.live.mode.value,
        " (dry run)" if dry_run else "",
    )
    try:
        agent.run(stop)
    finally:
        pods.stop()
        if server is not None:
            server.stop()
    return 0
