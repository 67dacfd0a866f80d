"""Presenting results: the terminal table, ``results.json`` and the Markdown report.

:func:`format_table` renders the per-policy metrics as a fixed-width text table (also embedded in
the report); :func:`write_results` writes ``results.json``; :func:`write_report` writes
``report.md`` with the table, the target checks, the metric definitions in short and the plots
(:mod:`mbcas.sim.plots`). Numbers are printed from the same dict that goes to JSON, so the report
and the JSON never disagree.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["format_reaction", "format_table", "write_report", "write_results"]

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("utilization", "util", ".3f"),
    ("throttled_share", "throttled", ".3f"),
    ("stall_share", "stall", ".3f"),
    ("gap_closure", "gap closure", ".2f"),
    ("resizes_per_pod_hour", "resizes/pod-h", ".1f"),
    ("api_writes_per_pod_minute", "writes/pod-min", ".3f"),
    ("reaction_time_s", "reaction p50", ""),
    ("jain", "jain", ".3f"),
    ("nsw", "nsw", ".3f"),
    ("peak_allocation_ratio", "peak alloc", ".2f"),
)


def format_reaction(m: dict[str, Any]) -> str:
    """The reaction time as shown in tables: seconds, ``never (k/n)`` or ``-`` without spikes."""
    times = m.get("reaction_times_s") or []
    if not times:
        return "-"
    value = m.get("reaction_time_s")
    missed = int(m.get("reaction_missed", 0))
    if value is None:
        return f"never ({missed}/{len(times)})"
    text = f"{value:.0f} s"
    return f"{text} ({missed}/{len(times)} missed)" if missed else text


def _cell(m: dict[str, Any], key: str, spec: str) -> str:
    if key == "reaction_time_s":
        return format_reaction(m)
    value = m.get(key)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def format_table(results: dict[str, Any], markdown: bool = False) -> str:
    """The per-policy metrics table (plain fixed-width text, or a Markdown table)."""
    headers = ["policy"] + [title for _, title, _ in _COLUMNS]
    rows = [
        [name] + [_cell(m, key, spec) for key, _, spec in _COLUMNS] for name, m in results["policies"].items()
    ]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * len(_COLUMNS)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*headers)] + [fmt.format(*r) for r in rows])


def write_results(results: dict[str, Any], path: Path) -> Path:
    """Write ``results`` as indented JSON (no NaN/inf: they are ``null`` already)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


_DEFINITIONS = """\
- **util**: Σ usage / (ticks × capacity).
- **throttled** (`throttled_share`): Σ CPU withheld by the CPU limit (quota) / Σ demand.
- **stall** (`stall_share`): Σ (demand − usage) / Σ demand: unserved for any reason (PSI *some*-like).
- **gap closure** (`gap_closure`): (static stall − stall) / (static stall − least reachable stall):
  the share of the gap between static limits and no limits closed (`-` where that gap is < 0.02).
- **resizes/pod-h**: limit changes per pod per hour (HPA-like: changes of the service's ready capacity).
- **writes/pod-min** (`api_writes_per_pod_minute`): API writes (resizes + MBCAS's PodAllocation writes)
  per pod per minute after the warm-up.
- **reaction p50** (`reaction_time_s`): median over demand spikes of the time until the pod's limit
  covers 90 % of the new demand (`never (k/n)`: k of n spikes never covered while they lasted).
- **jain**: mean over ticks of Jain's index of usage / fair share, where the fair share is the
  request-weighted max-min share of the node given demand.
- **nsw**: mean over ticks of Σ ŵ·log(usage) with ŵ = request / Σ requests (higher is better).
- **peak alloc** (`peak_allocation_ratio`): the largest Σ limits / capacity of a node at any tick.
- **unlimited** is a reference row (every limit = the node's capacity), not a baseline: what no
  limits at all would give. **cpuburst** models Koordinator's CPU Burst `auto`; its quota changes
  are cgroup writes, not API writes.

Full definitions: `docs/evaluation.md`."""


def write_report(
    results: dict[str, Any],
    out_dir: Path,
    plots: list[Path],
    *,
    command: str = "",
    notes: list[str] | None = None,
) -> Path:
    """Write ``out_dir/report.md`` embedding ``plots`` (paths inside ``out_dir``)."""
    info = results.get("scenario_info", {})
    lines = [
        f"# MBCAS simulation: `{results['scenario']}` (seed {results['seed']})",
        "",
        info.get("description", ""),
        "",
        f"Nodes: {', '.join(f'{k} ({v:g} cores)' for k, v in info.get('nodes', {}).items())}; "
        f"{info.get('pods', '?')} pods; requests {info.get('requests_cores', 0):.2f} cores; "
        f"mean demand {info.get('mean_demand_cores', 0):.2f} cores; "
        f"{info.get('duration_s', 0):g} s at {info.get('tick_s', 1):g} s ticks. "
        f"Least stall share any policy can reach (demand above capacity): "
        f"{info.get('min_stall_share', 0):.3f}.",
        "",
    ]
    if command:
        lines += ["Reproduce:", "", "```", command, "```", ""]
    lines += ["## Results", "", format_table(results, markdown=True), "", _DEFINITIONS, ""]
    targets = results.get("targets") or []
    if targets:
        lines += ["## Targets", "", "| target | measured | result |", "|---|---|---|"]
        for t in targets:
            verdict = {True: "met", False: "**missed**", None: "undefined"}[t["passed"]]
            lines.append(f"| {t['target']} | {t['measured']} | {verdict} |")
        lines.append("")
        whys = [t for t in targets if t.get("why")]
        if whys:
            lines += ["Why targets were missed (measured, not tuned away):", ""]
            lines += [f"- *{t['target']}*: {t['why']}." for t in whys]
            lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    if plots:
        lines += ["## Plots", ""]
        for p in plots:
            lines += [f"![{p.stem}]({p.name})", ""]
    path = out_dir / "report.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
