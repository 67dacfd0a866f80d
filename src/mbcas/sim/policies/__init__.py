"""The allocation policies compared by the simulator, all behind one interface.

:class:`~mbcas.sim.policies.base.Policy` sees kernel-like signals and returns limits;
:func:`default_policies` builds the ones the report compares, in report order: five baselines,
Koordinator's CPU Burst (the peer to beat), MBCAS, and the ``unlimited`` reference row.
"""

from __future__ import annotations

from mbcas.sim.policies.base import Observation, Policy, SimContext, TickDecision
from mbcas.sim.policies.cpuburst import CpuBurstPolicy
from mbcas.sim.policies.hpa import HpaPolicy
from mbcas.sim.policies.mbcas import MbcasPolicy
from mbcas.sim.policies.regret import RegretMatchingPolicy
from mbcas.sim.policies.static import StaticPolicy, UnlimitedPolicy
from mbcas.sim.policies.vpa import VpaPolicy

__all__ = [
    "POLICY_NAMES",
    "REFERENCE_POLICIES",
    "CpuBurstPolicy",
    "HpaPolicy",
    "MbcasPolicy",
    "Observation",
    "Policy",
    "RegretMatchingPolicy",
    "SimContext",
    "StaticPolicy",
    "TickDecision",
    "UnlimitedPolicy",
    "VpaPolicy",
    "default_policies",
]

POLICY_NAMES: tuple[str, ...] = (
    "static",
    "static2x",
    "hpa",
    "vpa",
    "regret",
    "cpuburst",
    "mbcas",
    "unlimited",
)

REFERENCE_POLICIES: frozenset[str] = frozenset({"unlimited"})
"""Rows that show what is reachable, not baselines MBCAS must beat."""


def default_policies() -> list[Policy]:
    """Fresh instances of every compared policy, in :data:`POLICY_NAMES` order."""
    return [
        StaticPolicy(1.0, "static"),
        StaticPolicy(2.0, "static2x"),
        HpaPolicy(),
        VpaPolicy(),
        RegretMatchingPolicy(),
        CpuBurstPolicy(),
        MbcasPolicy(),
        UnlimitedPolicy(),
    ]
