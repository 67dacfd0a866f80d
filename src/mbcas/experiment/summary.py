"""The measurements of one run, from its kernel deltas and the API's event streams.

:func:`summarise` turns what a run recorded into its JSON-ready result: utilisation, throttled and
PSI ``full`` time (kernel), the share of the configured demand left unserved, the reaction time
from a demand change to the first kubelet-applied limit that covers it (:func:`applied_limit`
reads that limit from a pod's ``status.containerStatuses[].resources``), resizes
(:func:`generation_bumps`: pod ``metadata.generation`` increments) and PodAllocation writes, per
pod per minute. Everything here is pure: the unit tests feed it hand-made runs.
"""

from __future__ import annotations

from typing import Any

from mbcas.experiment.measure import KernelDelta
from mbcas.experiment.scenarios import ExperimentPod, ExperimentScenario

__all__ = ["applied_limit", "generation_bumps", "latest_limits", "summarise"]


def _cpu_cores(quantity: str | None) -> float | None:
    if not quantity:
        return None
    if quantity.endswith("m"):
        return int(quantity[:-1]) / 1000.0
    return float(quantity)


def applied_limit(pod: dict[str, Any]) -> float | None:
    """The CPU limit the (emulated) kubelet reports as applied: ``status.containerStatuses[].resources``."""
    for cs in pod.get("status", {}).get("containerStatuses", []) or []:
        res = cs.get("resources") or {}
        return _cpu_cores((res.get("limits") or {}).get("cpu"))
    return None


def generation_bumps(events: list[tuple[float, str, dict[str, Any]]], t0: float, t1: float) -> dict[str, int]:
    """Per pod, how often ``metadata.generation`` rose inside ``[t0, t1]`` (resizes)."""
    last: dict[str, int] = {}
    bumps: dict[str, int] = {}
    for t, _, obj in events:
        name = obj["metadata"]["name"]
        gen = int(obj["metadata"].get("generation", 0))
        if name in last and gen > last[name] and t0 <= t <= t1:
            bumps[name] = bumps.get(name, 0) + 1
        last[name] = max(gen, last.get(name, 0))
    return bumps


def latest_limits(events: list[tuple[float, str, dict[str, Any]]]) -> dict[str, float | None]:
    """Each pod's applied limit as reported by its latest event in ``events``."""
    out: dict[str, float | None] = {}
    for _, _, obj in events:
        out[obj["metadata"]["name"]] = applied_limit(obj)
    return out


def summarise(
    scenario: ExperimentScenario,
    mode: str,
    *,
    window: float,
    deltas: dict[str, KernelDelta],
    pod_events: list[tuple[float, str, dict[str, Any]]],
    pa_events: list[tuple[float, str, dict[str, Any]]],
    start: float,
    end: float,
    changed_at: float | None,
    changed_pod: ExperimentPod | None,
    node_cpu: float,
    series: list[dict[str, Any]],
    quota_file: str,
) -> dict[str, Any]:
    """The JSON-ready measurements of one run from its kernel deltas and API event streams.

    ``unserved_share`` compares usage with the configured demand (integrated over ``series``),
    ``ideal_unserved_share`` is the demand above ``node_cpu`` over the same (no limits can serve it);
    ``reaction_time_s`` is the time from ``changed_at`` to the first pod event reporting an applied
    limit >= 90 % of the new demand (0 if the initial limit already covered it, ``None`` if never);
    ``first_response_s`` the time to the first raise of the applied limit.
    """
    n = len(scenario.pods)
    minutes = window / 60.0
    usage = sum(d.usage_s for d in deltas.values())
    throttled = [d.throttled_s for d in deltas.values()]
    full = [d.psi_full_s for d in deltas.values()]
    # Configured demand (ground truth we set) integrated over the window, from the series' timing.
    demand_s = sum(
        sum(scenario.demand_at(p, float(r["t"])) for r in series) * (window / max(1, len(series)))
        for p in scenario.pods
    )
    unserved = max(0.0, demand_s - usage)
    # The least any limits can leave unserved: the demand above the node's CPU, tick by tick.
    excess_s = sum(
        max(0.0, sum(scenario.demand_at(p, float(r["t"])) for p in scenario.pods) - node_cpu) for r in series
    ) * (window / max(1, len(series)))
    resizes = generation_bumps(pod_events, start, end)
    pa_writes = sum(1 for t, _, _ in pa_events if start <= t <= end)
    reaction: float | None = None
    first_response: float | None = None
    if changed_at is not None and changed_pod is not None and changed_pod.demand_after is not None:
        need = 0.9 * changed_pod.demand_after
        for t, _, obj in pod_events:
            if t < changed_at or obj["metadata"]["name"] != changed_pod.name:
                continue
            lim = applied_limit(obj)
            if lim is not None and lim >= need - 1e-9:
                reaction = t - changed_at
                break
        before = None
        for t, _, obj in pod_events:
            if obj["metadata"]["name"] != changed_pod.name:
                continue
            lim = applied_limit(obj)
            if t < changed_at:
                before = lim
            elif lim is not None and before is not None and lim > before + 1e-9:
                first_response = t - changed_at
                break
        initial = next((p.request_m / 1000.0 for p in scenario.pods if p is changed_pod), 0.0)
        if reaction is None and initial >= need:
            reaction = 0.0
    return {
        "scenario": scenario.name,
        "mode": mode,
        "window_s": round(window, 2),
        "node_cpu": node_cpu,
        "node_quota_file": quota_file,
        "utilization": usage / (window * node_cpu),
        "usage_cores": usage / window,
        "throttled_s": None if any(x is None for x in throttled) else sum(x or 0.0 for x in throttled),
        "psi_full_s": None if any(x is None for x in full) else sum(x or 0.0 for x in full),
        "unserved_share": unserved / demand_s if demand_s > 0 else 0.0,
        "ideal_unserved_share": excess_s / demand_s if demand_s > 0 else 0.0,
        "reaction_time_s": reaction,
        "first_response_s": first_response,
        "resizes": sum(resizes.values()),
        "podallocation_writes": pa_writes,
        "api_writes_per_pod_minute": (sum(resizes.values()) + pa_writes) / (n * minutes),
        "decisions": [
            {
                "t": round(t - start, 2),
                "pod": obj.get("spec", {}).get("podName"),
                "cpu_limit": obj.get("spec", {}).get("cpuLimit"),
                "reason": obj.get("spec", {}).get("reason"),
                "status": (obj.get("status") or {}).get("phase"),
            }
            for t, _, obj in pa_events
            if t >= start - 5.0
        ],
        "per_pod": {
            name: {
                "usage_cores": d.usage_s / window,
                "throttled_s": d.throttled_s,
                "psi_full_s": d.psi_full_s,
                "resizes": resizes.get(name, 0),
            }
            for name, d in deltas.items()
        },
        "series": series,
    }
