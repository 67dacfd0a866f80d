"""``mbcas cluster up|down|status``: a local control plane and node emulator in the background.

``up`` prints progress on stderr and ``export KUBECONFIG=<path>`` as the last line on stdout, so
``eval "$(mbcas cluster up)"`` works. The processes survive the command; ``down`` stops them and
removes every file (and, in kernel mode, every cgroup) they made.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

__all__ = ["register"]


def _log(msg: str) -> None:
    print(f"[mbcas cluster] {msg}", file=sys.stderr, flush=True)


def _cmd_up(args: argparse.Namespace) -> int:
    from mbcas.local.build import BuildError
    from mbcas.local.certs import CertError
    from mbcas.local.controlplane import ControlPlaneError
    from mbcas.local.detached import up
    from mbcas.local.hostguard import NodeBusyError
    from mbcas.local.images import ImageBuildError
    from mbcas.local.procs import ProcessError
    from mbcas.local.realnode import RealNodeError

    if args.name is None:
        args.name = "node" if args.real_node else "default"
    try:
        kubeconfig = up(
            args.name,
            nodes=args.node or ["mbcas-node-1:4:8Gi"],
            emulator=not args.no_emulator,
            kernel=args.kernel,
            resize_delay=args.resize_delay,
            real_node=args.real_node,
            log=_log,
        )
    except (
        BuildError, CertError, ControlPlaneError, ProcessError, ValueError, RealNodeError, NodeBusyError,
        ImageBuildError,
    ) as exc:  # fmt: skip
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _log(f"stop it with: mbcas cluster down{'' if args.name == 'default' else ' --name ' + args.name}")
    print(f"export KUBECONFIG={shlex.quote(str(kubeconfig))}", flush=True)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from mbcas.local.detached import down
    from mbcas.local.realnode import RealNodeError

    try:
        stopped = down(args.name, log=_log)
    except RealNodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if stopped:
        _log(f"cluster {args.name!r} stopped and removed")
    else:
        _log(f"no cluster named {args.name!r}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from mbcas.local.detached import status

    st = status(args.name)
    if not st.exists:
        print(f"cluster {args.name!r}: not running")
        return 1
    print(f"cluster {args.name!r}: {'healthy' if st.healthy else 'DEGRADED'}")
    print(f"  url:        {st.url} (readyz {'ok' if st.ready else 'failing'})")
    print(f"  kubeconfig: {st.kubeconfig}")
    if st.cgroup_prefix:
        print(f"  cgroups:    /sys/fs/cgroup/.../{st.cgroup_prefix}")
    for comp, pid, alive in st.alive:
        print(f"  {comp:<24} pid {pid:<8} {'running' if alive else 'GONE'}")
    return 0 if st.healthy else 1


def register(subparsers: Any) -> None:
    """Add ``mbcas cluster`` and its sub-commands."""
    parser = subparsers.add_parser(
        "cluster",
        help="run a local control plane (etcd, kube-apiserver, controller-manager) + node emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)

    p_up = sub.add_parser("up", help="start in the background; prints `export KUBECONFIG=...` last")
    p_up.add_argument(
        "--name",
        default=None,
        help="cluster name (several may run at once; default 'default', 'node' with --real-node)",
    )
    p_up.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="NAME[:CPU[:MEMORY]]",
        help="an emulated node (repeatable; default mbcas-node-1:4:8Gi)",
    )
    p_up.add_argument("--no-emulator", action="store_true", help="start only the control plane")
    p_up.add_argument(
        "--kernel",
        action="store_true",
        help="run each pod as a real CPU burner in a real cgroup, when possible",
    )
    p_up.add_argument(
        "--resize-delay", type=float, default=1.0, help="seconds before a resize is reported (kubelet ~1 s)"
    )
    p_up.add_argument(
        "--real-node",
        action="store_true",
        help="a real kubelet + containerd node here instead of the emulator (root; one per machine)",
    )
    p_up.set_defaults(func=_cmd_up)

    p_down = sub.add_parser("down", help="stop the cluster and remove its files")
    p_down.add_argument("--name", default="default")
    p_down.set_defaults(func=_cmd_down)

    p_status = sub.add_parser("status", help="show the cluster's processes and readiness")
    p_status.add_argument("--name", default="default")
    p_status.set_defaults(func=_cmd_status)
