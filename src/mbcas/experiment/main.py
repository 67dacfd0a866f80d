"""The experiment's command line: ``python -m mbcas.experiment`` (``make evaluate``).

:func:`main` parses which scenarios and modes to run, the emulated node's cores and an optional
shorter window, runs them (:func:`mbcas.experiment.run.run_experiment`), writes the report into
``--out`` (:func:`mbcas.experiment.report.write_outputs`) and prints the table and comparisons.
Exit status: 0 when at least one run finished, 1 when none did or the experiment could not start
(e.g. not root), 2 for an unknown scenario or mode.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mbcas.experiment.report import compare, format_runs, write_outputs
from mbcas.experiment.run import run_experiment
from mbcas.experiment.scenarios import EXPERIMENTS, ExperimentError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mbcas.experiment",
        description="Real-kernel experiment: static limits vs the full MBCAS loop (see docs/evaluation.md).",
    )
    parser.add_argument("--out", type=Path, default=Path("report/experiment"), help="output directory")
    parser.add_argument(
        "--scenarios",
        default=",".join(EXPERIMENTS),
        help=f"comma-separated, of {','.join(EXPERIMENTS)} (default: all)",
    )
    parser.add_argument("--modes", default="static,mbcas", help="comma-separated: static,mbcas")
    parser.add_argument("--node-cpu", type=float, default=1.0, help="cores of the emulated node (default 1)")
    parser.add_argument("--measure-s", type=float, default=None, help="override each scenario's window")
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="run on a real kubelet + containerd node (mbcas cluster up --real-node) instead of the emulator",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scenarios = [s for s in args.scenarios.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    bad = [s for s in scenarios if s not in EXPERIMENTS] + [m for m in modes if m not in ("static", "mbcas")]
    if bad:
        print(f"experiment: unknown scenario or mode {bad}", file=sys.stderr)
        return 2
    command = "python -m mbcas.experiment " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        result = run_experiment(
            args.out, scenarios, modes, args.node_cpu, args.measure_s, real_node=args.real_node
        )
    except ExperimentError as exc:
        print(f"experiment: {exc}", file=sys.stderr)
        return 1
    write_outputs(result, args.out, command.strip())
    print(format_runs(result))
    for line in compare(result) + result["notes"]:
        print(f"- {line}")
    print(f"wrote {args.out / 'report.md'}")
    return 0 if result["runs"] else 1
