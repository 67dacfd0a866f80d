"""What a simulated allocation policy sees and returns.

Every policy runs on the same traces through the same node model and sees only what a real
system could: per-pod kernel-like signals (:class:`Observation`, holding the same
:class:`mbcas.demand.Signals` bundle the agent's sampler produces), never the true demand. Each
tick it returns a :class:`TickDecision`: the CPU limit per pod (cores) for the *next* tick (a decision
made from tick ``k``'s signals takes effect at tick ``k+1``, the same one-tick actuation delay for
every policy) and, optionally, per-pod CPU weights (only the HPA-like policy changes them, because
replicas multiply a service's weight).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mbcas.demand import Signals

__all__ = ["Observation", "Policy", "SimContext", "TickDecision"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class SimContext:
    """The static facts of a run: pods, requests, nodes, tick, seed."""

    pod_names: tuple[str, ...]
    requests: FloatArray
    node: IntArray
    capacity: FloatArray
    tick_s: float
    seed: int

    @property
    def n(self) -> int:
        """Number of pods."""
        return len(self.pod_names)


@dataclass(frozen=True, slots=True)
class Observation:
    """One tick's signals per pod, as the kernel would report them, and the limits in force."""

    tick: int
    """Index of the tick (0-based)."""
    now_s: float
    signals: Signals
    limit: FloatArray


class TickDecision(NamedTuple):
    """Limits (cores) for the next tick and optional CPU weights (``None`` = the requests)."""

    limits: FloatArray
    weights: FloatArray | None = None


class Policy(abc.ABC):
    """A CPU-allocation policy under test (one instance per run)."""

    name: str = "policy"
    label: str = "policy"
    resizes_are_api_writes: bool = True
    """False for a policy that writes the cgroup itself (Koordinator's CPU Burst): its limit
    changes are not API writes."""

    @abc.abstractmethod
    def start(self, ctx: SimContext) -> TickDecision:
        """Reset all state for a new run and return the limits for tick 0."""

    @abc.abstractmethod
    def decide(self, obs: Observation) -> TickDecision:
        """Return the limits (and weights) for the next tick."""

    def potential(self) -> float | None:
        """The policy's own NSW potential after its last decision, if it has one."""
        return None

    def allocation_writes(self) -> int:
        """API writes so far besides the resizes themselves (MBCAS: PodAllocation writes)."""
        return 0
