"""Which clock the agent's parts run on: the planner on a monotonic clock, the API on wall time.

The planner's window and holds are durations, so a wall-clock step (NTP, a VM
resumed) must not move them; ``decidedAt`` and the staleness and refresh ages are wall time, since
the controller in another process compares them with its own wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent_fakes import FakeKube, FakeNode

from mbcas.agent.config import AgentConfig
from mbcas.agent.loop import NodeAgent

Trace = list[dict[str, int]]


def _trace(root: Path, wall: Callable[[float], float], seconds: int = 200) -> Trace:
    """Allocations by pod name per tick, for a node whose agent reads ``wall(t)`` as wall time."""
    node, kube = FakeNode(root), FakeKube()
    node.add("busy", 0.9)
    node.add("idle", 0.05)
    agent = NodeAgent(
        AgentConfig(node="n1", allocatable_cpu="1200m", reserve_cpu="200m", config_map=None),
        node="n1",
        pods=node.pods,
        reader=node.reader,
        kube=kube,  # type: ignore[arg-type]
        clock=lambda: wall(node.now),
        mono=lambda: node.now,
    )
    # A short window and hold, so the busy pod's limit comes down within the trace.
    short = {"window_s": 60, "window_buckets": 6, "lower_after_s": 30}
    agent.apply_live(agent.live.merged({"planner": short}))
    start = node.now
    names = {uid: pod.name for uid, pod in node.pods.by_uid.items()}
    out: Trace = []
    for k in range(seconds):
        node.advance(1.0)
        if k == 95:
            node.demand[next(u for u, n in names.items() if n == "busy")] = 0.1  # slowly given back
        plan = agent.tick()
        assert plan is not None
        out.append({names[u]: int(plan.allocation_mcpu[i]) for i, u in enumerate(plan.uids)})
        node.apply(kube)
    assert node.now - start == seconds
    return out


def test_a_wall_clock_step_does_not_change_the_plan(tmp_path: Path) -> None:
    start = FakeNode(tmp_path / "probe").now  # every fake node starts at the same instant

    def stepped(t: float) -> float:
        """Wall time one hour back from 30 s in, then two hours forward from 100 s in."""
        if t - start >= 100:
            return t + 3600.0
        return t - 3600.0 if t - start >= 30 else t

    steady = _trace(tmp_path / "a", lambda t: t)
    jumps = _trace(tmp_path / "b", stepped)
    assert steady == jumps
    assert steady[-1]["busy"] < steady[99]["busy"], "the trace exercises decisions after the steps"
