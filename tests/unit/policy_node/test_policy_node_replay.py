"""Replay (no history), the capacity model, input validation and policy validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mbcas.core.qos import QoSClass
from mbcas.demand import Signals
from mbcas.policy.capacity import node_capacity, unmanaged_consumption
from mbcas.policy.node import Cause, NodeInputs, replay
from mbcas.policy.node_config import NodePolicy

NAN = math.nan


def test_capacity_counts_each_unmanaged_class_as_documented() -> None:
    qos = np.array(
        [
            QoSClass.GUARANTEED.code,
            QoSClass.BEST_EFFORT.code,
            QoSClass.BURSTABLE.code,
            QoSClass.BURSTABLE.code,
            QoSClass.BURSTABLE.code,
        ],
        dtype=np.int8,
    )
    request = np.array([0.5, NAN, 0.2, 0.2, 0.3])
    limit = np.array([0.5, NAN, 1.0, NAN, 0.4])
    usage = np.array([0.1, 3.0, 0.6, 0.05, 2.0])
    used = unmanaged_consumption(qos, request, limit, usage)
    # Guaranteed at its limit, BestEffort 0, Burstable max(request, usage) capped at its limit.
    assert list(used) == pytest.approx([0.5, 0.0, 0.6, 0.2, 0.4])
    unmanaged = np.array([True, True, True, False, True])
    cap = node_capacity(4.0, 0.2, unmanaged=unmanaged, qos=qos, request=request, limit=limit, usage=usage)
    assert cap == pytest.approx(4.0 - 0.2 - 0.5 - 0.0 - 0.6 - 0.4)
    assert (
        node_capacity(1.0, 2.0, unmanaged=unmanaged, qos=qos, request=request, limit=limit, usage=usage)
        == 0.0
    )


def test_qos_code_names() -> None:
    assert QoSClass.parse("Burstable").code == QoSClass.BURSTABLE.code
    with pytest.raises(ValueError, match="unknown QoS class 'Bursty'"):
        QoSClass.parse("Bursty")


def test_replay_is_the_market_solution_without_history() -> None:
    inputs = NodeInputs.build(
        ["busy", "idle", "guaranteed"],
        [QoSClass.BURSTABLE.code, QoSClass.BURSTABLE.code, QoSClass.GUARANTEED.code],
        request=[0.25, 0.25, 1.0],
        limit=[0.5, 0.5, 1.0],
        signals=Signals.build([0.5, 0.02, 0.9], throttled_ratio=[0.8, 0.0, 0.0], psi_full=[0.4, 0.0, 0.0]),
    )
    plan = replay(NodePolicy(), 4.0, 0.2, inputs)
    assert plan.capacity_mcpu == 2800  # 4 − 0.2 − 1 (Guaranteed)
    assert plan.limit_bound == pytest.approx(5.6)  # the default 2.0 × the shareable CPU
    assert list(plan.managed) == [True, True, False]
    alloc = plan.allocation_mcpu
    assert alloc[2] == -1
    # The busy pod is under pressure (throttled in 80 % of periods): with no throttled time, PSI
    # full bounds its demand at usage / (1 − full) = 0.833; + 10 % headroom = 0.917, within
    # [1.5, 4] × its 0.5 limit. The idle pod wants its usage + 10 %, so its request, 0.25.
    assert list(alloc[:2]) == [916, 250]
    assert (plan.cause[:2] == Cause.REPLAY).all()
    assert plan.reason(0) == "replay: throttled in 80% of periods, probe, wants 0.92 cores, limit 0.92"
    assert plan.reason(1) == "replay: usage 0.02 cores, wants 0.25 cores, limit 0.25"
    # Same snapshot, same answer: replay is pure.
    again = replay(NodePolicy(), 4.0, 0.2, inputs)
    assert list(again.allocation_mcpu) == list(alloc)


def test_replay_with_the_strict_bound_trims_by_request_weight() -> None:
    # Two pods want 1.1 and 0.44 on 1 core of shareable CPU; strict (1.0) the bound is 1 core,
    # shared by NSW over requests 0.3 : 0.1 with floors at the requests: 0.75 and 0.25.
    inputs = NodeInputs.build(
        ["a", "b"], [1, 1], request=[0.3, 0.1], limit=[2.0, 2.0], signals=Signals.build([1.0, 0.4])
    )
    plan = replay(NodePolicy(limit_overcommit=1.0), 1.0, 0.0, inputs)
    assert list(plan.allocation_mcpu) == [750, 250]
    assert plan.trimmed.all() and "node limits at the 1× bound (1.00 cores)" in plan.reason(0)
    loose = replay(NodePolicy(), 1.0, 0.0, inputs)
    assert list(loose.allocation_mcpu) == [1000, 440]  # 1.1 capped at the node's 1 core


def test_replay_of_an_overcommitted_node_is_infeasible() -> None:
    # Requests 2 + 2 cores against a bound of 2 × (2 − 0.5): the limits stay at the floors.
    inputs = NodeInputs.build(
        ["a", "b"], [1, 1], request=[2.0, 2.0], limit=[2.0, NAN], signals=Signals.build([0.4, 0.1])
    )
    plan = replay(NodePolicy(), 2.0, 0.5, inputs)
    assert plan.infeasible
    assert (
        plan.infeasible_message == "requests of the managed pods (4.00 cores) exceed the bound (3.00 cores)"
    )
    assert list(plan.allocation_mcpu) == [2000, 2000]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"request": [0.1]}, r"request has shape \(1,\), expected \(2,\)"),
        ({"usage": [0.1, -1.0]}, r"usage\[1\] = -1.0 must be finite and >= 0"),
        ({"limit": [math.inf, 1.0]}, r"limit\[0\] = inf"),
        ({"usage": [0.1]}, r"signals are for 1 pods, expected 2"),
    ],
)
def test_bad_inputs_name_the_array_and_index(kwargs: dict[str, list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        if "usage" in kwargs:
            kwargs = {"signals": Signals.build(kwargs["usage"])}  # type: ignore[dict-item]
        NodeInputs.build(["a", "b"], [1, 1], **kwargs)  # type: ignore[arg-type]


def test_bad_qos_and_duplicate_uids() -> None:
    with pytest.raises(ValueError, match=r"qos\[1\] = 7 is not a QoS code"):
        NodeInputs.build(["a", "b"], [1, 7])
    with pytest.raises(ValueError, match="duplicate pod UIDs"):
        NodeInputs.build(["a", "a"], [1, 1])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_cpu": 0.0}, "min_cpu"),
        ({"max_cpu": 0.005}, "max_cpu"),
        ({"limit_overcommit": 0.5}, "limit_overcommit"),
        ({"probe_min_ratio": 3.0, "probe_max_ratio": 2.0}, "probe_max_ratio"),
        ({"headroom_ratio": -1.0}, "headroom_ratio"),
        ({"protected_share": 1.5}, "protected_share"),
        ({"lower_after_s": math.nan}, "lower_after_s"),
    ],
)
def test_policy_rejects_out_of_range_values(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        NodePolicy(**kwargs)  # type: ignore[arg-type]


def test_empty_node() -> None:
    plan = replay(NodePolicy(), 2.0, 0.0, NodeInputs.build([], []))
    assert plan.capacity_mcpu == 2000
    assert plan.allocation_mcpu.size == 0
    assert plan.objective == 0.0
