"""The agent/controller contract: what a decision means to both sides, stated once.

The agent writes one PodAllocation per managed pod (``spec.cpuLimit``, ``mode``, ``decidedAt``);
the controller turns it into an in-place resize. They run in different processes, often on
different machines, so everything both must agree on lives here and both import it (the
simulator too); neither re-derives it.

* **Settings** — :class:`ContractSettings`, the ``contract:`` section of the one ConfigMap both
  processes read (``mbcas-system/mbcas-config``, key ``config.yaml``). Its validator checks the
  rule between its own settings (``refresh_s < staleness_s``); the rule that ties the agent's
  planner to the contract (the planner's hysteresis bands at least the deadband) is
  :func:`check_planner_bands`, called wherever the agent's configuration is validated.
* **Managed limit** — :func:`managed_limit_mcpu`: a decision is the pod's whole CPU limit, as the
  kubelet counts it. The controller splits ``decision − Σ limits of the containers it leaves
  alone`` (``RestartContainer`` unless allowed, native sidecars) over the others
  (:func:`mbcas.policy.resize_split.split_basis`); the managed limit is that same sum today. A pod
  the split refuses (a container left alone without a CPU limit, a pod-level CPU limit) has none,
  and the agent does not manage it.
* **Applied** — :func:`carries`: a pod whose managed limit is ``L`` already carries a decision
  ``D`` when ``|D - L| <= max(deadband_mcpu, deadband_ratio * L)``. The controller does not resize
  within that band, so the agent counts such a decision as applied.
* **Staleness** — :func:`is_stale`: the controller does not act on a decision older than
  ``staleness_s`` (the agent may be gone), nor on one dated more than ``max_future_skew_s`` in the
  future (a wrong clock, or a forged date). Wall-clock time on both sides.
* **Refresh** — :func:`needs_refresh`: the agent rewrites an unchanged ``enforce`` decision the
  pod does not carry yet once it is ``refresh_s`` old, so the controller never sees it stale;
  applied and ``recommend`` decisions are never rewritten.
* **Write rule** — :func:`plan_writes`: from one tick's decisions and what the API holds (the
  :class:`~mbcas.policy.ledger.DecisionLedger`), which allocations to create or update, which to
  refresh and which to delete. The agent executes it; the simulator calls it to count writes.

At steady state every decision is applied, so the agent writes nothing until a decision changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mbcas.api.models import Mode
from mbcas.policy.ledger import Written
from mbcas.policy.pod_cpu import ContainerResources, PodCpu
from mbcas.policy.resize import Deadband
from mbcas.policy.resize_split import SplitRefusedError, split_basis

__all__ = [
    "ContractSettings",
    "Upsert",
    "WritePlan",
    "carries",
    "check_planner_bands",
    "is_stale",
    "managed_limit_mcpu",
    "needs_refresh",
    "plan_writes",
]


class ContractSettings(BaseModel):
    """The settings both the agent and the controller read (the ConfigMap's ``contract:``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)

    deadband_ratio: float = Field(0.05, ge=0, lt=1)
    """The controller does not resize a pod whose managed limit L is within max(deadband_mcpu,
    deadband_ratio * L) of the decision; the agent counts such a decision as applied. The planner's
    raise_band and lower_band must be at least this."""
    deadband_mcpu: int = Field(10, ge=1)
    """Absolute part of the deadband (millicores; at least 1, which absorbs the split's rounding). The
    planner makes no change this small."""
    staleness_s: float = Field(120.0, gt=0)
    """The controller refuses (Stale) a decision not applied yet that is older than this."""
    refresh_s: float = Field(60.0, gt=0)
    """The agent rewrites an unchanged enforce decision the pod does not carry yet this often (must be
    shorter than staleness_s); applied and recommend decisions are never rewritten."""
    max_future_skew_s: float = Field(5.0, ge=0)
    """A decidedAt further in the future than this (clock skew between nodes) counts as stale."""
    allow_restart: bool = Field(False)
    """Containers whose CPU resizePolicy is RestartContainer take part in the split (and are restarted by a
    resize); otherwise they are left alone and are not part of the managed limit."""

    @model_validator(mode="after")
    def _refresh_before_stale(self) -> ContractSettings:
        if self.refresh_s >= self.staleness_s:
            raise ValueError(
                f"contract.refresh_s = {self.refresh_s:g} must be shorter than contract.staleness_s ="
                f" {self.staleness_s:g}: a decision waiting to be applied would go stale before the"
                " agent refreshes it"
            )
        return self

    @property
    def deadband(self) -> Deadband:
        """The controller's deadband (for :class:`mbcas.policy.resize.ResizeGate`)."""
        return Deadband(self.deadband_ratio, self.deadband_mcpu)


def check_planner_bands(contract: ContractSettings, *, raise_band: float, lower_band: float) -> None:
    """The planner's hysteresis bands must be at least the controller's deadband ratio, so that a
    change the planner makes for its own sake is one the controller acts on (the planner also never
    makes a change within the deadband itself).

    Raises ``ValueError`` naming both settings of the rule that is broken.
    """
    for name, band in (("raise_band", raise_band), ("lower_band", lower_band)):
        if band < contract.deadband_ratio:
            raise ValueError(
                f"planner.{name} = {band:g} must be >= contract.deadband_ratio = {contract.deadband_ratio:g}"
                " (the planner's band must be wider than the controller's)"
            )


def managed_limit_mcpu(pod: PodCpu | Sequence[ContainerResources], *, allow_restart: bool) -> int | None:
    """The pod-level CPU limit MBCAS manages: the pod's whole limit, the CPU limits of the
    containers that take part in the split plus those the split leaves alone (and native
    sidecars). None when a participant has no limit yet, or when the split refuses the pod."""
    try:
        return split_basis(pod, allow_restart=allow_restart).limit_mcpu
    except SplitRefusedError:
        return None


def carries(settings: ContractSettings, limit_mcpu: int | None, decision_mcpu: int) -> bool:
    """Whether a pod whose managed limit is ``limit_mcpu`` (None: no limit) already carries a
    decision of ``decision_mcpu``: the two are within the controller's deadband."""
    return limit_mcpu is not None and bool(settings.deadband.within(limit_mcpu, decision_mcpu))


def is_stale(settings: ContractSettings, decided_at_s: float, now_s: float) -> bool:
    """Whether a decision dated ``decided_at_s`` must not be acted on at ``now_s`` (both wall-clock
    Unix seconds): older than ``staleness_s``, or further ahead than ``max_future_skew_s``."""
    age = now_s - decided_at_s
    return age > settings.staleness_s or -age > settings.max_future_skew_s


def needs_refresh(
    settings: ContractSettings,
    *,
    enforce: bool,
    decision_mcpu: int,
    managed_limit_mcpu: int | None,
    age_s: float,
) -> bool:
    """Whether an unchanged decision, last written ``age_s`` ago, must be rewritten now: an
    ``enforce`` decision the pod does not carry yet, ``refresh_s`` old (see module docs)."""
    if not enforce or age_s < settings.refresh_s:
        return False
    return not carries(settings, managed_limit_mcpu, decision_mcpu)


@dataclass(frozen=True, slots=True)
class Upsert:
    """Create or update the allocation of pod ``index`` (in the tick's order)."""

    index: int
    mcpu: int
    mode: Mode
    refresh: bool
    """True when only ``decidedAt`` is new (an unchanged decision kept from going stale)."""


@dataclass(frozen=True, slots=True)
class WritePlan:
    """One tick's API writes: upserts (cuts first, see :func:`plan_writes`), then the UIDs whose
    allocation goes."""

    upserts: tuple[Upsert, ...]
    deletes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.upserts) + len(self.deletes)


