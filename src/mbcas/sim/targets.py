"""The evaluation targets, checked against measured metrics (never tuned to pass).

Which targets apply depends on the scenario's tags:

``contention``  MBCAS vs static limits (= requests): at least 80 % less ``throttled_share`` at
                equal or higher ``utilization``; MBCAS's ``jain`` >= 0.95.
``spike``       MBCAS's ``reaction_time_s`` (median over spikes) <= 2 s at 1 s ticks, and the
                HPA-like policy's for comparison (expected: tens of seconds).
``steady``      MBCAS resizes < 1 per pod per 10 minutes (``resizes_per_pod_hour`` < 6) and
                ``api_writes_per_pod_minute`` <= 0.2 after the warm-up.

Each check is a dict ``{"target", "measured", "passed"}`` (``passed`` is ``None`` when the
measurement is undefined), so the report can say plainly which targets were missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["evaluate_targets"]


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def evaluate_targets(tags: Sequence[str], metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The target checks that apply to ``tags`` given per-policy ``metrics`` (needs ``mbcas``)."""
    out: list[dict[str, Any]] = []
    m = metrics.get("mbcas")
    if m is None:
        return out
    if "contention" in tags and "static" in metrics:
        s = metrics["static"]
        base = s["throttled_share"]
        reduction = 1.0 - m["throttled_share"] / base if base > 0 else None
        out.append(
            {
                "target": "throttled time vs static limits: >= 80 % less",
                "measured": f"{_fmt(reduction and reduction * 100, '.1f')} % less "
                f"({m['throttled_share']:.3f} vs {base:.3f})",
                "passed": None if reduction is None else reduction >= 0.8,
            }
        )
        out.append(
            {
                "target": "utilisation vs static limits: equal or higher",
                "measured": f"{m['utilization']:.3f} vs {s['utilization']:.3f}",
                "passed": m["utilization"] >= s["utilization"] - 1e-9,
            }
        )
        out.append(
            {
                "target": "Jain fairness >= 0.95",
                "measured": _fmt(m["jain"]),
                "passed": None if m["jain"] is None else m["jain"] >= 0.95,
            }
        )
    if "spike" in tags:
        r = m["reaction_time_s"]
        hpa = metrics.get("hpa", {}).get("reaction_time_s")
        out.append(
            {
                "target": "reaction to a spike: limit covers 90 % of new demand within 2 s (p50)",
                "measured": f"{_fmt(r, '.0f')} s (HPA-like: {_fmt(hpa, '.0f')} s)",
                "passed": None if r is None else r <= 2.0,
            }
        )
    if "steady" in tags:
        rate = m["resizes_per_pod_hour"]
        out.append(
            {
                "target": "stability: < 1 resize per pod per 10 min (< 6 per pod-hour)",
                "measured": f"{rate:.2f} per pod-hour",
                "passed": rate < 6.0,
            }
        )
        writes = m["api_writes_per_pod_minute"]
        out.append(
            {
                "target": "API writes <= 0.2 per pod per minute at steady state",
                "measured": f"{writes:.3f} per pod-minute",
                "passed": writes <= 0.2,
            }
        )
    return out
