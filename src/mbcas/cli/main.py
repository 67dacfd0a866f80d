"""The ``mbcas`` command line (also installed as ``kubectl-mbcas`` for ``kubectl mbcas``).

Each sub-command lives in its own module under :mod:`mbcas.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a handler returning the exit
code. This module only wires them together, so commands stay independent of each other.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from mbcas import __version__
from mbcas.cli.errors import OneLineParser, describe_settings, fail

__all__ = ["build_parser", "main"]

# Modules under mbcas.cli, each with register(subparsers). Missing ones are skipped so that a
# partial install (no matplotlib, say) still gives a working CLI for everything else.
COMMAND_MODULES: tuple[str, ...] = (
    "sense",
    "plan",
    "cluster",
    "kubectl_cmds",
    "top",
    "agent",
    "controller",
    "config",
    "simulate",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mbcas",
        description="MBCAS: market-based, kernel-informed CPU allocation for Kubernetes pods.",
    )
    parser.add_argument("--version", action="version", version=f"mbcas {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mbcas.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mbcas.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A shell without job control starts background commands with SIGINT ignored, and Python
    # then keeps ignoring it: restore Ctrl-C so `--watch`, `demo` and `cluster up` always stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code: int = func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ValidationError as exc:  # a setting no command checked itself: still one line, exit 2
        return fail(f"mbcas {args.command}", describe_settings(exc))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
