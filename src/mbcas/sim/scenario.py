"""Scenarios: versioned JSON descriptions of nodes, pods and their CPU demand over time.

A scenario file (``src/mbcas/sim/scenarios/<name>.json``) says how long the run lasts, the tick,
the nodes (name and capacity in cores) and the pods (name, node, CPU request and a *demand
trace* specification, see :mod:`mbcas.sim.traces`; optionally ``threads``, the pod's least
number of runnable threads, see :mod:`mbcas.sim.node`). Every file carries ``"version": 1``; a
file with another version, an unknown key or a bad value is rejected with a message that names
the file and the field, so a typo never silently changes an experiment.

:func:`load_scenario` reads one by name (a packaged file) or by path; :func:`list_scenarios` names
the packaged ones. :meth:`Scenario.demand` turns the specification into the demand matrix (ticks ×
pods, cores) with a seeded :class:`numpy.random.Generator`, so the same seed gives the same trace
for every policy and every run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mbcas.sim.traces import SpikeEvent, TraceSpec, generate_trace, parse_trace

__all__ = [
    "SCENARIO_DIR",
    "SCENARIO_VERSION",
    "PodSpec",
    "Scenario",
    "ScenarioError",
    "ScenarioNode",
    "list_scenarios",
    "load_scenario",
]

SCENARIO_VERSION = 1
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

FloatArray = npt.NDArray[np.float64]


class ScenarioError(ValueError):
    """A scenario file is missing, malformed, or has an unknown version, key or bad value."""


@dataclass(frozen=True, slots=True)
class ScenarioNode:
    """A node: its name and the CPU (cores) its pods share."""

    name: str
    capacity: float


@dataclass(frozen=True, slots=True)
class PodSpec:
    """A pod (for the HPA-like policy: a service of replicas) and its demand specification."""

    name: str
    node: str
    request: float
    trace: TraceSpec
    threads: int = 0
    """Least number of runnable threads (0: as many as the demand needs, see :mod:`mbcas.sim.node`)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario (see module docs). Build with :func:`load_scenario`."""

    name: str
    description: str
    duration_s: float
    tick_s: float
    nodes: tuple[ScenarioNode, ...]
    pods: tuple[PodSpec, ...]
    warmup_s: float = 60.0
    tags: tuple[str, ...] = ()
    """Which targets apply: ``contention``, ``spike``, ``steady`` (see :mod:`mbcas.sim.targets`)."""
    source: str = field(default="", compare=False)

    @property
    def ticks(self) -> int:
        """Number of ticks in the run."""
        return round(self.duration_s / self.tick_s)

    @property
    def requests(self) -> FloatArray:
        """CPU requests per pod (cores)."""
        return np.array([p.request for p in self.pods], dtype=np.float64)

    @property
    def threads(self) -> FloatArray:
        """Least runnable threads per pod (0 = as many as the demand needs)."""
        return np.array([p.threads for p in self.pods], dtype=np.float64)

    @property
    def node_index(self) -> npt.NDArray[np.intp]:
        """Index into :attr:`nodes` of each pod's node."""
        names = {n.name: i for i, n in enumerate(self.nodes)}
        return np.array([names[p.node] for p in self.pods], dtype=np.intp)

    @property
    def capacities(self) -> FloatArray:
        """Capacity per node (cores)."""
        return np.array([n.capacity for n in self.nodes], dtype=np.float64)

    def demand(self, seed: int) -> FloatArray:
        """The demand matrix, shape ``(ticks, pods)``, in cores; deterministic for a seed.

        Each pod draws from its own child of ``SeedSequence(seed)`` so adding a pod at the end
        does not change the others' traces.
        """
        children = np.random.SeedSequence(seed).spawn(len(self.pods))
        out = np.empty((self.ticks, len(self.pods)), dtype=np.float64)
        for j, (pod, ss) in enumerate(zip(self.pods, children, strict=True)):
            out[:, j] = generate_trace(pod.trace, self.ticks, self.tick_s, np.random.default_rng(ss))
        return out

    def spikes(self) -> list[tuple[int, SpikeEvent]]:
        """Every declared demand increase as ``(pod index, event)`` (for the reaction time)."""
        return [(j, ev) for j, pod in enumerate(self.pods) for ev in pod.trace.spikes if ev.rises]


