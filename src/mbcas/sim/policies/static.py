"""Static limits: the status quo, a CPU limit fixed at deployment.

``static`` sets each pod's limit to its request (requests = limits, the common "safe" setting),
``static2x`` to twice the request (a generous burstable setting). Neither ever resizes.
"""

from __future__ import annotations

from mbcas.sim.policies.base import Observation, Policy, SimContext, TickDecision

__all__ = ["StaticPolicy"]


class StaticPolicy(Policy):
    """Limit = ``factor × request`` for the whole run."""

    def __init__(self, factor: float = 1.0, name: str = "static") -> None:
        if not factor > 0:
            raise ValueError(f"factor must be > 0, got {factor!r}")
        self.factor = factor
        self.name = name
        self.label = f"static limits = {factor:g}× request"
        self._decision: TickDecision | None = None

    def start(self, ctx: SimContext) -> TickDecision:
        self._decision = TickDecision(ctx.requests * self.factor)
        return self._decision

    def decide(self, obs: Observation) -> TickDecision:
        assert self._decision is not None, "start() first"
        return self._decision
