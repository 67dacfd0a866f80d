"""The evaluation targets, checked against measured metrics (never tuned to pass).

Which targets apply depends on the scenario's tags:

``contention``  MBCAS vs static limits (= requests): at least 80 % less ``throttled_share`` at
                equal or higher ``utilization``; MBCAS's ``jain`` >= 0.95.
``spike``       MBCAS's ``reaction_time_s`` (median over spikes) <= 2 s at 1 s ticks, and the
                HPA-like policy's for comparison (expected: tens of seconds).
``steady``      MBCAS resizes < 1 per pod per 10 minutes (``resizes_per_pod_hour`` < 6) and
                ``api_writes_per_pod_minute`` <= 0.2 after the warm-up.

Each check is a dict ``{"target", "measured", "passed", "why"}`` (``passed`` is ``None`` when
the measurement is undefined; ``why`` is a measured explanation when the target is missed, or
``None``), so the report can say plainly which targets were missed and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["evaluate_targets"]


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def evaluate_targets(
    tags: Sequence[str], metrics: dict[str, dict[str, Any]], min_stall_share: float = 0.0
) -> list[dict[str, Any]]:
    """The target checks that apply to ``tags`` given per-policy ``metrics`` (needs ``mbcas``).

    ``min_stall_share`` is the scenario's least reachable unserved share (demand above capacity),
    used to explain a missed throttling target.
    """
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
                "why": _why_throttled(m, s, metrics.get("static2x"), min_stall_share),
            }
        )
        out.append(
            {
                "target": "utilisation vs static limits: equal or higher",
                "measured": f"{m['utilization']:.3f} vs {s['utilization']:.3f}",
                "passed": m["utilization"] >= s["utilization"] - 1e-9,
                "why": None,
            }
        )
        out.append(
            {
                "target": "Jain fairness >= 0.95",
                "measured": _fmt(m["jain"]),
                "passed": None if m["jain"] is None else m["jain"] >= 0.95,
                "why": (
                    "each pod's floor is its request, so pods using less than their request keep CPU "
                    "that their max-min fair share would give to the pods that want more"
                ),
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
                "why": "some spikes were never covered while they lasted" if r is None else None,
            }
        )
    if "steady" in tags:
        rate = m["resizes_per_pod_hour"]
        out.append(
            {
                "target": "stability: < 1 resize per pod per 10 min (< 6 per pod-hour)",
                "measured": f"{rate:.2f} per pod-hour",
                "passed": rate < 6.0,
                "why": (
                    "noise around a demand crosses the planner's pressure and deadband thresholds "
                    "now and then; each raise is paid for by reclaiming from another pod"
                ),
            }
        )
        writes = m["api_writes_per_pod_minute"]
        out.append(
            {
                "target": "API writes <= 0.2 per pod per minute at steady state",
                "measured": f"{writes:.3f} per pod-minute",
                "passed": writes <= 0.2,
                "why": (
                    "every changed decision costs one PodAllocation write and usually one resize; "
                    "decisions the pod already carries (within the controller's deadband) are "
                    "never rewritten"
                ),
            }
        )
    for check in out:
        if check["passed"] is not False:
            check["why"] = None
    return out


def _why_throttled(
    m: dict[str, Any], s: dict[str, Any], s2: dict[str, Any] | None, min_stall: float
) -> str | None:
    base = s["throttled_share"]
    if base <= 0:
        return None
    best = max(0.0, 1.0 - min_stall / base)
    text = (
        f"demand above capacity alone is {min_stall:.3f} of all demand; limits that add up to at most "
        f"the capacity must withhold at least that, so no such policy can cut throttling by more than "
        f"{best * 100:.0f} % here; and MBCAS left {1 - m['utilization']:.1%} of the node's CPU unused "
        f"(held in limits of pods that used less than them)"
    )
    if s2 is not None:
        text += (
            f" (static2x's overcommitted limits let CFS weights share the contended CPU: throttled "
            f"{s2['throttled_share']:.3f}, utilisation {s2['utilization']:.3f})"
        )
    return text
