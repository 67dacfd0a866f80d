"""Run the benchmarks: ``python benchmarks/run.py [--quick] [--list] [NAME ...]`` (``make bench``).

Every ``benchmarks/bench_<name>.py`` is a benchmark called ``<name>``. It must define
``main() -> dict`` that prints its own report and returns JSON-serialisable results; this runner
imports each file (so it needs no ``__init__.py``), calls ``main()`` and writes
``benchmarks/results/<name>.json`` with the environment and elapsed time (see ``_common.py``).
Files are run in name order, each in this process; one failing benchmark is reported and the rest
still run, and the exit status is 1 if any failed. ``--quick`` sets ``MBCAS_BENCH_QUICK=1`` so the
benchmarks cut their run counts and skip slow baselines.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

from _common import write_result  # benchmarks/ is on sys.path: this file runs as a script

HERE = Path(__file__).resolve().parent

__all__ = ["discover", "main"]


def discover() -> dict[str, Path]:
    """Map benchmark name -> file for every ``bench_*.py`` next to this file."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer runs, skip slow baselines")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    found = discover()
    if args.list:
        print("\n".join(found))
        return 0
    unknown = sorted(set(args.names) - set(found))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(found)}")
    if args.quick:
        os.environ["MBCAS_BENCH_QUICK"] = "1"

    failed: list[str] = []
    for name, path in found.items():
        if args.names and name not in args.names:
            continue
        print(f"=== {name} ({path.name}) ===", flush=True)
        t0 = time.perf_counter()
        try:
            data = _load(name, path).main()
            out = write_result(name, data, elapsed_s=time.perf_counter() - t0)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            print(f"=== {name}: FAILED", flush=True)
            continue
        print(f"=== {name}: {time.perf_counter() - t0:.1f} s, results in {out.relative_to(HERE.parent)}\n")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
