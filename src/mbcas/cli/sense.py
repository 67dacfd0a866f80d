"""``mbcas sense``: sample one cgroup twice and print its CPU signals and the bounds of its demand.

A debugging aid for the sensing layer: it uses the same reader, sampler and demand bounds as the
agent, on one cgroup given relative to the cgroup root::

    mbcas sense --cgroup kubepods.slice/kubepods-burstable.slice/... [--root /sys/fs/cgroup]
                [--interval 1] [-o json]

It prints ``usage_cores``, ``throttled_ratio``, ``psi_some``, ``psi_full`` and the demand's
``demand_lower_cores`` / ``demand_upper_cores`` with ``under_pressure`` (plus ``interval_s``,
``throttled_cores``, ``limit_cores`` and ``layout``): while the quota binds in most periods the
demand is unknown between the two bounds, and the upper one reads the pod's runnable threads;
with ``-o json`` one JSON object, ``null`` for unknown. A bad root or path exits non-zero with a
message on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

from mbcas.cgroups import (
    DEFAULT_ROOT,
    CgroupError,
    CgroupReader,
    ErrorKind,
    Sampler,
    SenseError,
    SignalDelta,
    check_relpath,
    signal_arrays,
)
from mbcas.cli.common import command
from mbcas.cli.errors import fail
from mbcas.demand import demand_bounds

__all__ = ["register", "run_sense", "sense_once"]

_KEY = "cgroup"


def register(subparsers: Any) -> None:
    """Add the ``sense`` sub-command to ``subparsers`` (from ``add_subparsers``)."""
    parser = command(
        subparsers,
        "sense",
        "sample one cgroup twice and print usage, throttling, PSI and demand",
        "Sample one cgroup twice, SECONDS apart, and print usage_cores, throttled_ratio, psi_some, "
        "psi_full and the demand's lower and upper bounds. On a hybrid layout the v2 files come from "
        "the cgroup2 mount (unified/) and the v1 files from the cpu/cpuacct controllers at the same "
        "relative path.",
    )
    parser.add_argument(
        "--cgroup", required=True, metavar="REL_PATH", help="cgroup path relative to the root"
    )
    parser.add_argument("--root", default=DEFAULT_ROOT, help=f"cgroup root (default {DEFAULT_ROOT})")
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="seconds between the reads"
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    parser.set_defaults(func=run_sense)


def _num(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return None
    return value


def sense_once(reader: CgroupReader, relpath: str, interval_s: float) -> dict[str, Any]:
    """Sample ``relpath`` twice, ``interval_s`` apart; return the report (raises ``CgroupError``)."""
    sampler = Sampler(reader)
    first = sampler.sample({_KEY: relpath})[_KEY]
    if isinstance(first, SenseError) and first.kind is not ErrorKind.BASELINE:
        raise CgroupError(first.kind, first.message)
    time.sleep(interval_s)
    second = sampler.sample({_KEY: relpath})[_KEY]
    if isinstance(second, SenseError):
        raise CgroupError(second.kind, second.message)
    assert isinstance(second, SignalDelta)
    results = {_KEY: second}
    sig = signal_arrays([_KEY], results)
    est = demand_bounds(sig.usage, sig.throttled_ratio, sig.throttled_cores, sig.psi_full)
    return {
        "cgroup": relpath or "/",
        "layout": reader.layout.kind.value,
        "interval_s": second.interval_s,
        "usage_cores": second.usage_cores,
        "throttled_ratio": second.throttled_ratio,
        "psi_some": second.psi_some,
        "psi_full": second.psi_full,
        "demand_lower_cores": _num(float(est.lower[0])),
        "demand_upper_cores": _num(float(est.upper[0])),
        "under_pressure": bool(est.pressured[0]),
        "throttled_cores": second.throttled_cores,
        "limit_cores": second.limit_cores,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def run_sense(args: argparse.Namespace) -> int:
    """Handler of ``mbcas sense``; returns the exit code."""
    if not (args.interval > 0 and math.isfinite(args.interval)):
        return fail("mbcas sense", "--interval must be a positive number of seconds")
    try:
        relpath = check_relpath(args.cgroup)
        reader = CgroupReader(args.root)
        if not reader.exists(relpath):
            why = f"no cgroup {relpath!r} under {reader.layout.base_dir} ({reader.layout.describe()})"
            return fail("mbcas sense", why, 1)
        report = sense_once(reader, relpath, args.interval)
    except CgroupError as exc:
        return fail("mbcas sense", exc, 1)
    if args.output == "json":
        print(json.dumps(report))
    else:
        width = max(len(k) for k in report)
        for key, value in report.items():
            text = "unlimited" if key == "limit_cores" and value is None else _fmt(value)
            print(f"{key:<{width}}  {text}")
    return 0
