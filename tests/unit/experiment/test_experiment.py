"""The real-kernel experiment's pure parts: watch-stream parsing, pod bodies and measurements.

The experiment itself needs root, the control plane and minutes of real CPU; it is run by
``make evaluate``, not by the unit tests.
"""

from __future__ import annotations

import json

import pytest

from mbcas.experiment.cluster import DEMAND_ANNOTATION, iter_watch_events, pod_body
from mbcas.experiment.measure import KernelDelta
from mbcas.experiment.report import compare, format_runs, gap_closure
from mbcas.experiment.scenarios import EXPERIMENTS, ExperimentPod, ExperimentScenario
from mbcas.experiment.summary import applied_limit, generation_bumps, summarise


def _pod(name: str, generation: int, limit: str | None) -> dict[str, object]:
    status: dict[str, object] = {}
    if limit is not None:
        status = {"containerStatuses": [{"resources": {"limits": {"cpu": limit}}}]}
    return {"metadata": {"name": name, "generation": generation}, "status": status}


def test_watch_stream_of_pretty_printed_objects_is_split_into_events() -> None:
    a = {"type": "ADDED", "object": _pod("a", 1, "150m")}
    b = {"type": "MODIFIED", "object": _pod("a", 2, "1")}
    text = json.dumps(a, indent=2) + "\n" + json.dumps(b, indent=4) + "\n"
    # Feed it in awkward chunks (as lines arrive) with a trailing partial object.
    lines = [*text.splitlines(keepends=True), '{"type": "MODI']
    events = list(iter_watch_events(lines))
    assert [t for t, _ in events] == ["ADDED", "MODIFIED"]
    assert applied_limit(events[1][1]) == 1.0


def test_applied_limit_reads_the_reported_resources() -> None:
    assert applied_limit(_pod("a", 1, "535m")) == pytest.approx(0.535)
    assert applied_limit(_pod("a", 1, None)) is None


def test_generation_bumps_counts_resizes_inside_the_window() -> None:
    events = [
        (0.0, "ADDED", _pod("a", 1, "150m")),
        (1.0, "MODIFIED", _pod("a", 2, "150m")),  # before the window
        (5.0, "MODIFIED", _pod("a", 2, "300m")),  # status only: no bump
        (6.0, "MODIFIED", _pod("a", 3, "300m")),
        (7.0, "MODIFIED", _pod("b", 1, "100m")),  # first sight of b: no bump
        (8.0, "MODIFIED", _pod("b", 2, "100m")),
        (20.0, "MODIFIED", _pod("a", 4, "300m")),  # after the window
    ]
    assert generation_bumps(events, 2.0, 10.0) == {"a": 1, "b": 1}


