"""The experiment's report: a table of every run, MBCAS against static, and the plots.

:func:`format_runs` renders every run as one Markdown table row; :func:`compare` states, per
scenario, MBCAS against static limits next to the targets (gap closure >= 0.9 under contention,
>= 0.8 otherwise, from the kernel's usage; reaction <= 2 s; API writes per pod-minute) and the
kernel's throttled time; :func:`gap_closure` is the share of the static-to-ideal gap in unserved demand a run
closed; :func:`write_outputs` writes
``results.json``, ``report.md`` and, when matplotlib is installed, one plot per scenario of each
pod's applied limit and usage over the window.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mbcas.experiment.scenarios import EXPERIMENTS

__all__ = ["compare", "format_runs", "gap_closure", "write_outputs"]

CLOSURE_TARGETS = (0.9, 0.8)
"""Gap closure wanted (issue 16): under contention (a scenario whose demand exceeds the node, so
that even no limits leave some unserved), else."""


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


def gap_closure(result: dict[str, Any], run: dict[str, Any]) -> float | None:
    """``(static unserved − run's) / (static unserved − ideal)`` against the static run of the same
    scenario, as the simulator's ``gap_closure`` with the kernel's usage; ``None`` without a static
    run or where that gap is < 0.02."""
    static = next(
        (r for r in result["runs"] if r["scenario"] == run["scenario"] and r["mode"] == "static"), None
    )
    ideal = run.get("ideal_unserved_share")
    if static is None or ideal is None or static["unserved_share"] - ideal < 0.02:
        return None
    return float((static["unserved_share"] - run["unserved_share"]) / (static["unserved_share"] - ideal))


def format_runs(result: dict[str, Any]) -> str:
    """A Markdown table of every run and, per scenario, MBCAS against static."""
    lines = [
        "| scenario | mode | util | throttled s | PSI full s | unserved | ideal | gap closure | reaction s "
        "| first raise s | resizes | PA writes | writes/pod-min |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['scenario']} | {r['mode']} | {r['utilization']:.3f} | {_fmt(r['throttled_s'], '.1f')} | "
            f"{_fmt(r['psi_full_s'], '.1f')} | {r['unserved_share']:.3f} | "
            f"{_fmt(r.get('ideal_unserved_share'), '.3f')} | {_fmt(gap_closure(result, r), '.2f')} | "
            f"{_fmt(r['reaction_time_s'], '.1f')} | {_fmt(r.get('first_response_s'), '.1f')} | "
            f"{r['resizes']} | {r['podallocation_writes']} | {r['api_writes_per_pod_minute']:.2f} |"
        )
    return "\n".join(lines)


def compare(result: dict[str, Any]) -> list[str]:
    """Sentences comparing MBCAS with static limits per scenario, against the targets."""
    out = []
    by = {(r["scenario"], r["mode"]): r for r in result["runs"]}
    for name in EXPERIMENTS:
        s, m = by.get((name, "static")), by.get((name, "mbcas"))
        if not s or not m:
            continue
        closure = gap_closure(result, m)
        if closure is not None:
            contended = m["ideal_unserved_share"] > 0
            need = CLOSURE_TARGETS[0] if contended else CLOSURE_TARGETS[1]
            kind = "under contention" if contended else "without contention"
            verdict = "met" if closure >= need else "missed"
            out.append(
                f"{name}: MBCAS left {m['unserved_share']:.3f} of the demand unserved vs "
                f"{s['unserved_share']:.3f} static and {m['ideal_unserved_share']:.3f} at best: gap closure "
                f"{closure:.2f} (target >= {need} {kind}: "
                f"{verdict}); utilisation {m['utilization']:.3f} vs {s['utilization']:.3f}."
            )
        if s["throttled_s"] and m["throttled_s"] is not None:
            cut = 1.0 - m["throttled_s"] / s["throttled_s"]
            out.append(
                f"{name}: kernel throttled time {m['throttled_s']:.1f} s vs {s['throttled_s']:.1f} s static "
                f"({cut * 100:.0f} % less; wall time of throttled runqueues, not CPU withheld)."
            )
        if m["reaction_time_s"] is not None or name == "spike":
            r = m["reaction_time_s"]
            out.append(
                f"{name}: reaction from demand change to applied limit: "
                f"{'never' if r is None else f'{r:.1f} s'} (target <= 2 s p50 at a 1 s tick; one spike)."
            )
        out.append(
            f"{name}: MBCAS API writes {m['api_writes_per_pod_minute']:.2f} per pod-minute over the window "
            f"(resizes + PodAllocation writes; the <= 0.2 target is for steady state)."
        )
    return out


def write_outputs(result: dict[str, Any], out: Path, command: str) -> None:
    """``results.json``, ``report.md`` and one plot per scenario (when matplotlib is there)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    plots = _plots(result, out)
    setup = (
        "Real etcd + kube-apiserver, the node emulator running each pod as a CPU-burning process in its "
        f"own cgroup with its limit as a CFS quota, an emulated node of {result['node_cpu']:g} core(s) "
        "enforced as a quota on its kubepods.slice."
    )
    if result.get("node") == "real":
        setup = (
            "Real etcd + kube-apiserver + scheduler and a real node (kubelet + containerd + runc): each pod "
            "runs the burner image, the kubelet writes every quota, and the node's pods are capped at "
            f"{result['node_cpu']:g} core(s) by a CFS quota on the kubelet's kubepods cgroup."
        )
    lines = [
        "# MBCAS real-kernel experiment",
        "",
        setup + " Definitions: `docs/evaluation.md`.",
        "",
        "```",
        command,
        "```",
        "",
        format_runs(result),
        "",
    ]
    lines += [f"- {c}" for c in compare(result)]
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    for p in plots:
        lines += ["", f"![{p.stem}]({p.name})"]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _plots(result: dict[str, Any], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for name in EXPERIMENTS:
        runs = [r for r in result["runs"] if r["scenario"] == name]
        if not runs:
            continue
        fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.2), sharey=True, squeeze=False)
        for ax, r in zip(axes[0], runs, strict=True):
            t = [row["t"] for row in r["series"]]
            pods = [k for k in r["series"][0] if k != "t"] if r["series"] else []
            for i, pod in enumerate(pods):
                color = f"C{i}"
                ax.plot(t, [row[pod]["usage"] for row in r["series"]], color=color, lw=0.8, alpha=0.6)
                ax.step(
                    t,
                    [row[pod]["limit"] or 0 for row in r["series"]],
                    color=color,
                    lw=1.4,
                    label=pod,
                    where="post",
                )
            ax.set_title(f"{name} / {r['mode']}", fontsize=9)
            ax.set_xlabel("s", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0][0].set_ylabel("cores: limit (thick), usage (thin)", fontsize=8)
        axes[0][0].legend(fontsize=7, frameon=False)
        fig.tight_layout()
        path = out / f"experiment-{name}.png"
        fig.savefig(path, dpi=72)
        plt.close(fig)
        written.append(path)
    return written
