"""When the agent rewrites a PodAllocation whose decision did not change: the refresh rule.

The controller refuses to *act* on a decision older than its staleness limit, but it checks the
age only while the pod does not already carry the decision (see :mod:`mbcas.controller.decide`).
So an unchanged decision needs a fresh ``decidedAt`` only while it is still waiting to be applied:

* ``recommend`` decisions are never applied, so they are never refreshed;
* an ``enforce`` decision the pod's spec already carries (its CPU limit, summed over the
  containers, within ``tolerance_mcpu`` of the decision, allowing for the controller's
  per-container rounding) is never refreshed either;
* an ``enforce`` decision not applied yet (the pod has no limit, or another one) is rewritten once
  it is ``refresh_s`` old, so the controller never sees it as stale.

At steady state every decision is applied, so the agent writes nothing until a decision changes.
"""

from __future__ import annotations

__all__ = ["APPLIED_TOLERANCE_MCPU", "needs_refresh"]

APPLIED_TOLERANCE_MCPU = 1
"""A pod limit this close to the decision counts as applied (container split rounding)."""


def needs_refresh(
    *,
    enforce: bool,
    decision_mcpu: int,
    pod_limit_mcpu: int | None,
    age_s: float,
    refresh_s: float,
    tolerance_mcpu: int = APPLIED_TOLERANCE_MCPU,
) -> bool:
    """Whether an unchanged decision must be rewritten now (see module docs).

    ``pod_limit_mcpu`` is the pod's current spec CPU limit (None: some container has no limit);
    ``age_s`` is the time since the decision was last written.
    """
    if not enforce or age_s < refresh_s:
        return False
    return pod_limit_mcpu is None or abs(pod_limit_mcpu - decision_mcpu) > tolerance_mcpu
