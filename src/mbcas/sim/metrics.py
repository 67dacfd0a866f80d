"""Metrics of one simulated run, defined precisely (``docs/evaluation.md`` repeats them).

Notation: ``dᵢₜ`` demand, ``uᵢₜ`` usage, ``lᵢₜ`` limit in force, ``θᵢₜ`` CPU withheld by the quota
(``d − u`` where the limit is what stopped the pod; not the kernel's throttled time, which
over-reads, see :mod:`mbcas.sim.node`), ``C`` total capacity, ``T`` ticks of ``Δ`` seconds, ``n`` pods, ``rᵢ``
requests. Sums run over all pods and ticks unless said otherwise.

``utilization``           ``Σ u / (T · C)``: share of the nodes' CPU that did work.
``throttled_share``       ``Σ θ / Σ d``: share of demanded CPU withheld by CPU limits (contention
                          below the limit is not throttling).
``stall_share``           ``Σ (d − u) / Σ d``: share of demanded CPU not served for any reason
                          (PSI *some*-like: throttling plus contention).
``resizes_per_pod_hour``  limit changes (``|Δl| >= 0.5m`` between ticks) per pod per hour.
``api_writes_per_pod_minute``  API writes per pod per minute after the scenario's warm-up
                          (``warmup_s``): one per resize (unless the policy writes the cgroup
                          itself, as CPU Burst does) plus the policy's other writes (MBCAS: one
                          PodAllocation write per agent decision).
``reaction_time_s``       for every declared demand *spike* of a pod (a step up to level ``L`` at
                          ``t₀``): the time from ``t₀`` until the pod's limit first covers 90 % of
                          the new demand, ``min{t >= t₀ : l(t) >= 0.9·L}``, searched while the
                          spike lasts. The value is the median over spikes, counting a spike never
                          covered as infinitely late; ``null`` if the scenario has no spike or the
                          median is never covered (``reaction_missed`` counts those spikes,
                          ``reaction_times_s`` lists each, ``null`` = never).
``jain``                  fairness of satisfied demand weighted by requests. Per tick, each pod's
                          *fair share* ``fᵢ`` is the request-weighted max-min fair share of its
                          node given demand (``clip(λ·rᵢ, 0, dᵢ)`` filling the node, i.e. what CFS
                          would give with no limits); ``xᵢ = uᵢ / fᵢ`` over pods with ``fᵢ > 0``
                          and Jain's index ``J = (Σx)² / (m·Σx²)``; reported as the mean of ``J``
                          over ticks. ``J = 1`` iff every pod gets the same fraction of its fair
                          share (including all getting all of it).
``nsw``                   Nash social welfare of what was served, mean over ticks of
                          ``Σ ŵᵢ·log max(uᵢ, 1m)`` with ``ŵᵢ = rᵢ / Σ r`` (request-weighted mean
                          log usage in cores; the 1m floor keeps idle pods finite). Higher is
                          better; only differences between policies on one scenario are meaningful.
``allocation_ratio``      ``Σ l / (T · C)``: limits handed out relative to capacity (> 1 = overcommit).
``peak_allocation_ratio`` ``max`` over ticks and nodes of ``Σ l`` on the node ``/`` its capacity.
``gap_closure``           ``(S_static − S) / (S_static − S_min)`` with ``S`` the policy's stall share,
                          ``S_static`` that of ``static`` and ``S_min`` the scenario's
                          ``min_stall_share``: the share of the gap between static limits and no
                          limits at all that the policy closes (1 = as good as no limits, 0 = as
                          static, < 0 = worse); ``null`` where ``S_static − S_min < 0.02`` (nothing
                          to close). Filled in by :func:`add_gap_closure` once ``static`` has run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from mbcas.sim.engine import RunTrace
from mbcas.sim.node import cfs_share
from mbcas.sim.traces import SpikeEvent

__all__ = [
    "GAP_MIN",
    "METRIC_KEYS",
    "add_gap_closure",
    "compute_metrics",
    "fair_shares",
    "gap_closure",
    "jain_index",
    "jain_series",
    "nsw_series",
    "reaction_times",
]

FloatArray = npt.NDArray[np.float64]

METRIC_KEYS: tuple[str, ...] = (
    "utilization",
    "throttled_share",
    "stall_share",
    "resizes_per_pod_hour",
    "api_writes_per_pod_minute",
    "reaction_time_s",
    "jain",
    "nsw",
    "allocation_ratio",
    "peak_allocation_ratio",
    "gap_closure",
)

GAP_MIN = 0.02
"""Below this gap between static limits and no limits, ``gap_closure`` is undefined."""

_USAGE_FLOOR = 0.001
_EPS = 1e-9


def jain_index(x: FloatArray) -> float:
    """Jain's index ``(Σx)² / (m·Σx²)`` of a non-empty vector (1.0 for all zeros)."""
    sq = float(np.dot(x, x))
    if x.size == 0 or sq == 0.0:
        return 1.0
    return float(x.sum()) ** 2 / (x.size * sq)


def fair_shares(
    demand: FloatArray, requests: FloatArray, node: npt.NDArray[np.intp], capacity: FloatArray
) -> FloatArray:
    """Request-weighted max-min fair share of each node's CPU given demand, per tick (``(T, n)``)."""
    out = np.empty_like(demand)
    for k in range(capacity.shape[0]):
        sel = node == k
        for t in range(demand.shape[0]):
            out[t, sel] = cfs_share(float(capacity[k]), requests[sel], demand[t, sel])
    return out