def list_scenarios() -> list[str]:
    """Names of the packaged scenarios, sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.json"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a packaged scenario by name, or any scenario file by path.

    Raises:
        ScenarioError: no such scenario, unreadable JSON, or invalid content (the message names
            the file and the offending field).
    """
    path = Path(name_or_path)
    if path.suffix != ".json" or not path.exists():
        packaged = SCENARIO_DIR / f"{name_or_path}.json"
        if not packaged.exists():
            raise ScenarioError(
                f"unknown scenario {str(name_or_path)!r}; known: {', '.join(list_scenarios())}"
            )
        path = packaged
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc}") from exc
    try:
        return _parse(raw, source=str(path))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ScenarioError):
            raise
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ScenarioError(f"{path}: {detail}") from exc


_TOP_KEYS = {"version", "name", "description", "duration_s", "tick_s", "warmup_s", "tags", "nodes", "pods"}
_POD_KEYS = {"name", "node", "request", "demand", "count", "threads"}


def _positive(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ScenarioError(f"{where} must be a number > 0, got {value!r}")
    return float(value)


def _parse(raw: Any, source: str) -> Scenario:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: a scenario is a JSON object")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ScenarioError(f"{source}: unknown keys {sorted(unknown)}")
    if raw.get("version") != SCENARIO_VERSION:
        raise ScenarioError(f"{source}: version must be {SCENARIO_VERSION}, got {raw.get('version')!r}")
    duration = _positive(f"{source}: duration_s", raw["duration_s"])
    tick = _positive(f"{source}: tick_s", raw.get("tick_s", 1.0))
    nodes = tuple(
        ScenarioNode(name=str(n["name"]), capacity=_positive(f"{source}: nodes[{i}].capacity", n["capacity"]))
        for i, n in enumerate(raw["nodes"])
    )
    if not nodes:
        raise ScenarioError(f"{source}: at least one node is needed")
    node_names = {n.name for n in nodes}
    if len(node_names) != len(nodes):
        raise ScenarioError(f"{source}: duplicate node names")
    pods: list[PodSpec] = []
    for i, p in enumerate(raw["pods"]):
        where = f"{source}: pods[{i}]"
        if not isinstance(p, dict):
            raise ScenarioError(f"{where} must be an object")
        bad = set(p) - _POD_KEYS
        if bad:
            raise ScenarioError(f"{where}: unknown keys {sorted(bad)}")
        node = str(p.get("node", nodes[0].name))
        if node not in node_names:
            raise ScenarioError(f"{where}: unknown node {node!r}")
        request = _positive(f"{where}.request", p["request"])
        trace = parse_trace(p["demand"], where=f"{where}.demand")
        count = int(p.get("count", 1))
        if count < 1:
            raise ScenarioError(f"{where}.count must be >= 1")
        threads = p.get("threads", 0)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ScenarioError(f"{where}.threads must be a whole number >= 0, got {threads!r}")
        base = str(p["name"])
        for k in range(count):
            name = base if count == 1 else f"{base}-{k}"
            pods.append(PodSpec(name=name, node=node, request=request, trace=trace, threads=threads))
    if not pods:
        raise ScenarioError(f"{source}: at least one pod is needed")
    if len({p.name for p in pods}) != len(pods):
        raise ScenarioError(f"{source}: duplicate pod names")
    scenario = Scenario(
        name=str(raw["name"]),
        description=str(raw.get("description", "")),
        duration_s=duration,
        tick_s=tick,
        nodes=nodes,
        pods=tuple(pods),
        warmup_s=float(raw.get("warmup_s", 60.0)),
        tags=tuple(str(t) for t in raw.get("tags", [])),
        source=source,
    )
    if scenario.ticks < 1:
        raise ScenarioError(f"{source}: duration_s must cover at least one tick")
    return scenario
