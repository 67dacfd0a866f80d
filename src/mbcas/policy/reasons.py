"""Why a pod's limit is what it is, in the user's words: the text of a decision's ``reason``.

Written on the PodAllocation, shown by ``mbcas top`` and ``mbcas plan``, and logged. Each says
what was measured and what was decided, for example::

    throttled in 100% of periods at 0.50 cores: raised to 2.00 to measure its demand (the
        kernel's throttled time bounds it at 2.00)
    burst envelope 1.40 cores over the last 20 min: lowered to 1.54 (+10% headroom)
    trimmed by request weight to 1.27 cores: node limits at the 2× bound (8.00 cores); ...

A throttled pod's reason always says why it was not raised; it never just says "kept".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mbcas.policy.node import NodePlan

__all__ = ["reason"]

_UNMANAGED = (
    "not managed: Guaranteed (its limit must equal its request)",
    "not managed: BestEffort (it cannot gain a limit)",
    "not managed: excluded by the agent's selectors, terminating, or a resize cannot bound its CPU",
)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def reason(plan: NodePlan, i: int) -> str:
    """The reason of pod ``i`` of ``plan`` (at most 256 characters)."""
    from mbcas.policy.node import Cause

    cause = Cause(int(plan.cause[i]))
    if cause <= Cause.UNMANAGED_EXCLUDED:
        return _UNMANAGED[cause]
    if cause is Cause.NO_SIGNAL:
        return "kept: no CPU signal this tick"
    pol = plan.policy
    limit = plan.allocation_mcpu[i] / 1000.0
    before = float(plan.inputs.limit[i])
    headroom = f"+{pol.headroom_ratio:.0%} headroom"
    burst = f"burst envelope {float(plan.demand[i]):.2f} cores over the last {_duration(pol.window_s)}"
    throttled = f"throttled in {float(plan.inputs.signals.throttled_ratio[i]):.0%} of periods"
    at_bound = f"node limits at the {pol.limit_overcommit:g}× bound ({plan.limit_bound:.2f} cores)"
    upper = float(plan.bounds.upper[i])
    want = float(plan.want[i])
    if cause is Cause.PROBE:
        text = (
            f"{throttled} at {before:.2f} cores: raised to {limit:.2f} to measure its demand "
            f"(the kernel's throttled time bounds it at {upper:.2f})"
        )
        if plan.trimmed[i]:
            text += f"; trimmed by request weight: {at_bound}"
    elif cause is Cause.TRIM:
        text = f"trimmed by request weight to {limit:.2f} cores: {at_bound}; {burst}"
    elif cause is Cause.RAISE:
        text = f"{burst}: raised to {limit:.2f} ({headroom})"
    elif cause is Cause.LOWER:
        why = f"; {at_bound}" if plan.trimmed[i] else f" ({headroom})"
        text = f"{burst}: lowered to {limit:.2f}{why}"
    elif cause is Cause.REPLAY:
        basis = (
            f"{throttled}, probe"
            if plan.bounds.pressured[i]
            else f"usage {float(plan.bounds.lower[i]):.2f} cores"
        )
        bound = f"; trimmed by request weight: {at_bound}" if plan.trimmed[i] else ""
        text = f"replay: {basis}, wants {want:.2f} cores, limit {limit:.2f}{bound}"
    elif plan.bounds.pressured[i]:
        if limit > before + 1e-3:
            why = f"its raise to {limit:.2f} is being applied"
        elif plan.trimmed[i]:
            why = f"trimmed by request weight: {at_bound}"
        else:
            why = f"no CPU free under the bound yet ({plan.limit_bound:.2f} cores)"
        text = f"{throttled} at {before:.2f} cores: {why}"
    elif plan.trimmed[i]:
        text = f"trimmed by request weight: {at_bound}; wants {want:.2f}, keeps {limit:.2f}"
    elif want <= float(np.fmax(plan.inputs.request[i], pol.min_cpu)) + 1e-9:
        text = f"{burst}: at its request, {limit:.2f} cores"
    else:
        text = f"{burst}: kept at {limit:.2f} cores, within the hysteresis of its want {want:.2f}"
    return text[:256]
