"""``mbcas controller``: run the PodAllocation controller (kopf) until SIGINT/SIGTERM.

Settings come from :class:`~mbcas.controller.config.ControllerConfig`: defaults, then
``MBCAS_CONTROLLER_*`` environment variables, then the flags given here. Exit codes follow
``mbcas`` (2 bad configuration, 9 apiserver unavailable, 10 pods/resize or the CRD missing).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from mbcas.kube.errors import KubeError

__all__ = ["register", "run_controller"]

# flag -> config field, for the flags that map one to one
_FLOAT_FLAGS = {
    "min_interval": "min_interval_s",
    "max_step_ratio": "max_step_ratio",
    "deadband_ratio": "deadband_ratio",
    "failure_cooldown": "failure_cooldown_s",
    "max_resizes_per_second": "max_resizes_per_second",
    "staleness": "staleness_s",
    "resync": "resync_s",
}


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "controller", help="run the controller that applies PodAllocations as in-place resizes"
    )
    p.add_argument("--kubeconfig")
    p.add_argument("--context")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="watch only this namespace")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all namespaces (default)")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default 9101, 0 = off)")
    p.add_argument("--health-port", type=int, help="liveness /healthz port (default 8081, 0 = off)")
    p.add_argument("--bind-address", help="address for both endpoints (default 0.0.0.0)")
    p.add_argument("--no-leader-election", action="store_true", help="act without holding the Lease")
    p.add_argument("--lease-namespace", help="namespace of the leader-election Lease (default: default)")
    p.add_argument("--allow-restart", action="store_true", help="also resize RestartContainer containers")
    p.add_argument("--max-step-mcpu", type=int, help="largest change per resize, millicores")
    for flag in _FLOAT_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", type=float, dest=flag)
    p.set_defaults(func=run_controller)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in (
        "kubeconfig",
        "context",
        "namespace",
        "metrics_port",
        "health_port",
        "bind_address",
        "lease_namespace",
        "max_step_mcpu",
    ):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    if args.all_namespaces:
        out["namespace"] = None
    if args.no_leader_election:
        out["leader_election"] = False
    if args.allow_restart:
        out["allow_restart"] = True
    for flag, field in _FLOAT_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            out[field] = value
    return out


def run_controller(args: argparse.Namespace) -> int:
    from mbcas.controller.config import ControllerConfig
    from mbcas.controller.main import Controller

    try:
        config = ControllerConfig(**_overrides(args))
        config.rules()
    except (ValidationError, ValueError) as exc:
        print(f"mbcas controller: invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        Controller(config).run()
    except KubeError as exc:
        print(f"mbcas controller: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
