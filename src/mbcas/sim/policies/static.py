"""Static limits: the status quo, a CPU limit fixed at deployment.

``static`` sets each pod's limit to its request (requests = limits, the common "safe" setting),
``static2x`` to twice the request (a generous burstable setting). Neither ever resizes.
:class:`UnlimitedPolicy` is the reference row: no limits at all (every limit = the node's capacity).
"""

from __future__ import annotations

from mbcas.sim.policies.base import Observation, Policy, SimContext, TickDecision

__all__ = ["StaticPolicy", "UnlimitedPolicy"]


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


class UnlimitedPolicy(Policy):
    """The reference: every limit is the node's capacity, so only CFS weights share the CPU.

    Not a baseline to beat but the ideal any limit policy can approach: its stall share is the
    scenario's ``min_stall_share``. Never resizes.
    """

    name = "unlimited"
    label = "no limits (reference)"

    def start(self, ctx: SimContext) -> TickDecision:
        self._decision = TickDecision(ctx.capacity[ctx.node].copy())
        return self._decision

    def decide(self, obs: Observation) -> TickDecision:
        return self._decision
