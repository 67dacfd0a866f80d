"""Demand traces: what each simulated pod would use if nothing stopped it, per tick, in cores.

A trace specification is a small JSON object with a ``kind`` and its parameters:

``steady``   ``level``: constant demand.
``diurnal``  ``mean``, ``amplitude``, ``period_s``, ``phase_s``: ``mean + amplitude·sin(2π(t+phase)/period)``.
``bursty``   ``base`` plus bursts arriving as a Poisson process (``rate_per_s``), each with a
             Pareto-distributed height (``scale`` cores, shape ``alpha``; heavy-tailed for
             ``alpha <= 2``) and an exponentially distributed length (mean ``burst_s``).

Every kind also accepts

``spikes``   a list of ``{"at_s", "level", "duration_s"}``: during a spike the demand is ``level``
             (a *step spike*; the scenario's reaction time is measured on these);
``noise``    relative standard deviation of a multiplicative log-normal noise (default 0);
``noise_corr`` lag-one correlation of that noise (AR(1), default 0: independent per tick);
``max``      an upper clip (default none; demand never goes below 0).

All randomness comes from the :class:`numpy.random.Generator` passed in, so a trace is a pure
function of (specification, length, tick, generator state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["TRACE_KINDS", "SpikeEvent", "TraceSpec", "generate_trace", "parse_trace"]

FloatArray = npt.NDArray[np.float64]

TRACE_KINDS = ("steady", "diurnal", "bursty")

_KEYS: dict[str, set[str]] = {
    "steady": {"level"},
    "diurnal": {"mean", "amplitude", "period_s", "phase_s"},
    "bursty": {"base", "rate_per_s", "scale", "alpha", "burst_s"},
}
_COMMON = {"kind", "spikes", "noise", "noise_corr", "max"}


@dataclass(frozen=True, slots=True)
class SpikeEvent:
    """A step of demand to ``level`` cores from ``at_s`` for ``duration_s`` seconds."""

    at_s: float
    level: float
    duration_s: float
    base_level: float

    @property
    def rises(self) -> bool:
        """True if the spike raises demand above the trace's base level."""
        return self.level > self.base_level


@dataclass(frozen=True, slots=True)
class TraceSpec:
    """A parsed trace specification (see module docs)."""

    kind: str
    params: tuple[tuple[str, float], ...]
    spikes: tuple[SpikeEvent, ...] = ()
    noise: float = 0.0
    noise_corr: float = 0.0
    max: float = math.inf

    def param(self, key: str, default: float | None = None) -> float:
        """One numeric parameter of the kind."""
        for k, v in self.params:
            if k == key:
                return v
        if default is None:
            raise KeyError(key)
        return default


def _num(where: str, value: Any, *, lo: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    if value < lo or (strict and value == lo):
        raise ValueError(f"{where} must be {'>' if strict else '>='} {lo}, got {value!r}")
    return float(value)


_DEFAULTS: dict[str, dict[str, float]] = {
    "steady": {},
    "diurnal": {"phase_s": 0.0},
    "bursty": {"alpha": 1.5, "burst_s": 10.0},
}
_STRICT = {"period_s", "rate_per_s", "scale", "alpha", "burst_s"}


def parse_trace(raw: Any, where: str = "demand") -> TraceSpec:
    """Validate a trace specification (a dict from JSON).

    Raises:
        ValueError: unknown kind or key, missing parameter, or a value out of range, naming it.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be an object with a 'kind'")
    kind = raw.get("kind")
    if kind not in _KEYS:
        raise ValueError(f"{where}.kind must be one of {list(TRACE_KINDS)}, got {kind!r}")
    allowed = _KEYS[kind] | _COMMON
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} for kind {kind!r}")
    params: dict[str, float] = dict(_DEFAULTS[kind])
    for key in _KEYS[kind]:
        if key in raw:
            lo = -math.inf if key == "phase_s" else 0.0
            params[key] = _num(f"{where}.{key}", raw[key], lo=lo, strict=key in _STRICT)
        elif key not in params:
            raise ValueError(f"{where}: missing {key!r} for kind {kind!r}")
    base = {"steady": "level", "diurnal": "mean", "bursty": "base"}[kind]
    base_level = params[base]
    spikes = []
    for i, s in enumerate(raw.get("spikes", [])):
        sw = f"{where}.spikes[{i}]"
        if not isinstance(s, dict) or set(s) - {"at_s", "level", "duration_s"}:
            raise ValueError(f"{sw} must be an object with at_s, level and duration_s")
        spikes.append(
            SpikeEvent(
                at_s=_num(f"{sw}.at_s", s["at_s"]),
                level=_num(f"{sw}.level", s["level"]),
                duration_s=_num(f"{sw}.duration_s", s["duration_s"], strict=True),
                base_level=base_level,
            )
        )
    corr = _num(f"{where}.noise_corr", raw.get("noise_corr", 0.0))
    if corr >= 1.0:
        raise ValueError(f"{where}.noise_corr must be < 1, got {corr!r}")
    return TraceSpec(
        kind=kind,
        params=tuple(sorted(params.items())),
        spikes=tuple(spikes),
        noise=_num(f"{where}.noise", raw.get("noise", 0.0)),
        noise_corr=corr,
        max=_num(f"{where}.max", raw.get("max", math.inf)) if "max" in raw else math.inf,
    )


def _noise(spec: TraceSpec, n: int, rng: np.random.Generator) -> FloatArray:
    """Multiplicative log-normal noise with mean 1 and relative deviation ``spec.noise``."""
    if spec.noise <= 0.0:
        return np.ones(n)
    sigma = math.sqrt(math.log1p(spec.noise**2))
    eps = rng.standard_normal(n)
    rho = spec.noise_corr
    if rho > 0.0:
        z = np.empty(n)
        scale = math.sqrt(1.0 - rho * rho)
        prev = eps[0]
        z[0] = prev
        for k in range(1, n):
            prev = rho * prev + scale * eps[k]
            z[k] = prev
        eps = z
    out: FloatArray = np.exp(sigma * eps - 0.5 * sigma * sigma)
    return out


def generate_trace(spec: TraceSpec, ticks: int, tick_s: float, rng: np.random.Generator) -> FloatArray:
    """Demand per tick (cores, ``>= 0``) for one pod; see module docs for the kinds."""
    t = np.arange(ticks, dtype=np.float64) * tick_s
    if spec.kind == "steady":
        base = np.full(ticks, spec.param("level"))
    elif spec.kind == "diurnal":
        period = spec.param("period_s")
        base = spec.param("mean") + spec.param("amplitude") * np.sin(
            2.0 * math.pi * (t + spec.param("phase_s")) / period
        )
    else:  # bursty
        base = np.full(ticks, spec.param("base"))
        count = int(rng.poisson(spec.param("rate_per_s") * ticks * tick_s))
        starts = rng.integers(0, ticks, size=count)
        heights = spec.param("scale") * (1.0 + rng.pareto(spec.param("alpha"), size=count))
        lengths = np.maximum(1, np.ceil(rng.exponential(spec.param("burst_s"), size=count) / tick_s))
        for s, h, ln in zip(starts, heights, lengths, strict=True):
            base[int(s) : int(s) + int(ln)] += h
    for ev in spec.spikes:
        a = round(ev.at_s / tick_s)
        b = round((ev.at_s + ev.duration_s) / tick_s)
        base[a:b] = ev.level
    demand = np.clip(base, 0.0, None) * _noise(spec, ticks, rng)
    out: FloatArray = np.clip(demand, 0.0, spec.max)
    return out