def jain_series(usage: FloatArray, fair: FloatArray) -> FloatArray:
    """Per-tick Jain index of ``usage / fair`` over pods with a fair share (NaN if none)."""
    has = fair > _EPS
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(has, usage / np.where(has, fair, 1.0), 0.0)
    m = has.sum(axis=1)
    s1 = x.sum(axis=1)
    s2 = (x * x).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.where(s2 > 0, s1 * s1 / (m * s2), 1.0)
    out: FloatArray = np.where(m > 0, j, np.nan)
    return out


def nsw_series(usage: FloatArray, requests: FloatArray) -> FloatArray:
    """Per-tick ``Σ ŵ·log max(u, 1m)`` with ``ŵ = r / Σ r``."""
    w = requests / requests.sum()
    out: FloatArray = np.log(np.maximum(usage, _USAGE_FLOOR)) @ w
    return out


def reaction_times(
    trace: RunTrace, spikes: list[tuple[int, SpikeEvent]], threshold: float = 0.9
) -> list[float]:
    """Seconds from each spike's start until the limit covers ``threshold`` of its level (inf = never)."""
    out = []
    ticks = trace.limit.shape[0]
    for j, ev in spikes:
        t0 = round(ev.at_s / trace.tick_s)
        end = min(ticks, t0 + max(1, round(ev.duration_s / trace.tick_s)))
        if t0 >= ticks:
            continue
        covered = np.flatnonzero(trace.limit[t0:end, j] >= threshold * ev.level - _EPS)
        out.append(float(covered[0]) * trace.tick_s if covered.size else math.inf)
    return out


def compute_metrics(
    trace: RunTrace,
    *,
    spikes: list[tuple[int, SpikeEvent]] | None = None,
    warmup_s: float = 0.0,
    fair: FloatArray | None = None,
) -> dict[str, Any]:
    """All metrics of one run as a JSON-ready dict (see module docs; ``fair`` may be precomputed)."""
    ticks, n = trace.demand.shape
    total_cap = float(trace.capacity.sum())
    demand_sum = float(trace.demand.sum())
    hours = ticks * trace.tick_s / 3600.0
    resizes = trace.resizes
    api_resizes = resizes if trace.resizes_are_api_writes else np.zeros_like(resizes)
    w0 = min(ticks, round(warmup_s / trace.tick_s))
    steady_minutes = (ticks - w0) * trace.tick_s / 60.0
    if fair is None:
        fair = fair_shares(trace.demand, trace.requests, trace.node, trace.capacity)
    jain = jain_series(trace.usage, fair)
    times = reaction_times(trace, spikes or [])
    if times:
        median = float(np.median(np.asarray(times)))
        reaction: float | None = median if math.isfinite(median) else None
    else:
        reaction = None
    return {
        "utilization": float(trace.usage.sum()) / (ticks * total_cap),
        "throttled_share": float(trace.withheld.sum()) / demand_sum if demand_sum > 0 else 0.0,
        "stall_share": float((trace.demand - trace.usage).sum()) / demand_sum if demand_sum > 0 else 0.0,
        "resizes_per_pod_hour": float(resizes.sum()) / (n * hours),
        "api_writes_per_pod_minute": (
            float(api_resizes[w0:].sum() + trace.extra_writes[w0:].sum()) / (n * steady_minutes)
            if steady_minutes > 0
            else 0.0
        ),
        "reaction_time_s": reaction,
        "reaction_times_s": [t if math.isfinite(t) else None for t in times],
        "reaction_missed": sum(1 for t in times if not math.isfinite(t)),
        "jain": float(np.nanmean(jain)) if np.isfinite(jain).any() else None,
        "nsw": float(nsw_series(trace.usage, trace.requests).mean()),
        "allocation_ratio": float(trace.limit.sum()) / (ticks * total_cap),
        "peak_allocation_ratio": peak_allocation_ratio(trace),
        "gap_closure": None,
    }


def peak_allocation_ratio(trace: RunTrace) -> float:
    """``max`` over ticks and nodes of (Σ limits of the node's pods) / the node's capacity."""
    nodes = trace.capacity.shape[0]
    per_node = np.zeros((trace.limit.shape[0], nodes))
    for k in range(nodes):
        per_node[:, k] = trace.limit[:, trace.node == k].sum(axis=1)
    return float((per_node / trace.capacity).max()) if per_node.size else 0.0


def gap_closure(stall: float, static_stall: float, min_stall: float) -> float | None:
    """``(static − stall) / (static − min)``, ``None`` when that gap is below :data:`GAP_MIN`."""
    gap = static_stall - min_stall
    if gap < GAP_MIN:
        return None
    return (static_stall - stall) / gap


def add_gap_closure(metrics: dict[str, dict[str, Any]], min_stall: float) -> None:
    """Fill ``gap_closure`` of every policy in ``metrics`` (left ``None`` if ``static`` did not run)."""
    static = metrics.get("static")
    if static is None:
        return
    for m in metrics.values():
        m["gap_closure"] = gap_closure(m["stall_share"], static["stall_share"], min_stall)
