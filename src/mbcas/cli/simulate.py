"""``mbcas simulate``: run every policy on a scenario and report.

::

    mbcas simulate --list
    mbcas simulate --scenario contention [--seed 0] [--out DIR] [--policies static,mbcas] [-o json]

Without ``--out`` it prints the metrics table (or, with ``-o json``, the results as JSON). With
``--out DIR`` it also writes ``DIR/results.json``, the PNG plots and ``DIR/report.md``. The same
scenario and seed always give the same results. ``--scenario`` takes a packaged name or the path
of a scenario file. Unknown scenarios and bad files exit with status 2 and a message on stderr.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from mbcas.cli.common import command
from mbcas.cli.errors import fail

__all__ = ["register", "run_simulate"]


_DESCRIPTION = (
    "Run static limits (= and 2x requests), HPA-like, VPA-like, regret matching, Koordinator CPU"
    " Burst-like and MBCAS (production planner and resize rules), plus the no-limits reference, on"
    " identical seeded traces of a scenario; print the metrics and optionally write a report with"
    " plots."
)


def register(subparsers: Any) -> None:
    """Add the ``simulate`` sub-command to ``subparsers`` (from ``add_subparsers``)."""
    summary = "compare MBCAS with static, HPA, VPA, regret matching and CPU Burst in simulation"
    parser = command(subparsers, "simulate", summary, _DESCRIPTION)
    parser.add_argument("--scenario", metavar="NAME|FILE", help="packaged scenario name or JSON file")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the traces (default 0)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write report.md, PNG plots and results.json")
    parser.add_argument("--list", action="store_true", help="list the packaged scenarios and exit")
    parser.add_argument("--policies", metavar="A,B", help="comma-separated subset of policies (default: all)")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="stdout format")
    parser.add_argument("--no-plots", action="store_true", help="with --out: skip the PNG plots")
    parser.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    """Handler of ``mbcas simulate``; returns the exit code."""
    from mbcas.sim import ScenarioError, list_scenarios, load_scenario, simulate
    from mbcas.sim.policies import POLICY_NAMES, default_policies
    from mbcas.sim.report import format_table, write_report, write_results

    if args.list:
        for name in list_scenarios():
            scenario = load_scenario(name)
            print(f"{name:<16} {scenario.description}")
        return 0
    if not args.scenario:
        return fail("mbcas simulate", "--scenario NAME is required (see --list)")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        return fail("mbcas simulate", exc)
    policies = default_policies()
    if args.policies:
        wanted = [p.strip() for p in args.policies.split(",") if p.strip()]
        unknown = [p for p in wanted if p not in POLICY_NAMES]
        if unknown or not wanted:
            print(
                f"mbcas simulate: unknown policies {unknown}; choose from {', '.join(POLICY_NAMES)}",
                file=sys.stderr,
            )
            return 2
        policies = [p for p in policies if p.name in wanted]
    result = simulate(scenario, seed=args.seed, policies=policies)
    if args.output == "json":
        print(json.dumps(result.results, indent=2, allow_nan=False))
    else:
        print(f"scenario {scenario.name} (seed {args.seed}): {scenario.description}")
        print(format_table(result.results))
        for t in result.results["targets"]:
            verdict = {True: "met", False: "MISSED", None: "undefined"}[t["passed"]]
            print(f"  target: {t['target']}: {t['measured']} -> {verdict}")
            if t.get("why"):
                print(f"    why: {t['why']}")
    if args.out is not None:
        out: Path = args.out
        write_results(result.results, out / "results.json")
        plots: list[Path] = []
        if not args.no_plots:
            from mbcas.sim.plots import PlotsUnavailableError, write_plots

            try:
                plots = write_plots(result.traces, out, tuple(p.name for p in scenario.pods))
            except PlotsUnavailableError as exc:
                print(f"mbcas simulate: {exc}; writing the report without plots", file=sys.stderr)
        command = (
            f"mbcas simulate --scenario {shlex.quote(args.scenario)} --seed {args.seed} "
            f"--out {shlex.quote(str(out))}"
        )
        report = write_report(result.results, out, plots, command=command)
        if args.output != "json":
            print(f"wrote {report}, {out / 'results.json'} and {len(plots)} plots")
    return 0
