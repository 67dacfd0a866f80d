"""The market planner's estimate in a closed loop with the real kernel.

Real burners (:mod:`mbcas.local.burner`, the emulator's workload: 100 ms duty cycles, one worker
per started core) run under a real CFS quota that starts at their 0.1-core request. Every second
the production sampler reads the cgroup and :class:`mbcas.policy.market.NodePlanner` decides;
its decision becomes the quota, as the controller would make it. The kernel's throttled time
reads the burner's runnable threads (a 0.25-core burner under 0.1 reads about 1 core), so the
planner may only use it as an upper bound: it raises the quota once and then follows usage.

Checked: the quota settles between the true demand and 20 % above it (0.25, 0.6 and 1.0 cores),
the burner then gets its demand, and while the burner uses less than its quota the planner never
bounds its demand above its usage + 20 %. The planner's hold times are shortened (5 s instead of
minutes) so the loop settles within the test; everything else is the default configuration.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import pytest
from cgroup_helpers import CgroupSandbox, proc_cpu_seconds

from mbcas.cgroups import CgroupReader, Sampler, SignalDelta
from mbcas.core.qos import QoSClass
from mbcas.demand import Signals
from mbcas.policy.node import NodeInputs, NodePlanner
from mbcas.policy.node_config import NodePolicy

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

REQUEST = 0.1
TICKS = 30


def _inputs(delta: SignalDelta, limit: float) -> NodeInputs:
    def f(x: float | None) -> float:
        return math.nan if x is None else x

    return NodeInputs.build(
        ("pod",),
        [QoSClass.BURSTABLE.code],
        request=[REQUEST],
        limit=[limit],
        signals=Signals.build(
            [delta.usage_cores],
            throttled_ratio=[f(delta.throttled_ratio)],
            throttled_cores=[f(delta.throttled_cores)],
            psi_some=[f(delta.psi_some)],
            psi_full=[f(delta.psi_full)],
        ),
    )


@pytest.mark.parametrize("demand", [0.25, 0.6, 1.0])
def test_the_quota_settles_just_above_the_true_demand(cgroup_sandbox: CgroupSandbox, demand: float) -> None:
    if not cgroup_sandbox.can_limit:
        pytest.skip("no CPU controller (v1 cpu or v2 cpu) to enforce quotas on this machine")
    cgroup_sandbox.prioritise()
    cg = cgroup_sandbox.create("pod")
    workers = max(1, math.ceil(demand))
    burner = cgroup_sandbox.spawn(
        [sys.executable, "-m", "mbcas.local.burner", "--pattern", str(demand), "--workers", str(workers)], cg
    )
    time.sleep(1.5)  # the interpreter's start-up CPU is not the workload's demand
    quota = REQUEST
    cg.set_quota(quota)
    planner = NodePlanner(NodePolicy(lower_after_s=5.0, raise_after_s=5.0))
    allocatable = float(os.cpu_count() or 2)
    sampler = Sampler(CgroupReader())
    time.sleep(0.5)
    sampler.sample({"pod": cg.relpath})
    log: list[str] = []
    cpu_at: dict[int, float] = {}
    for tick in range(TICKS):
        time.sleep(1.0)
        delta = sampler.sample({"pod": cg.relpath})["pod"]
        assert isinstance(delta, SignalDelta), delta
        cpu_at[tick] = proc_cpu_seconds(burner.pid) if workers == 1 else math.nan
        plan = planner.plan(time.monotonic(), allocatable, 0.0, _inputs(delta, quota))
        upper = float(plan.bounds.upper[0])
        log.append(
            f"t={tick} quota={quota:.3f} usage={delta.usage_cores:.3f} throttled={delta.throttled_ratio} "
            f"upper={upper:.3f} -> {plan.allocation_mcpu[0]}m ({plan.reason(0)})"
        )
        if delta.usage_cores < 0.9 * quota:
            # Below its quota the demand is what it uses: never bounded above usage + 20 %, also
            # when its duty cycle straddles two CFS periods and some of them are throttled (CI
            # read 9 % throttled, 0.089 s/s, for the 0.25-core burner under a 0.4 quota).
            assert upper <= 1.2 * delta.usage_cores + 0.005, "\n".join(log)
        if plan.changed[0]:
            quota = plan.allocation_mcpu[0] / 1000.0
            cg.set_quota(quota)
    history = "\n".join(log)
    assert demand <= quota <= 1.2 * demand, f"quota {quota:.3f} for a {demand}-core burner:\n{history}"
    if workers == 1:
        served = (cpu_at[TICKS - 1] - cpu_at[TICKS - 6]) / 5.0
        assert served == pytest.approx(demand, rel=0.1), f"served {served:.3f}:\n{history}"
    assert np.isfinite(plan.objective)
    print(f"{demand}-core burner: quota settled at {quota:.3f} ({quota / demand - 1:+.0%})\n{history}")
