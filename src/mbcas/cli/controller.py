"""``mbcas controller``: run the PodAllocation controller (kopf) until SIGINT/SIGTERM.

Settings come from :class:`~mbcas.controller.config.ControllerConfig`: defaults, then
``MBCAS_CONTROLLER_*`` environment variables (``MBCAS_CONTROLLER_RULES__<RULE>`` for the resize
rules), then the flags given here. The deadband, the staleness limit and whether
``RestartContainer`` containers are resized are the contract with the agent: they come from the
``contract:`` section of the shared ConfigMap (``--config-map``), not from flags or env. Exit codes follow
``mbcas`` (2 bad configuration, 9 apiserver unavailable, 10 pods/resize or the CRD missing).
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from mbcas.cli.errors import describe_settings, fail
from mbcas.kube.errors import KubeError

__all__ = ["register", "run_controller"]

# flag -> resize rule (ControllerConfig.rules)
_RULE_FLAGS = {
    "min_interval": ("min_interval_s", float),
    "max_step_ratio": ("max_step_ratio", float),
    "max_step_mcpu": ("max_step_mcpu", int),
    "failure_cooldown": ("failure_cooldown_s", float),
    "max_resizes_per_second": ("max_resizes_per_second", float),
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
    p.add_argument(
        "--config-map",
        metavar="NS/NAME",
        help="shared ConfigMap ('' = none; default mbcas-system/mbcas-config)",
    )
    p.add_argument("--resync", type=float, metavar="SECONDS", help="re-check every allocation this often")
    for flag, (field, kind) in _RULE_FLAGS.items():
        p.add_argument(
            f"--{flag.replace('_', '-')}",
            type=kind,
            dest=flag,
            metavar=field.upper(),
            help=f"resize rule {field}",
        )
    p.set_defaults(func=run_controller)


#: setting (dotted for a rule) -> the flag that sets it, to name the flag in an error
_FLAGS = {
    **{
        f: f"--{f.replace('_', '-')}"
        for f in ("kubeconfig", "context", "namespace", "metrics_port", "health_port")
    },
    "bind_address": "--bind-address",
    "lease_namespace": "--lease-namespace",
    "leader_election": "--no-leader-election",
    "config_map": "--config-map",
    "resync_s": "--resync",
    **{f"rules.{field}": f"--{flag.replace('_', '-')}" for flag, (field, _) in _RULE_FLAGS.items()},
}


def _given(overrides: dict[str, Any], field: str) -> bool:
    """Whether a flag set ``field`` (``rules.<rule>`` for a rule)."""
    section, _, rule = field.partition(".")
    if rule:
        return section == "rules" and rule in overrides.get("rules", {})
    return field in overrides


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
    ):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    if args.all_namespaces:
        out["namespace"] = None
    if args.no_leader_election:
        out["leader_election"] = False
    if args.config_map is not None:
        out["config_map"] = args.config_map or None
    if args.resync is not None:
        out["resync_s"] = args.resync
    rules = {
        field: v for flag, (field, _) in _RULE_FLAGS.items() if (v := getattr(args, flag, None)) is not None
    }
    if rules:
        out["rules"] = rules
    return out


def _config(overrides: dict[str, Any]) -> Any:
    """Defaults < env < flags; flags for the rules merge into the rules the env gives."""
    from mbcas.controller.config import ControllerConfig

    if "rules" in overrides:
        base = ControllerConfig()
        overrides = {**overrides, "rules": {**base.rules.model_dump(), **overrides["rules"]}}
    return ControllerConfig(**overrides)


def run_controller(args: argparse.Namespace) -> int:
    from mbcas.controller.config import ENV_PREFIX
    from mbcas.controller.main import Controller

    overrides = _overrides(args)
    try:
        config = _config(overrides)
    except (ValidationError, ValueError) as exc:
        why = describe_settings(
            exc, env_prefix=ENV_PREFIX, flags=_FLAGS, given=lambda f: _given(overrides, f)
        )
        return fail("mbcas controller", f"invalid configuration: {why}")
    try:
        Controller(config).run()
    except KubeError as exc:
        return fail("mbcas controller", exc, exc.exit_code)
    return 0