def test_pod_body_is_burstable_with_limit_equal_request_and_the_demand_annotation() -> None:
    body = pod_body(ExperimentPod("web", 300, 0.6), "ns")
    res = body["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "300m"}, "limits": {"cpu": "300m"}}  # no memory: Burstable
    assert body["metadata"]["annotations"] == {DEMAND_ANNOTATION: "0.6"}


def test_summary_measures_on_a_hand_made_run() -> None:
    # Two pods on a 1-core node for a 10 s window (t = 100..110). Pod "a" wants 0.2 then, from
    # t = 104 (changed_at), 0.8; pod "b" 0.1 throughout. Its applied limit rises to 0.5 at 105.5
    # and to 0.75 (>= 0.9 × 0.8 = 0.72) at 107: reaction 3 s, first raise 1.5 s.
    scenario = ExperimentScenario(
        "s", "", (ExperimentPod("a", 200, 0.2, 0.8), ExperimentPod("b", 100, 0.1)), 0, 10, 4
    )
    pod_events = [
        (99.0, "ADDED", _pod("a", 1, "200m")),
        (99.0, "ADDED", _pod("b", 1, "100m")),
        (105.0, "MODIFIED", _pod("a", 2, "200m")),
        (105.5, "MODIFIED", _pod("a", 2, "500m")),
        (106.5, "MODIFIED", _pod("a", 3, "500m")),
        (107.0, "MODIFIED", _pod("a", 3, "750m")),
    ]
    pa_events = [(104.5, "MODIFIED", {"spec": {}}), (106.0, "MODIFIED", {"spec": {}}), (50.0, "ADDED", {})]
    # One series row per second, t = 1..10: demand a = 0.2 for t < 4, else 0.8 -> 3×0.2 + 7×0.8 = 6.2
    # core-seconds; b = 10 × 0.1 = 1. Usage 4 + 1 = 5 core-seconds -> unserved (7.2 - 5)/7.2.
    series = [{"t": float(t)} for t in range(1, 11)]
    result = summarise(
        scenario,
        "mbcas",
        window=10.0,
        deltas={"a": KernelDelta(4.0, 2.0, 3.0, 3.5), "b": KernelDelta(1.0, 0.0, 0.5, 0.5)},
        pod_events=pod_events,
        pa_events=pa_events,
        start=100.0,
        end=110.0,
        changed_at=104.0,
        changed_pod=scenario.pods[0],
        node_cpu=1.0,
        series=series,
        quota_file="q",
    )
    assert result["utilization"] == pytest.approx(0.5)  # 5 core-s over 10 s × 1 core
    assert result["throttled_s"] == pytest.approx(2.0)
    assert result["psi_full_s"] == pytest.approx(3.5)
    assert result["unserved_share"] == pytest.approx((7.2 - 5.0) / 7.2)
    assert result["ideal_unserved_share"] == 0.0  # 0.3 then 0.9 cores wanted on 1 core
    assert result["reaction_time_s"] == pytest.approx(3.0)
    assert result["first_response_s"] == pytest.approx(1.5)
    assert result["resizes"] == 2  # generations 1 -> 2 -> 3 of pod a inside the window
    assert result["podallocation_writes"] == 2  # the ADDED at t = 50 is outside
    # (2 resizes + 2 writes) / (2 pods × 10/60 min) = 12 per pod-minute.
    assert result["api_writes_per_pod_minute"] == pytest.approx(12.0)


def test_packaged_experiments_are_short_and_oversubscribe_where_they_say() -> None:
    assert set(EXPERIMENTS) == {"spike", "contention", "noisy-neighbour"}
    for s in EXPERIMENTS.values():
        assert s.warmup_s + s.measure_s <= 120  # 2-core machine: keep runs short
    for name in ("contention", "noisy-neighbour"):
        assert sum(p.demand for p in EXPERIMENTS[name].pods) > 1.0  # more than the 1-core node
    batch = EXPERIMENTS["noisy-neighbour"].pods[0]
    assert batch.demand > 4 * batch.request_m / 1000  # the neighbour wants far above its request
    assert EXPERIMENTS["spike"].change_at_s is not None


def test_gap_closure_is_against_the_static_run_of_the_same_scenario() -> None:
    # Static leaves 0.40 unserved, the best possible is 0.20: MBCAS at 0.25 closed 0.75 of the gap.
    def run(scenario: str, mode: str, unserved: float, ideal: float) -> dict[str, object]:
        return {
            "scenario": scenario, "mode": mode, "utilization": 0.9, "throttled_s": 10.0,
            "psi_full_s": 5.0, "unserved_share": unserved, "ideal_unserved_share": ideal,
            "reaction_time_s": None, "first_response_s": None, "resizes": 1,
            "podallocation_writes": 2, "api_writes_per_pod_minute": 0.5,
        }  # fmt: skip

    result = {
        "runs": [
            run("contention", "static", 0.40, 0.20),
            run("contention", "mbcas", 0.25, 0.20),
            run("noisy-neighbour", "mbcas", 0.25, 0.20),  # no static run: undefined
            run("spike", "static", 0.21, 0.20),
            run("spike", "mbcas", 0.20, 0.20),  # a gap < 0.02: undefined
        ]
    }
    closures = [gap_closure(result, r) for r in result["runs"]]
    assert closures[0] == pytest.approx(0.0) and closures[1] == pytest.approx(0.75)
    assert closures[2:] == [None, None, None]
    assert "| contention | mbcas | 0.900 | 10.0 | 5.0 | 0.250 | 0.200 | 0.75 |" in format_runs(result)
    assert any("gap closure 0.75 (target >= 0.9 under contention: missed)" in c for c in compare(result))
    result["runs"][0]["ideal_unserved_share"] = result["runs"][1]["ideal_unserved_share"] = 0.0
    assert any("gap closure 0.38 (target >= 0.8 without contention: missed)" in c for c in compare(result))