def plan_writes(
    settings: ContractSettings,
    now_s: float,
    *,
    uids: Sequence[str],
    decision_mcpu: npt.ArrayLike,
    modes: Sequence[Mode | None],
    managed_limit_mcpu: npt.ArrayLike,
    written: Mapping[str, Written],
) -> WritePlan:
    """The agent's write rule for one tick (pure; the simulator counts its writes with it).

    ``decision_mcpu[i]`` is pod ``i``'s allocation (<= 0: none); ``modes[i]`` the mode it is
    written in (None: observed only, nothing written); ``managed_limit_mcpu[i]`` its current
    managed limit (< 0: none); ``written`` what the API holds by UID; ``now_s`` wall-clock time.

    A pod with a decision and a mode gets an upsert when the API holds nothing for it, another
    ``cpuLimit`` or another ``mode``, or when :func:`needs_refresh` says so; reasons and timestamps
    alone never cause a write. Every allocation the API holds for a pod without a decision and a
    mode (or for a pod no longer on the node) is deleted. Upserts that cut a pod's limit come
    first, then the others, each group in pod order.
    """
    decision = np.asarray(decision_mcpu, dtype=np.int64)
    limit = np.asarray(managed_limit_mcpu, dtype=np.int64)
    n = len(uids)
    if decision.shape != (n,) or limit.shape != (n,) or len(modes) != n:
        raise ValueError(
            f"decision_mcpu, modes and managed_limit_mcpu must have one value for each of {n} pods"
        )
    upserts: list[Upsert] = []
    wanted: set[str] = set()
    for i in np.flatnonzero(decision > 0).tolist():
        mode = modes[i]
        if mode is None:
            continue
        uid = uids[i]
        wanted.add(uid)
        mcpu = int(decision[i])
        last = written.get(uid)
        if last is None or last.mcpu != mcpu or last.mode != mode.value:
            upserts.append(Upsert(i, mcpu, mode, refresh=False))
        elif needs_refresh(
            settings,
            enforce=mode is Mode.ENFORCE,
            decision_mcpu=mcpu,
            managed_limit_mcpu=int(limit[i]) if limit[i] >= 0 else None,
            age_s=now_s - last.decided_at,
        ):
            upserts.append(Upsert(i, mcpu, mode, refresh=True))
    deletes = tuple(uid for uid in written if uid not in wanted)
    # Cuts first (a decision below the pod's limit), each group in pod order: a controller that
    # works through the writes in order (and a global resize rate that stops it part-way) frees
    # CPU under the node's overcommit bound before it hands any out.
    upserts.sort(key=lambda u: not 0 <= u.mcpu < int(limit[u.index]))
    return WritePlan(tuple(upserts), deletes)
