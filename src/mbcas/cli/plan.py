"""``mbcas plan``: replay the agent's pure decision path on a node snapshot.

::

    mbcas plan --input SNAPSHOT.json [-o json] [--min-cpu 50m] [--max-cpu 2] [--limit-overcommit 2]

Reads a snapshot (the shape ``mbcas agent --once --dry-run -o json`` emits, see
:mod:`mbcas.agent.snapshot`; ``-`` reads stdin), runs the planner's estimate -> want -> bound
without history (each pod's burst envelope is its current usage, and its limit is its target: no
hysteresis) and prints the decision table, or with ``-o json`` ``{"capacity_cpu": ..., "pods":
[{"uid", "managed", "allocation_cpu", "reason"}]}``. A bad snapshot exits 2 with a message naming the field.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from mbcas.agent.snapshot import SnapshotError, parse_snapshot, plan_result
from mbcas.api.live import LiveConfig
from mbcas.cli.common import command, read_input
from mbcas.cli.errors import describe_settings, fail
from mbcas.core.units import format_cpu
from mbcas.policy.node import NodePlan, replay

__all__ = ["POLICY_FLAGS", "add_policy_flags", "live_from_args", "register", "render_table", "run_plan"]

#: live setting -> the flag that sets it (to name the flag in an error)
POLICY_FLAGS = {
    "planner.min_cpu": "--min-cpu",
    "planner.max_cpu": "--max-cpu",
    "planner.share_spare": "--no-spare",
}


def add_policy_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that override the live policy (shared with ``mbcas agent``)."""
    parser.add_argument("--min-cpu", default=None, metavar="QTY", help="global floor per pod (default 10m)")
    parser.add_argument("--max-cpu", default=None, metavar="QTY", help="global hard maximum per pod")
    parser.add_argument(
        "--limit-overcommit",
        default=None,
        type=float,
        metavar="X",
        help="Σ managed limits <= X × the shareable CPU (default 2.0; 1.0 = never more than the node)",
    )


def live_from_args(args: argparse.Namespace, base: LiveConfig | None = None) -> LiveConfig:
    planner: dict[str, Any] = {}
    if args.min_cpu is not None:
        planner["min_cpu"] = args.min_cpu
    if args.max_cpu is not None:
        planner["max_cpu"] = args.max_cpu
    if args.limit_overcommit is not None:
        planner["limit_overcommit"] = args.limit_overcommit
    return (base or LiveConfig()).merged({"planner": planner} if planner else {})


def register(subparsers: Any) -> None:
    summary = "replay the node decision (estimate -> want -> bound) on a snapshot"
    parser = command(subparsers, "plan", summary, __doc__.split("\n\n")[2] if __doc__ else None)
    parser.add_argument(
        "--input", "-i", required=True, metavar="SNAPSHOT.json", help="snapshot file, - for stdin"
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")
    add_policy_flags(parser)
    parser.set_defaults(func=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    try:
        live = live_from_args(args)
    except (ValidationError, ValueError) as exc:
        return fail("mbcas plan", describe_settings(exc, flags=POLICY_FLAGS))
    try:
        text = read_input(args.input)
    except ValueError as exc:
        return fail("mbcas plan", f"--input: {exc}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return fail("mbcas plan", f"--input: {args.input} is not JSON: {exc}")
    try:
        snap = parse_snapshot(data)
    except (SnapshotError, ValueError) as exc:
        return fail("mbcas plan", f"--input: bad snapshot {args.input}: {exc}")
    plan = replay(live.planner, snap.allocatable_cores, snap.reserve_cores, snap.inputs)
    if args.output == "json":
        json.dump(plan_result(plan), sys.stdout, indent=2)
        print()
    else:
        print(render_table(plan, snap.names))
    return 0


def _fmt(value: float, spec: str) -> str:
    return "-" if not math.isfinite(value) else format(value, spec)


def render_table(plan: NodePlan, names: Sequence[tuple[str, str]]) -> str:
    """The decision table: pod, request, usage, throttled %, PSI, envelope, allocation, reason."""
    inp = plan.inputs
    sig = inp.signals
    rows = [("POD", "REQUEST", "USAGE", "THROTTLED", "PSI-FULL", "ENVELOPE", "ALLOCATION", "REASON")]
    for i, (ns, name) in enumerate(names):
        req = float(inp.request[i])
        mc = int(plan.allocation_mcpu[i])
        rows.append(
            (
                f"{ns}/{name}",
                "-" if not math.isfinite(req) else format_cpu(round(req * 1000)),
                _fmt(float(sig.usage[i]), ".2f"),
                _fmt(float(sig.throttled_ratio[i]) * 100, ".0f")
                + ("%" if math.isfinite(sig.throttled_ratio[i]) else ""),
                _fmt(float(sig.psi_full[i]) * 100, ".0f") + ("%" if math.isfinite(sig.psi_full[i]) else ""),
                _fmt(float(plan.demand[i]), ".2f"),
                format_cpu(mc) if mc > 0 else "-",
                plan.reason(i),
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows
    ]
    footer = (
        f"shareable {format_cpu(max(plan.capacity_mcpu, 0))} for managed pods; limits"
        f" {plan.limits_total:.2f} of the {plan.policy.limit_overcommit:g}x bound"
        f" {plan.limit_bound:.2f} cores"
    )
    if plan.infeasible:
        footer += f"; INFEASIBLE: {plan.infeasible_message}"
    return "\n".join([*lines, footer])
