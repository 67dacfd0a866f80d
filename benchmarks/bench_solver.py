"""Benchmark: the water-filling NSW solver against a generic convex solver (scipy SLSQP).

For n = 10, 110 (the kubelet's default max pods per node), 1,000 and 10,000 pods it draws a fixed
set of random contention instances (capacity = 70 % of the summed demand caps, so the solve is a
real water-filling, not the trivial "everyone gets the cap" case), times ``solve_nsw`` per call
and times scipy's SLSQP on the same instances with the analytic gradient. SLSQP's cost grows
roughly with n³ (dense quasi-Newton matrices), so its runs are capped per size by count and
measured time, and a size is skipped when the cubic extrapolation from the previous size says one
solve would take longer than ``SCIPY_MAX_SINGLE_S`` (60 s; override with the environment variable
``MBCAS_BENCH_SCIPY_MAX_S``); the report says which. The speed-up is the
ratio of the p50s where both were measured, and each SLSQP answer is compared with ours.

It checks the targets: p50 < 50 µs at n = 110, p50 < 5 ms at n = 10,000, >= 1000x faster than the
generic solver at n = 110.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from _common import fmt_seconds, format_table, quick, run_standalone, time_calls
from mbcas.market import nsw_objective, solve_nsw

__all__ = ["main"]

SIZES = (10, 110, 1_000, 10_000)
INSTANCES = 16
SEED = 20240611
SCIPY_MAX_SINGLE_S = 60.0
TARGETS = {"p50_n110_us": 50.0, "p50_n10000_ms": 5.0, "speedup_n110": 1000.0}


@dataclass(frozen=True)
class Instance:
    capacity: float
    weights: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def make_instances(n: int, count: int, rng: np.random.Generator) -> list[Instance]:
    """Contention instances in cores: requests as weights, demand caps, floors from requests."""
    out = []
    for _ in range(count):
        requests = rng.uniform(0.05, 2.0, n)
        caps = rng.uniform(0.05, 4.0, n)
        floors = np.minimum(0.02 + 0.2 * requests, caps)
        capacity = 0.7 * float(caps.sum())
        capacity = max(capacity, float(floors.sum()) * 1.01)
        out.append(Instance(capacity, requests, floors, caps))
    return out


def slsqp(inst: Instance) -> tuple[np.ndarray, bool, str]:
    """The same program, given to a general-purpose constrained optimiser."""
    w, lo, up, cap = inst.weights, inst.lower, inst.upper, inst.capacity
    x0 = np.clip(lo + (cap - lo.sum()) / len(w), lo, up)
    res = minimize(
        lambda x: -float(np.dot(w, np.log(x))),
        x0,
        jac=lambda x: -w / x,
        method="SLSQP",
        bounds=list(zip(lo, up, strict=True)),
        constraints=[{"type": "ineq", "fun": lambda x: cap - x.sum(), "jac": lambda x: -np.ones_like(x)}],
        options={"ftol": 1e-10, "maxiter": 1000},
    )
    return np.asarray(res.x), bool(res.success), str(res.message)


def cycle_calls(instances: list[Instance], fn: Any) -> Any:
    it = itertools.cycle(instances)

    def call() -> object:
        inst = next(it)
        return fn(inst)

    return call


def bench_size(n: int, rng: np.random.Generator, prev_scipy: tuple[int, float] | None) -> dict[str, Any]:
    fast = quick()
    instances = make_instances(n, INSTANCES, rng)
    ours = time_calls(
        cycle_calls(instances, lambda i: solve_nsw(i.capacity, i.weights, i.lower, i.upper)),
        max_runs=200 if fast else (3000 if n <= 1000 else 500),
        max_seconds=0.5 if fast else 3.0,
        warmup=20,
    )

    row: dict[str, Any] = {
        "n": n,
        "ours": ours.as_dict(),
    }

    # Generic solver, capped.
    max_runs = {10: 30, 110: 20, 1_000: 1}.get(n, 1)
    budget = 10.0
    if fast:
        max_runs, budget = (3, 2.0) if n <= 110 else (0, 0.0)
    projected = None
    if prev_scipy is not None:
        prev_n, prev_p50 = prev_scipy
        projected = prev_p50 * (n / prev_n) ** 3
    if max_runs == 0:
        row["scipy"] = None
        row["scipy_note"] = "skipped in --quick mode"
        return row
    max_single_s = float(os.environ.get("MBCAS_BENCH_SCIPY_MAX_S", SCIPY_MAX_SINGLE_S))
    if projected is not None and projected > max_single_s:
        row["scipy"] = None
        row["scipy_projected_s"] = projected
        row["scipy_note"] = (
            f"not run: ~{fmt_seconds(projected)}/solve projected (n³ from n={prev_scipy[0]}) "
            f"> {max_single_s:.0f} s cap"
        )
        return row

    results: list[tuple[Instance, np.ndarray, bool, str]] = []

    def run_scipy(inst: Instance) -> None:
        x, ok, msg = slsqp(inst)
        results.append((inst, x, ok, msg))

    generic = time_calls(cycle_calls(instances, run_scipy), max_runs=max_runs, max_seconds=budget)
    gaps, dists, failures = [], [], []
    for inst, x, ok, msg in results:
        mine = solve_nsw(inst.capacity, inst.weights, inst.lower, inst.upper)
        gaps.append(nsw_objective(mine, inst.weights) - nsw_objective(x, inst.weights))
        dists.append(float(np.max(np.abs(mine - x))) / inst.capacity)
        if not ok:
            failures.append(msg)
    row["scipy"] = generic.as_dict()
    row["scipy_converged"] = f"{len(results) - len(failures)}/{len(results)}"
    row["scipy_failures"] = sorted(set(failures))
    row["objective_gain_vs_scipy_max"] = max(gaps)
    row["objective_gain_vs_scipy_min"] = min(gaps)
    row["max_alloc_diff_rel_capacity"] = max(dists)
    row["speedup_p50"] = generic.p50 / ours.p50
    capped = []
    if generic.count >= max_runs:
        capped.append(f"{max_runs} run(s) max")
    if sum(generic.samples) >= budget:
        capped.append(f"{budget:.0f} s budget")
    row["scipy_note"] = f"capped by {' and '.join(capped)}" if capped else ""
    return row


def _us(d: dict[str, Any] | None, key: str) -> str:
    return "—" if d is None else fmt_seconds(d[key] * 1e-6)


def main() -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    slsqp(make_instances(10, 1, np.random.default_rng(0))[0])  # warm scipy up, untimed
    rows: list[dict[str, Any]] = []
    prev: tuple[int, float] | None = None
    for n in SIZES:
        row = bench_size(n, rng, prev)
        rows.append(row)
        if row.get("scipy"):
            prev = (n, row["scipy"]["p50_us"] * 1e-6)

    print("solve_nsw (exact water-filling) vs scipy SLSQP on the same instances, time per solve")
    print(
        format_table(
            ["n", "ours p50", "ours p99", "runs", "SLSQP p50", "SLSQP p99", "runs", "speed-up", "SLSQP note"],
            [
                [
                    r["n"],
                    _us(r["ours"], "p50_us"),
                    _us(r["ours"], "p99_us"),
                    r["ours"]["count"],
                    _us(r["scipy"], "p50_us"),
                    _us(r["scipy"], "p99_us"),
                    r["scipy"]["count"] if r["scipy"] else 0,
                    f"{r['speedup_p50']:,.0f}x" if "speedup_p50" in r else "—",
                    r["scipy_note"],
                ]
                for r in rows
            ],
        )
    )
    print()
    print("agreement with SLSQP (ours minus SLSQP objective; max |x_ours - x_SLSQP| / capacity):")
    for r in rows:
        if r.get("scipy"):
            print(
                f"  n={r['n']}: objective gain {r['objective_gain_vs_scipy_min']:+.2e} .. "
                f"{r['objective_gain_vs_scipy_max']:+.2e}, "
                f"alloc diff {r['max_alloc_diff_rel_capacity']:.1e}, "
                f"SLSQP converged {r['scipy_converged']}"
                + (f" ({'; '.join(r['scipy_failures'])})" if r["scipy_failures"] else "")
            )
    print()
    by_n = {r["n"]: r for r in rows}
    checks = {
        "p50_n110_under_50us": by_n[110]["ours"]["p50_us"] < TARGETS["p50_n110_us"],
        "p50_n10000_under_5ms": by_n[10_000]["ours"]["p50_us"] < TARGETS["p50_n10000_ms"] * 1000,
        "speedup_n110_at_least_1000x": (
            by_n[110].get("speedup_p50", 0.0) >= TARGETS["speedup_n110"] if by_n[110].get("scipy") else None
        ),
    }
    print()
    for name, ok in checks.items():
        print(f"target {name}: {'not measured' if ok is None else ('met' if ok else 'MISSED')}")
    return {
        "sizes": rows,
        "targets": TARGETS,
        "checks": checks,
        "instances_per_size": INSTANCES,
        "seed": SEED,
    }


if __name__ == "__main__":
    run_standalone(main, "solver")
