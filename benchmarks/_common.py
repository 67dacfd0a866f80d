"""Shared helpers for the benchmarks: timing, tables and JSON results.

Convention (see also ``run.py``): every ``benchmarks/bench_<name>.py`` defines

    def main() -> dict[str, object]

which runs the benchmark, prints a human-readable report to stdout and returns a JSON-serialisable
dict of results. ``run.py`` discovers the files, calls each ``main()`` and writes
``benchmarks/results/<name>.json`` (gitignored) with :func:`write_result`. A bench file can also
be run on its own (``python benchmarks/bench_solver.py``): end it with
``if __name__ == "__main__": run_standalone(main, "<name>")``.

Benchmarks honour :func:`quick` (``MBCAS_BENCH_QUICK=1``, set by ``run.py --quick``): fewer runs
and no multi-second baselines, for smoke-testing the harness.

API:

``Timing``
    Per-call wall-clock samples in seconds with ``p50``, ``p99``, ``mean``, ``min``, ``count`` and
    ``as_dict()`` (microseconds, for JSON).
``time_calls(fn, *, max_runs, max_seconds, min_runs=1, warmup=0) -> Timing``
    Calls ``fn()`` one call per sample, timed with ``time.perf_counter``, until ``max_runs``
    samples or ``max_seconds`` of measured time (but at least ``min_runs`` samples).
``percentile(samples, q) -> float``
    Linear-interpolated percentile, ``q`` in [0, 100].
``fmt_seconds(s) -> str``
    ``"12.3 µs"``, ``"4.56 ms"``, ``"1.23 s"``; ``"—"`` for None.
``format_table(headers, rows) -> str``
    A plain aligned text table (right-aligned cells).
``environment() -> dict``
    Python, numpy, scipy versions, platform, CPU count and a UTC timestamp.
``RESULTS_DIR`` / ``write_result(name, data, *, elapsed_s=None) -> Path``
    Writes ``{"benchmark", "environment", "elapsed_s", "results"}`` to ``RESULTS_DIR/<name>.json``.
``quick() -> bool``
``run_standalone(main, name) -> None``
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_DIR",
    "Timing",
    "environment",
    "fmt_seconds",
    "format_table",
    "percentile",
    "quick",
    "run_standalone",
    "time_calls",
    "write_result",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated ``q``-th percentile of ``samples`` (``q`` in [0, 100])."""
    if not samples:
        return math.nan
    xs = sorted(samples)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class Timing:
    """Per-call timings in seconds."""

    samples: list[float] = field(repr=False)

    @property
    def count(self) -> int:
        return len(self.samples)

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else math.nan

    @property
    def min(self) -> float:
        return min(self.samples) if self.samples else math.nan

    def as_dict(self) -> dict[str, float | int]:
        """Summary in microseconds for JSON."""
        return {
            "count": self.count,
            "p50_us": self.p50 * 1e6,
            "p99_us": self.p99 * 1e6,
            "mean_us": self.mean * 1e6,
            "min_us": self.min * 1e6,
        }


def time_calls(
    fn: Callable[[], object],
    *,
    max_runs: int,
    max_seconds: float,
    min_runs: int = 1,
    warmup: int = 0,
) -> Timing:
    """Time ``fn()`` call by call until ``max_runs`` samples or ``max_seconds`` measured."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    spent = 0.0
    clock = time.perf_counter
    while len(samples) < max_runs and (spent < max_seconds or len(samples) < min_runs):
        t0 = clock()
        fn()
        dt = clock() - t0
        samples.append(dt)
        spent += dt
    return Timing(samples)


def fmt_seconds(s: float | None) -> str:
    """Human-readable duration."""
    if s is None or math.isnan(s):
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A right-aligned plain-text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(wd) for c, wd in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Where the numbers came from."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for mod in ("numpy", "scipy"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = None
    return env


def write_result(name: str, data: dict[str, Any], *, elapsed_s: float | None = None) -> Path:
    """Write one benchmark's results to ``RESULTS_DIR/<name>.json`` and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    doc = {"benchmark": name, "environment": environment(), "elapsed_s": elapsed_s, "results": data}
    path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return path


def quick() -> bool:
    """True when a fast smoke run was asked for (``MBCAS_BENCH_QUICK=1``)."""
    return os.environ.get("MBCAS_BENCH_QUICK", "") not in ("", "0")


def run_standalone(main: Callable[[], dict[str, Any]], name: str) -> None:
    """Run one benchmark's ``main()`` and write its JSON, as ``run.py`` would."""
    t0 = time.perf_counter()
    data = main()
    path = write_result(name, data, elapsed_s=time.perf_counter() - t0)
    print(f"\nwrote {path}", file=sys.stderr)
