"""The agent/controller contract: settings and their cross-rules, the managed limit, "applied",
staleness, the write rule, and that the agent's and the controller's verdicts agree."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbcas.api.contract import (
    ContractSettings,
    carries,
    check_planner_bands,
    is_stale,
    managed_limit_mcpu,
    needs_refresh,
    plan_writes,
)
from mbcas.api.models import Mode, PodAllocationSpec
from mbcas.api.settings import validate_known
from mbcas.controller.decide import decide
from mbcas.kube.pods import PodInfo
from mbcas.kube.podview import PodView
from mbcas.policy.ledger import DecisionLedger, Written
from mbcas.policy.resize import ResizeGate, ResizeRules
from mbcas.policy.resize_split import ContainerResources

UID = "11111111-2222-3333-4444-555555555555"
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


# ---------------------------------------------------------------------------- settings


def test_refresh_must_be_shorter_than_staleness_and_the_error_names_both() -> None:
    with pytest.raises(ValueError, match=r"contract\.refresh_s = 120 .*contract\.staleness_s = 120"):
        ContractSettings(refresh_s=120, staleness_s=120)
    assert ContractSettings(refresh_s=30, staleness_s=40).refresh_s == 30


def test_planner_bands_must_be_at_least_the_deadband_and_the_error_names_both() -> None:
    contract = ContractSettings(deadband_ratio=0.05, deadband_mcpu=10)
    check_planner_bands(contract, raise_band=0.05, lower_band=0.25)
    with pytest.raises(ValueError, match=r"planner\.raise_band = 0.04 must be >= contract\.deadband_ratio"):
        check_planner_bands(contract, raise_band=0.04, lower_band=0.25)
    with pytest.raises(ValueError, match=r"planner\.lower_band = 0.01 must be >= contract\.deadband_ratio"):
        check_planner_bands(contract, raise_band=0.1, lower_band=0.01)


def test_unknown_keys_are_returned_not_fatal_but_bad_values_are() -> None:
    contract, unknown = validate_known(ContractSettings, {"staleness_s": 300, "stalenes_s": 1})
    assert contract.staleness_s == 300 and unknown == ("stalenes_s",)
    with pytest.raises(ValueError, match="staleness_s"):
        validate_known(ContractSettings, {"staleness_s": -1, "typo": 1})


# ---------------------------------------------------------------------------- managed limit


def _c(name: str, req: int | None, lim: int | None, *, restart: bool = False) -> ContainerResources:
    return ContainerResources(name, req, lim, cpu_restart_required=restart)


@pytest.mark.parametrize(
    ("containers", "allow_restart", "expected"),
    [
        ([_c("app", 100, 400)], False, 400),
        # A container left alone without a limit: the pod's CPU is unbounded, the split refuses it.
        ([_c("app", 100, 400), _c("sidecar", None, None)], False, None),
        ([_c("app", 100, 400), _c("log", 50, 100)], False, 500),
        # RestartContainer left alone, but its limit is part of the pod's (issue 14 item 1).
        ([_c("app", 100, 400), _c("db", 100, 800, restart=True)], False, 1200),
        ([_c("app", 100, 400), _c("db", 100, 800, restart=True)], True, 1200),
        ([_c("app", 100, None)], False, None),  # a participant without a limit: none
        ([_c("db", 100, 800, restart=True)], False, None),  # nobody can take part
    ],
)
def test_managed_limit_is_the_pods_whole_limit(
    containers: list[ContainerResources], allow_restart: bool, expected: int | None
) -> None:
    assert managed_limit_mcpu(containers, allow_restart=allow_restart) == expected


def test_pod_info_carries_the_managed_limit_for_both_restart_rules() -> None:
    body: dict[str, Any] = {
        "metadata": {"namespace": "shop", "name": "web", "uid": UID},
        "spec": {
            "containers": [
                {"name": "app", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "400m"}}},
                {"name": "sidecar"},
                {
                    "name": "db",
                    "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "800m"}},
                    "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "RestartContainer"}],
                },
            ]
        },
    }
    pod = PodInfo.from_body(body)
    assert pod.limit_mcpu is None  # the sidecar has no limit: the pod as a whole is unlimited
    # ... so no limit MBCAS gives the others bounds it: not managed either way.
    assert pod.managed_limit_mcpu(allow_restart=False) is None
    assert pod.managed_limit_mcpu(allow_restart=True) is None
    assert pod.split_floor_mcpu(allow_restart=False) is None
    body["spec"]["containers"][1]["resources"] = {"limits": {"cpu": "50m"}}  # now it takes part
    pod = PodInfo.from_body(body)
    assert pod.limit_mcpu == 1250
    assert pod.managed_limit_mcpu(allow_restart=False) == 1250  # db's 800m held, part of it
    assert pod.managed_limit_mcpu(allow_restart=True) == 1250
    assert pod.split_floor_mcpu(allow_restart=False) == 800 + 100 + 50
    assert pod.split_floor_mcpu(allow_restart=True) == 100 + 50 + 100


# ---------------------------------------------------------------------------- applied, stale, refresh


def test_carries_is_the_deadband_around_the_current_limit() -> None:
    contract = ContractSettings(deadband_ratio=0.05, deadband_mcpu=10)
    assert carries(contract, 700, 735) and not carries(contract, 700, 736)
    assert carries(contract, 100, 110) and not carries(contract, 100, 111)
    assert not carries(contract, None, 700)


def test_staleness_both_ways() -> None:
    contract = ContractSettings(staleness_s=60, refresh_s=30, max_future_skew_s=5)
    assert not is_stale(contract, 100.0, 159.0)
    assert is_stale(contract, 100.0, 161.0)
    assert not is_stale(contract, 104.0, 100.0)  # 4 s ahead: skew, tolerated
    assert is_stale(contract, 106.0, 100.0)


def test_refresh_only_unapplied_enforce_decisions_once_refresh_s_old() -> None:
    contract = ContractSettings(refresh_s=60)
    kw: dict[str, Any] = {"enforce": True, "decision_mcpu": 700, "age_s": 60.0}
    assert needs_refresh(contract, managed_limit_mcpu=400, **kw)
    assert not needs_refresh(contract, managed_limit_mcpu=710, **kw)  # applied (within the deadband)
    assert not needs_refresh(contract, managed_limit_mcpu=400, **{**kw, "age_s": 59.0})
    assert not needs_refresh(contract, managed_limit_mcpu=400, **{**kw, "enforce": False})


# ---------------------------------------------------------------------------- the write rule


def _written(mcpu: int, mode: str = "enforce", at: float = 0.0) -> Written:
    return Written("shop", "p", mcpu, mode, at)


def test_write_rule_creates_updates_refreshes_and_deletes() -> None:
    contract = ContractSettings(refresh_s=60)
    uids = ("new", "same", "moved", "mode", "stale", "observed", "gone-from-plan")
    written = {
        "same": _written(500),
        "moved": _written(500),
        "mode": _written(500, "recommend"),
        "stale": _written(500, at=0.0),
        "observed": _written(500),
        "gone-from-plan": _written(500),
        "left-the-node": _written(500),
    }
    plan = plan_writes(
        contract,
        100.0,
        uids=uids,
        decision_mcpu=[300, 500, 600, 500, 500, 500, -1],
        modes=[Mode.ENFORCE, Mode.ENFORCE, Mode.ENFORCE, Mode.ENFORCE, Mode.ENFORCE, None, Mode.ENFORCE],
        managed_limit_mcpu=[-1, 500, 500, 500, 300, 500, 500],
        written={**written, "same": _written(500, at=90.0)},
    )
    assert [(uids[u.index], u.mcpu, u.refresh) for u in plan.upserts] == [
        ("new", 300, False),
        ("moved", 600, False),
        ("mode", 500, False),
        ("stale", 500, True),  # unchanged, not applied (limit 300), 100 s old
    ]
    assert set(plan.deletes) == {"observed", "gone-from-plan", "left-the-node"}
    assert len(plan) == 7


def test_write_rule_puts_cuts_first_so_a_controller_stopped_part_way_keeps_the_bound() -> None:
    plan = plan_writes(
        ContractSettings(),
        0.0,
        uids=("raise", "cut", "new", "cut-too"),
        decision_mcpu=[800, 300, 400, 100],
        modes=[Mode.ENFORCE] * 4,
        managed_limit_mcpu=[400, 600, -1, 200],
        written={},
    )
    assert [u.index for u in plan.upserts] == [1, 3, 0, 2]


def test_write_rule_writes_nothing_at_steady_state() -> None:
    plan = plan_writes(
        ContractSettings(),
        1e6,
        uids=("a", "b"),
        decision_mcpu=np.array([500, 700]),
        modes=[Mode.ENFORCE, Mode.RECOMMEND],
        managed_limit_mcpu=np.array([505, 100]),  # a: applied within the band; b: recommend only
        written={"a": _written(500), "b": _written(700, "recommend")},
    )
    assert len(plan) == 0


def test_write_rule_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="one value for each of 2 pods"):
        plan_writes(
            ContractSettings(), 0.0, uids=("a", "b"), decision_mcpu=[1], modes=[None, None],
            managed_limit_mcpu=[1, 1], written={},
        )  # fmt: skip


def test_ledger_restores_what_the_api_holds_and_seeds_the_planner_on_its_clock() -> None:
    ledger = DecisionLedger()
    ledger.restore({"a": _written(700, at=1000.0)}, mono_now=50.0, wall_now=1030.0)
    assert ledger.written["a"].mcpu == 700
    alloc, at = ledger.aligned(("a", "b"))
    assert alloc.tolist() == [700, -1]
    assert at[0] == 20.0  # decided 30 s ago, on the planner's clock
    ledger.record(("a", "b"), np.array([700, 300]), np.array([20.0, 50.0]))
    assert ledger.decision_of("b") == 300 and ledger.decision_of("zzz") is None
    ledger.deleted("a")
    assert "a" not in ledger.written


# ---------------------------------------------------------------------------- agreement


def _pod(limit_mcpu: int) -> PodView:
    cpu = f"{limit_mcpu}m"
    return PodView.from_body(
        {
            "metadata": {"namespace": "shop", "name": "web", "uid": UID, "generation": 1},
            "spec": {
                "nodeName": "n1",
                "containers": [
                    {"name": "app", "resources": {"requests": {"cpu": "10m"}, "limits": {"cpu": cpu}}},
                ],
            },
            "status": {
                "qosClass": "Burstable",
                "observedGeneration": 1,
                "containerStatuses": [{"name": "app", "resources": {"limits": {"cpu": cpu}}}],
            },
        }
    )


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(20, 8000),
    decision=st.integers(20, 8000),
    ratio=st.floats(0.0, 0.3),
    mcpu=st.integers(1, 100),
    age=st.floats(0.0, 3000.0),
)
def test_the_agent_leaves_alone_exactly_what_the_controller_leaves_alone(
    limit: int, decision: int, ratio: float, mcpu: int, age: float
) -> None:
    """Whatever the shared settings, a decision the agent counts as applied is one the controller
    neither resizes nor refuses as stale, and one it does not is one the controller would act on
    (so the agent keeps it fresh)."""
    contract = ContractSettings(deadband_ratio=ratio, deadband_mcpu=mcpu, staleness_s=120, refresh_s=60)
    view = _pod(limit)
    info = PodInfo.from_body(view.body)
    managed = info.managed_limit_mcpu(allow_restart=contract.allow_restart)
    assert managed == limit
    spec = PodAllocationSpec.model_validate(
        {
            "podName": "web",
            "podUID": UID,
            "nodeName": "n1",
            "cpuLimit": f"{decision}m",
            "reason": "r",
            "decidedAt": NOW - dt.timedelta(seconds=age),
        }
    )
    verdict = decide(
        spec, view, ResizeGate(ResizeRules()), now=NOW.timestamp(), now_mono=0.0, contract=contract
    )
    applied = carries(contract, managed, decision)
    if applied:
        assert verdict.resize_to_mcpu is None and verdict.reason in ("Deadband", "Applied"), verdict
        assert not needs_refresh(
            contract, enforce=True, decision_mcpu=decision, managed_limit_mcpu=managed, age_s=age
        )
    else:
        stale = is_stale(contract, spec.decided_at.timestamp(), NOW.timestamp())
        assert (verdict.reason == "Stale") if stale else (verdict.resize_to_mcpu is not None), verdict
        assert needs_refresh(
            contract, enforce=True, decision_mcpu=decision, managed_limit_mcpu=managed, age_s=max(age, 60.0)
        )
