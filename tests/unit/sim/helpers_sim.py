"""Small builders shared by the simulator tests: scripted policies and tiny scenarios."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mbcas.sim.policies.base import Observation, Policy, SimContext, TickDecision

__all__ = ["ScriptedPolicy", "ctx_for", "write_scenario"]


class ScriptedPolicy(Policy):
    """Plays a fixed matrix of limits: row ``k`` is in force during tick ``k``."""

    name = "scripted"
    label = "scripted"

    def __init__(self, limits: list[list[float]]) -> None:
        self.limits = np.asarray(limits, dtype=np.float64)
        self.seen: list[Observation] = []

    def start(self, ctx: SimContext) -> TickDecision:
        self.seen = []
        return TickDecision(self.limits[0])

    def decide(self, obs: Observation) -> TickDecision:
        self.seen.append(obs)
        return TickDecision(self.limits[min(obs.tick + 1, len(self.limits) - 1)])


def ctx_for(requests: list[float], capacity: list[float], node: list[int] | None = None) -> SimContext:
    n = len(requests)
    return SimContext(
        pod_names=tuple(f"p{i}" for i in range(n)),
        requests=np.asarray(requests, dtype=np.float64),
        node=np.asarray(node if node is not None else [0] * n, dtype=np.intp),
        capacity=np.asarray(capacity, dtype=np.float64),
        tick_s=1.0,
        seed=0,
    )


def write_scenario(path: Path, **overrides: Any) -> Path:
    """Write a small valid scenario (two pods, one spike) with ``overrides`` at the top level."""
    raw: dict[str, Any] = {
        "version": 1,
        "name": "tiny",
        "description": "two pods, one spike",
        "tags": ["spike"],
        "duration_s": 240,
        "tick_s": 1,
        "warmup_s": 30,
        "nodes": [{"name": "n", "capacity": 2.0}],
        "pods": [
            {
                "name": "a",
                "request": 0.25,
                "demand": {
                    "kind": "steady",
                    "level": 0.2,
                    "noise": 0.05,
                    "spikes": [{"at_s": 60, "level": 1.0, "duration_s": 120}],
                },
            },
            {"name": "b", "request": 0.5, "demand": {"kind": "steady", "level": 0.4, "noise": 0.1}},
        ],
    }
    raw.update(overrides)
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path
