"""The node agent's tick (sense + plan, no API I/O) and its resident memory at 10, 110 and 500 pods.

Each size runs in a fresh subprocess (so RSS is the agent's alone): it builds a node-like cgroup v2
tree of Burstable pods in a temp dir, a static pod list, and a :class:`mbcas.agent.loop.NodeAgent`
with no API client, then runs ticks. Between ticks (outside the timing) every pod's ``cpu.stat``
and ``cpu.pressure`` counters advance, with a third of the pods throttled, so each tick reads,
estimates, solves and decides for real. Reported per size: the tick's CPU time (``process_time``)
p50/p99, its wall time p50, and the process RSS after the ticks (``VmRSS``), without and with the
Kubernetes client library loaded (a live agent has it; the RSS budget is judged with it).

The pod files are kept open and re-read with ``pread``, as the agent does on a real cgroup
filesystem (:mod:`mbcas.cgroups.files`). The baseline, measured in the same run at 110 pods, opens
and closes every file each tick (what the agent does on any other tree); the ratio of the two
p50s is printed.

Budget (issue 16): with 110 pods, p50 tick < 5 ms of CPU and RSS not above 64 MiB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import format_table, percentile, quick, run_standalone

__all__ = ["main"]

POD_COUNTS = (10, 110, 500)
TICKS = 300
BUDGET_CPU_MS_110 = 5.0
BUDGET_RSS_MIB_110 = 64.0


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _child(n: int, ticks: int, keep_open: bool = True) -> dict[str, Any]:
    import uuid

    from bench_sensing import _build_tree
    from mbcas.agent.config import AgentConfig
    from mbcas.agent.loop import NodeAgent
    from mbcas.cgroups.reader import CgroupReader
    from mbcas.core.qos import QoSClass
    from mbcas.kube.pods import PodInfo

    class Source:
        synced = True

        def __init__(self, pods: dict[str, PodInfo]) -> None:
            self._pods = pods

        def pods(self) -> dict[str, PodInfo]:
            return dict(self._pods)

    with tempfile.TemporaryDirectory(prefix="mbcas-bench-agent-") as tmp:
        root = Path(tmp) / "cg"
        paths = _build_tree(root, "v2", n)
        pods = {
            uid: PodInfo(
                namespace=f"ns{i % 7}",
                name=f"pod-{i}",
                uid=uid,
                qos=QoSClass.BURSTABLE,
                request_mcpu=100,
                limit_mcpu=500,
                labels={"app": f"a{i % 5}"},
                resource_version="1",
                managed_limits_mcpu=(500, 500),
                split_floors_mcpu=(100, 100),
            )
            for i, uid in enumerate(paths)
        }
        assert all(uuid.UUID(u) for u in pods)
        config = AgentConfig(node="bench", allocatable_cpu=str(max(4, n // 10)), config_map=None)
        clock = [0.0]
        agent = NodeAgent(
            config,
            node="bench",
            pods=Source(pods),
            # The tree's files are rewritten in place between ticks, so kept-open files see them.
            reader=CgroupReader(root, clock_ns=lambda: round(clock[0] * 1e9), keep_open=keep_open),
            clock=lambda: clock[0],
            mono=lambda: clock[0],
        )
        files = [(root / rel) for rel in paths.values()]
        usage = [0] * n
        cpu_ms: list[float] = []
        wall_ms: list[float] = []
        for k in range(ticks):
            for i, d in enumerate(files):
                throttled = i % 3 == 0
                usage[i] += 500_000 if throttled else 100_000 + (k * 7919 + i * 104729) % 50_000
                (d / "cpu.stat").write_text(
                    f"usage_usec {usage[i]}\nuser_usec 0\nsystem_usec 0\n"
                    f"nr_periods {10 * k}\nnr_throttled {10 * k if throttled else 0}\n"
                    f"throttled_usec {400_000 * k if throttled else 0}\n"
                )
                (d / "cpu.pressure").write_text(
                    f"some avg10=0 avg60=0 avg300=0 total={(300_000 if throttled else 1000) * k}\n"
                    f"full avg10=0 avg60=0 avg300=0 total={(250_000 if throttled else 0) * k}\n"
                )
            clock[0] = float(k)
            c0, w0 = time.process_time(), time.perf_counter()
            plan = agent.tick()
            cpu_ms.append((time.process_time() - c0) * 1000)
            wall_ms.append((time.perf_counter() - w0) * 1000)
            assert plan is not None
        warm = cpu_ms[5:]
        return {
            "pods": n,
            "ticks": ticks,
            "keep_open": keep_open,
            "tick_cpu_ms_p50": percentile(warm, 50),
            "tick_cpu_ms_p99": percentile(warm, 99),
            "tick_wall_ms_p50": percentile(wall_ms[5:], 50),
            "managed": int(plan.managed.sum()),
            "rss_mib": _rss_mib(),
            "rss_with_client_mib": _rss_with_client(),
        }


def _rss_with_client() -> float:
    """RSS once the Kubernetes client is loaded too, as in a live agent (its generated models
    alone are ~8 MiB); the budget is judged on this one."""
    import kubernetes.client  # noqa: F401

    return _rss_mib()


def _run(n: int, ticks: int, keep_open: bool = True) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(n), str(ticks), "open" if keep_open else "reopen"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> dict[str, Any]:
    ticks = 40 if quick() else TICKS
    results = [_run(n, ticks) for n in POD_COUNTS]
    baseline = _run(110, ticks, keep_open=False)
    rows = [
        (
            r["pods"],
            f"{r['tick_cpu_ms_p50']:.2f}",
            f"{r['tick_cpu_ms_p99']:.2f}",
            f"{r['tick_wall_ms_p50']:.2f}",
            f"{r['rss_mib']:.1f}",
            f"{r['rss_with_client_mib']:.1f}",
        )
        for r in results
    ]
    print("agent tick (sense + plan, no API I/O), one fresh process per size")
    print(
        format_table(
            ["pods", "CPU p50 ms", "CPU p99 ms", "wall p50 ms", "RSS MiB", "RSS + k8s client MiB"], rows
        )
    )
    at110 = next(r for r in results if r["pods"] == 110)
    ratio = at110["tick_cpu_ms_p50"] / baseline["tick_cpu_ms_p50"]
    print(
        f"baseline at 110 pods (every file opened and closed each tick): CPU p50 "
        f"{baseline['tick_cpu_ms_p50']:.2f} ms; files kept open / baseline = {ratio:.2f}"
    )
    ok = at110["tick_cpu_ms_p50"] < BUDGET_CPU_MS_110 and at110["rss_with_client_mib"] <= BUDGET_RSS_MIB_110
    print(
        f"budget at 110 pods: p50 CPU < {BUDGET_CPU_MS_110} ms and RSS <= {BUDGET_RSS_MIB_110} MiB: "
        f"{'met' if ok else 'NOT met'}"
    )
    return {
        "sizes": results,
        "baseline_110": baseline,
        "ratio_110_vs_baseline": round(ratio, 3),
        "budget_met_110": ok,
    }


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(_child(int(sys.argv[2]), int(sys.argv[3]), keep_open=sys.argv[4] == "open")))
    else:
        run_standalone(main, "agent")
