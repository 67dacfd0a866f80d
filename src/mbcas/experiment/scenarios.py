"""The real-kernel experiment's scenarios: which pods, what they request and what they burn.

A scenario names its pods (CPU request, which is also the initial limit, and the demand the
emulator's burner is told to burn), the warm-up before the measurement window, the window itself
and, for a spike, when one pod's demand changes. :data:`EXPERIMENTS` holds the packaged ones,
short enough for a 2-core machine. :class:`ExperimentError` is the one error every step of the
experiment raises, with a message that says which step failed and why.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXPERIMENTS", "ExperimentError", "ExperimentPod", "ExperimentScenario", "with_measure"]


class ExperimentError(RuntimeError):
    """A step of the experiment failed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ExperimentPod:
    """One pod: CPU request (= its initial limit), demand, and an optional new demand."""

    name: str
    request_m: int
    demand: float
    demand_after: float | None = None


@dataclass(frozen=True, slots=True)
class ExperimentScenario:
    """A real-kernel scenario; ``change_at_s`` is measured from the start of the window."""

    name: str
    description: str
    pods: tuple[ExperimentPod, ...]
    warmup_s: float = 20.0
    measure_s: float = 60.0
    change_at_s: float | None = None

    def demand_at(self, pod: ExperimentPod, t: float) -> float:
        """The configured demand of ``pod`` at ``t`` seconds into the window."""
        if pod.demand_after is not None and self.change_at_s is not None and t >= self.change_at_s:
            return pod.demand_after
        return pod.demand


def _pods(*rows: tuple[str, int, float]) -> tuple[ExperimentPod, ...]:
    """Pods of a steady demand from ``(name, request in millicores, demand in cores)`` rows."""
    return tuple(ExperimentPod(name, request_m, demand) for name, request_m, demand in rows)


EXPERIMENTS: dict[str, ExperimentScenario] = {
    "spike": ExperimentScenario(
        name="spike",
        description=(
            "Three pods on a 1-core node; the frontend's demand jumps from 0.1 to 0.6 cores 10 s "
            "into the window (its request and initial limit are 150m)."
        ),
        pods=(
            ExperimentPod("frontend", 150, 0.1, 0.6),
            ExperimentPod("catalog", 150, 0.1),
            ExperimentPod("db", 200, 0.15),
        ),
        warmup_s=20.0,
        measure_s=50.0,
        change_at_s=10.0,
    ),
    "contention": ExperimentScenario(
        name="contention",
        description=(
            "Four pods on a 1-core node wanting 1.35 cores in total (requests 0.8 cores): "
            "0.6, 0.4, 0.25 and 0.1 cores with requests 300m, 200m, 100m and 200m."
        ),
        pods=_pods(("web", 300, 0.6), ("api", 200, 0.4), ("worker", 100, 0.25), ("cache", 200, 0.1)),
        warmup_s=25.0,
        measure_s=60.0,
    ),
    "noisy-neighbour": ExperimentScenario(
        name="noisy-neighbour",
        description=(
            "A batch pod with a 100m request wants 0.8 cores on a 1-core node next to three modest "
            "pods wanting 0.15, 0.2 and 0.1 cores with requests 250m, 250m and 200m (1.25 cores "
            "wanted in total)."
        ),
        pods=_pods(("batch", 100, 0.8), ("web", 250, 0.15), ("api", 250, 0.2), ("cache", 200, 0.1)),
        warmup_s=25.0,
        measure_s=60.0,
    ),
}


def with_measure(s: ExperimentScenario, measure_s: float) -> ExperimentScenario:
    """``s`` with a ``measure_s`` window (its demand change, if any, within the first third)."""
    change = None if s.change_at_s is None else min(s.change_at_s, measure_s / 3)
    return ExperimentScenario(s.name, s.description, s.pods, s.warmup_s, measure_s, change)
