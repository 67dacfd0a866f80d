"""MBCAS in the simulator: the production planner and resize rules, unchanged.

This is the adapter seam between the simulated node and MBCAS's pure decision core. Per node and
per tick it does what the agent and the controller do in production, with the same code:

1. **Agent** — :class:`mbcas.policy.node.NodePlanner` (one per node): the kernel-like signals of
   the tick go in as :class:`mbcas.policy.node.NodeInputs` (every simulated pod is a managed
   Burstable pod; its UID is its name), which runs the whole plan (demand bounds and burst
   envelope, wants, the overcommit bound's NSW market, the hysteresis gate) with the contract's
   deadband. Its decisions live in the node's
   :class:`mbcas.policy.ledger.DecisionLedger`, as in the agent, and the agent's write rule
   (:func:`mbcas.api.contract.plan_writes`) says which PodAllocations are written.
2. **Controller** — each written allocation becomes the pod's target; every tick the controller
   asks :class:`mbcas.policy.resize.ResizeGate` (the contract's deadband, minimum interval, step
   cap, global rate) about every pod whose limit differs from its target and resizes it when the
   answer is ``APPLY`` (:class:`ControllerGate`); ``WAIT`` is retried on the next tick, as the
   controller retries after ``retry_after_s``.
3. **Kubelet** — the engine applies the limit from the next tick (one tick of actuation delay,
   as for every policy).

The node's capacity in a scenario is what its pods share, so the planner's ``reserve`` is 0.

API writes besides the resizes (:meth:`MbcasPolicy.allocation_writes`) are counted with the
agent's own write rule, :func:`mbcas.api.contract.plan_writes`, under the same
:class:`~mbcas.api.contract.ContractSettings`: one PodAllocation write per changed decision, plus
the rewrite of an unchanged decision that is *not yet applied* (the pod's limit is outside the
contract's deadband around it, e.g. while the controller's gate makes it wait) once
``contract.refresh_s`` (60 s by default) has passed since its last write. An applied decision is
never rewritten, as in the agent. The controller's status updates of PodAllocations are not
counted.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from mbcas.api.contract import ContractSettings, plan_writes
from mbcas.api.models import Mode
from mbcas.core.qos import QoSClass
from mbcas.policy.ledger import DecisionLedger, Written
from mbcas.policy.node import NodeInputs, NodePlanner
from mbcas.policy.node_config import NodePolicy
from mbcas.policy.resize import Deadband, GateAction, ResizeGate, ResizeRules
from mbcas.sim.policies.base import Observation, Policy, SimContext, TickDecision

__all__ = ["ControllerGate", "ControllerModel", "MbcasPolicy", "PassThroughGate"]

IntArray = npt.NDArray[np.int64]


class ControllerModel(Protocol):
    """The controller's safety rules between a written allocation and the pod's limit."""

    def apply(
        self, now: float, uids: tuple[str, ...], desired_mcpu: IntArray, current_mcpu: IntArray
    ) -> IntArray:
        """Return the limit (millicores) each pod gets; ``desired`` is -1 where nothing was written."""
        ...


class PassThroughGate:
    """Applies every written allocation as is (no controller rules)."""

    def apply(
        self, now: float, uids: tuple[str, ...], desired_mcpu: IntArray, current_mcpu: IntArray
    ) -> IntArray:
        out: IntArray = np.where(desired_mcpu > 0, desired_mcpu, current_mcpu)
        return out


class ControllerGate:
    """The controller's reconciliation over :class:`mbcas.policy.resize.ResizeGate`.

    Remembers each pod's target (its PodAllocation spec) and, every tick, resizes the pods the
    production gate lets through; a resize is accepted at once (the simulated apiserver never
    fails), so ``record_applied`` follows every ``APPLY``.
    """

    def __init__(self, rules: ResizeRules | None = None, deadband: Deadband | None = None) -> None:
        self.rules = rules or ResizeRules()
        self._gate = ResizeGate(self.rules, deadband)
        self._target: IntArray | None = None

    def apply(
        self, now: float, uids: tuple[str, ...], desired_mcpu: IntArray, current_mcpu: IntArray
    ) -> IntArray:
        if self._target is None or self._target.shape != current_mcpu.shape:
            self._target = current_mcpu.copy()
        self._target = np.where(desired_mcpu > 0, desired_mcpu, self._target)
        out = current_mcpu.copy()
        # Cuts before raises, as the agent writes them (mbcas.api.contract.plan_writes): when the
        # global rate stops the controller part-way, the node's overcommit bound still holds.
        pending = np.flatnonzero(self._target != current_mcpu)
        for i in pending[np.argsort(self._target[pending] > current_mcpu[pending], kind="stable")]:
            decision = self._gate.evaluate(uids[i], int(current_mcpu[i]), int(self._target[i]), now)
            if decision.action is GateAction.APPLY and decision.value is not None:
                out[i] = decision.value
                self._gate.record_applied(uids[i], now)
        return out


class MbcasPolicy(Policy):
    """MBCAS: production planner per node, then the controller's resize rules (see module docs)."""

    name = "mbcas"
    label = "MBCAS (market + kernel signals)"

    def __init__(
        self,
        policy: NodePolicy | None = None,
        gate: ControllerModel | None = None,
        reserve: float = 0.0,
        contract: ContractSettings | None = None,
    ) -> None:
        self.node_policy = policy or NodePolicy()
        self.contract = contract or ContractSettings()
        self._gate_factory = gate
        self.gate: ControllerModel = self._controller()
        self.reserve = reserve
        self._potential: float | None = None

    def _controller(self) -> ControllerModel:
        if self._gate_factory is not None:
            return self._gate_factory
        return ControllerGate(deadband=self.contract.deadband)

    def start(self, ctx: SimContext) -> TickDecision:
        self._ctx = ctx
        self._planners = [
            NodePlanner(self.node_policy, DecisionLedger(), deadband=self.contract.deadband)
            for _ in range(ctx.capacity.shape[0])
        ]
        self._members = [np.flatnonzero(ctx.node == k) for k in range(ctx.capacity.shape[0])]
        self._uids = [tuple(ctx.pod_names[i] for i in m) for m in self._members]
        self._limit_mcpu = np.round(ctx.requests * 1000.0).astype(np.int64)
        self._potential = None
        self._decided = False
        self._writes = 0
        self.gate = self._controller()
        return TickDecision(self._limit_mcpu / 1000.0)

    def decide(self, obs: Observation) -> TickDecision:
        ctx = self._ctx
        desired = np.full(ctx.n, -1, dtype=np.int64)
        limit_mcpu = np.round(obs.limit * 1000.0).astype(np.int64)
        potential = 0.0
        for k, planner in enumerate(self._planners):
            m = self._members[k]
            inputs = NodeInputs.build(
                self._uids[k],
                np.full(m.size, QoSClass.BURSTABLE.code, dtype=np.int8),
                request=ctx.requests[m],
                limit=obs.limit[m],
                signals=obs.signals.take(m),
            )
            plan = planner.plan(obs.now_s, float(ctx.capacity[k]), self.reserve, inputs)
            potential += plan.objective
            # The agent's write rule, every simulated pod in enforce mode (its limit is all managed).
            ledger = planner.ledger
            writes = plan_writes(
                self.contract,
                obs.now_s,
                uids=plan.uids,
                decision_mcpu=np.where(plan.managed, plan.allocation_mcpu, -1),
                modes=[Mode.ENFORCE] * m.size,
                managed_limit_mcpu=limit_mcpu[m],
                written=ledger.written,
            )
            for up in writes.upserts:
                uid = plan.uids[up.index]
                ledger.wrote(uid, Written("sim", uid, up.mcpu, up.mode.value, obs.now_s))
                if not up.refresh:
                    desired[m[up.index]] = up.mcpu
            for uid in writes.deletes:
                ledger.deleted(uid)
            self._writes += len(writes)
        all_uids = ctx.pod_names
        self._limit_mcpu = np.asarray(
            self.gate.apply(obs.now_s, all_uids, desired, self._limit_mcpu), dtype=np.int64
        )
        # The potential means something once the planner has decided for the pods (after warm-up).
        self._decided = self._decided or bool((desired > 0).any())
        self._potential = potential if self._decided else None
        return TickDecision(self._limit_mcpu / 1000.0)

    def potential(self) -> float | None:
        return self._potential

    def allocation_writes(self) -> int:
        """PodAllocation writes by the agents so far (changed decisions, rewrites of unapplied ones)."""
        return self._writes
