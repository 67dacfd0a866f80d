"""When the agent rewrites a PodAllocation whose decision did not change: the refresh rule.

The controller refuses to *act* on a decision older than its staleness limit, but it checks the
age only while the pod does not already carry the decision (see :mod:`mbcas.controller.decide`).
So an unchanged decision needs a fresh ``decidedAt`` only while it is still waiting to be applied:

* ``recommend`` decisions are never applied, so they are never refreshed;
* an ``enforce`` decision the pod's spec already carries is never refreshed either: its CPU
  limit, summed over the containers, is within the controller's deadband of the decision
  (:func:`mbcas.policy.resize.within_deadband` with the controller's default rules, 5 % or 10m),
  so the controller would not change it anyway; this also absorbs per-container rounding;
* an ``enforce`` decision not applied yet (the pod has no limit, or another one) is rewritten once
  it is ``refresh_s`` old, so the controller never sees it as stale.

At steady state every decision is applied, so the agent writes nothing until a decision changes.
"""

from __future__ import annotations

from mbcas.policy.resize import ResizeRules, within_deadband

__all__ = ["needs_refresh"]


def needs_refresh(
    *,
    enforce: bool,
    decision_mcpu: int,
    pod_limit_mcpu: int | None,
    age_s: float,
    refresh_s: float,
    rules: ResizeRules | None = None,
) -> bool:
    """Whether an unchanged decision must be rewritten now (see module docs).

    ``pod_limit_mcpu`` is the pod's current spec CPU limit (None: some container has no limit);
    ``age_s`` is the time since the decision was last written; ``rules`` are the controller's
    resize rules (defaults when None).
    """
    if not enforce or age_s < refresh_s:
        return False
    if pod_limit_mcpu is None:
        return True
    return not bool(within_deadband(rules or ResizeRules(), pod_limit_mcpu, decision_mcpu))
