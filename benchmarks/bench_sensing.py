"""Benchmark: one agent tick of sensing and demand estimation for N pods on a real file tree.

A tick is what the agent does per round before planning: read every pod's cgroup files
(:class:`~mbcas.cgroups.Sampler`), align the results into arrays (:func:`~mbcas.cgroups.signal_arrays`),
bound each pod's demand (:func:`~mbcas.demand.demand_bounds`) and fold its usage into the burst
envelope (:class:`~mbcas.demand.Envelope`). The pods live in a temporary directory laid out like a
node (systemd driver, Burstable pods) for the pure-v2 layout (3 files per pod) and the hybrid
layout of this machine (5 files per pod). Reported: p50 and p90 tick time for 10, 110 and 500
pods, time per pod, and the ratio of per-pod cost at 500 vs 10 pods (about 1 when the cost is
linear). Target: p50 < 5 ms per tick for 110 pods. When cgroups can be created, the same tick is
also timed on 110 real, empty cgroups of this machine (kernel-generated files), then removed.

Run: ``.venv/bin/python benchmarks/bench_sensing.py`` (or ``make bench``); JSON goes to
``benchmarks/results/bench_sensing.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mbcas.cgroups import (
    DEFAULT_ROOT,
    CgroupDriver,
    CgroupError,
    CgroupReader,
    Sampler,
    detect_layout,
    pod_relpath,
    signal_arrays,
)
from mbcas.core.qos import QoSClass
from mbcas.demand import Envelope, demand_bounds

__all__ = ["main", "run"]

POD_COUNTS = (10, 110, 500)
TICKS = 200
TARGET_MS_110 = 5.0
RESULTS = Path(__file__).resolve().parent / "results" / "bench_sensing.json"


def _build_tree(root: Path, layout: str, n: int) -> dict[str, str]:
    """A node-like tree with ``n`` Burstable pods; returns ``uid -> relpath``."""
    pods: dict[str, str] = {}
    if layout == "v2":
        root.mkdir(parents=True)
        (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        hierarchies = {"v2": root}
    else:
        for name in ("unified", "cpu", "cpuacct"):
            (root / name).mkdir(parents=True)
        (root / "unified" / "cgroup.controllers").write_text("\n")
        (root / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
        (root / "cpuacct" / "cpuacct.usage").write_text("0\n")
        hierarchies = {"v2": root / "unified", "cpu": root / "cpu", "cpuacct": root / "cpuacct"}
    for i in range(n):
        uid = str(uuid.UUID(int=i + 1))
        rel = pod_relpath(uid, QoSClass.BURSTABLE, CgroupDriver.SYSTEMD)
        pods[uid] = rel
        v2 = hierarchies["v2"] / rel
        v2.mkdir(parents=True)
        stat = f"usage_usec {1000 * i}\nuser_usec {500 * i}\nsystem_usec {500 * i}\nnice_usec 0\n"
        if layout == "v2":
            stat += f"nr_periods {10 * i}\nnr_throttled {i}\nthrottled_usec {100 * i}\n"
            (v2 / "cpu.max").write_text("50000 100000\n")
        (v2 / "cpu.stat").write_text(stat)
        (v2 / "cpu.pressure").write_text(
            f"some avg10=1.00 avg60=1.00 avg300=1.00 total={200 * i}\n"
            f"full avg10=0.50 avg60=0.50 avg300=0.50 total={100 * i}\n"
        )
        if layout == "hybrid":
            cpu = hierarchies["cpu"] / rel
            cpu.mkdir(parents=True)
            (cpu / "cpu.stat").write_text(
                f"nr_periods {10 * i}\nnr_throttled {i}\nthrottled_time {100_000 * i}\nnr_bursts 0\n"
            )
            (cpu / "cpu.cfs_quota_us").write_text("50000\n")
            (cpu / "cpu.cfs_period_us").write_text("100000\n")
            acct = hierarchies["cpuacct"] / rel
            acct.mkdir(parents=True)
            (acct / "cpuacct.usage").write_text(f"{1_000_000 * i}\n")
    return pods


def _bench(root: Path, pods: dict[str, str], ticks: int) -> list[float]:
    reader = CgroupReader(root, detect_layout(root))
    sampler = Sampler(reader, max_cores=1e9)  # the fake counters do not move with wall time
    envelope = Envelope()
    uids = list(pods)
    sampler.sample(pods)  # baselines
    times: list[float] = []
    for _ in range(ticks):
        t0 = time.perf_counter()
        results = sampler.sample(pods)
        sig = signal_arrays(uids, results)
        demand_bounds(sig.usage, sig.throttled_ratio, sig.throttled_cores, sig.psi_full)
        envelope.update(uids, sig.usage, time.monotonic())
        times.append(time.perf_counter() - t0)
    return times


def _real_kernel(n: int, ticks: int) -> dict[str, Any]:
    """The same tick on ``n`` real, empty cgroups of this machine (kernfs reads), if permitted."""
    try:
        layout = detect_layout(DEFAULT_ROOT)
    except CgroupError as exc:
        return {"skipped": str(exc)}
    hierarchies = sorted(
        {os.path.realpath(d) for d in (layout.v2_dir, layout.cpu_dir, layout.cpuacct_dir) if d}
    )
    prefix = f"mbcas-bench-{os.getpid()}"
    created: list[str] = []
    try:
        pods = {}
        for h in hierarchies:
            os.mkdir(os.path.join(h, prefix))
            created.append(os.path.join(h, prefix))
        for i in range(n):
            rel = f"{prefix}/pod{i}"
            for h in hierarchies:
                os.mkdir(os.path.join(h, rel))
                created.append(os.path.join(h, rel))
            pods[str(i)] = rel
        times = sorted(_bench(Path(DEFAULT_ROOT), pods, ticks))
        p50 = statistics.median(times) * 1e3
        return {
            "layout": layout.kind.value,
            "pods": n,
            "p50_ms": round(p50, 3),
            "p90_ms": round(times[int(0.9 * (len(times) - 1))] * 1e3, 3),
            "us_per_pod": round(p50 * 1e3 / n, 2),
        }
    except OSError as exc:
        return {"skipped": f"cannot create cgroups: {exc}"}
    finally:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def run(ticks: int = TICKS) -> dict[str, Any]:
    """Run the benchmark; return the results as a JSON-able dict."""
    out: dict[str, Any] = {"benchmark": "sensing", "ticks": ticks, "target_p50_ms_110_pods": TARGET_MS_110}
    with tempfile.TemporaryDirectory(prefix="mbcas-bench-sensing-") as tmp:
        for layout in ("v2", "hybrid"):
            rows = {}
            for n in POD_COUNTS:
                root = Path(tmp) / f"{layout}-{n}"
                pods = _build_tree(root, layout, n)
                times = _bench(root, pods, ticks if n <= 110 else max(ticks // 4, 20))
                times.sort()
                p50 = statistics.median(times) * 1e3
                rows[str(n)] = {
                    "p50_ms": round(p50, 3),
                    "p90_ms": round(times[int(0.9 * (len(times) - 1))] * 1e3, 3),
                    "us_per_pod": round(p50 * 1e3 / n, 2),
                }
            per_pod = [rows[str(n)]["us_per_pod"] for n in POD_COUNTS]
            out[layout] = {
                "pods": rows,
                "per_pod_cost_ratio_500_vs_10": round(per_pod[-1] / per_pod[0], 2),
                "meets_target_110": rows["110"]["p50_ms"] < TARGET_MS_110,
            }
    out["real_kernel_110"] = _real_kernel(110, ticks)
    return out


def main() -> dict[str, Any]:
    """Run, print a summary, write ``benchmarks/results/bench_sensing.json``; return the results."""
    results = run()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for layout in ("v2", "hybrid"):
        r = results[layout]
        cells = ", ".join(
            f"{n} pods p50 {v['p50_ms']:.2f} ms ({v['us_per_pod']:.1f} µs/pod)" for n, v in r["pods"].items()
        )
        print(f"sensing tick [{layout}]: {cells}; per-pod cost 500/10 = {r['per_pod_cost_ratio_500_vs_10']}")
    real = results["real_kernel_110"]
    if "skipped" in real:
        print(f"sensing tick [real kernel]: skipped: {real['skipped']}")
    else:
        print(f"sensing tick [real kernel, {real['layout']}]: 110 pods p50 {real['p50_ms']:.2f} ms")
    print(f"wrote {RESULTS}")
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
