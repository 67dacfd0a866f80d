"""The allocation policies compared by the simulator, all behind one interface.

:class:`~mbcas.sim.policies.base.Policy` sees kernel-like signals and returns limits;
:func:`default_policies` builds the six the report compares, in report order.
"""

from __future__ import annotations

from mbcas.sim.policies.base import Observation, Policy, SimContext, TickDecision
from mbcas.sim.policies.hpa import HpaPolicy
from mbcas.sim.policies.mbcas import MbcasPolicy
from mbcas.sim.policies.regret import RegretMatchingPolicy
from mbcas.sim.policies.static import StaticPolicy
from mbcas.sim.policies.vpa import VpaPolicy

__all__ = [
    "POLICY_NAMES",
    "HpaPolicy",
    "MbcasPolicy",
    "Observation",
    "Policy",
    "RegretMatchingPolicy",
    "SimContext",
    "StaticPolicy",
    "TickDecision",
    "VpaPolicy",
    "default_policies",
]

POLICY_NAMES: tuple[str, ...] = ("static", "static2x", "hpa", "vpa", "regret", "mbcas")


def default_policies() -> list[Policy]:
    """Fresh instances of the six compared policies, in :data:`POLICY_NAMES` order."""
    return [
        StaticPolicy(1.0, "static"),
        StaticPolicy(2.0, "static2x"),
        HpaPolicy(),
        VpaPolicy(),
        RegretMatchingPolicy(),
        MbcasPolicy(),
    ]
