"""Scenario files: every packaged one loads, traces are seeded, bad files are rejected clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_sim import write_scenario

from mbcas.sim.scenario import ScenarioError, list_scenarios, load_scenario
from mbcas.sim.traces import generate_trace, parse_trace

REQUIRED = {
    "steady",
    "spike",
    "diurnal",
    "bursty",
    "noisy-neighbour",
    "many-small",
    "contention",
    "multi-node",
}


def test_all_required_scenarios_are_packaged_and_load() -> None:
    assert set(list_scenarios()) >= REQUIRED
    for name in list_scenarios():
        sc = load_scenario(name)
        assert sc.name == name
        d = sc.demand(0)
        assert d.shape == (sc.ticks, len(sc.pods))
        assert np.all(d >= 0) and np.all(np.isfinite(d))


def test_contention_scenario_really_oversubscribes_the_node() -> None:
    sc = load_scenario("contention")
    assert sc.demand(0).sum(axis=1).mean() > sc.capacities.sum()


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    sc = load_scenario("bursty")
    np.testing.assert_array_equal(sc.demand(5), sc.demand(5))
    assert not np.array_equal(sc.demand(5), sc.demand(6))


def test_step_spike_sets_the_level_exactly_without_noise() -> None:
    spec = parse_trace(
        {"kind": "steady", "level": 0.2, "spikes": [{"at_s": 3, "level": 1.5, "duration_s": 2}]}
    )
    trace = generate_trace(spec, 8, 1.0, np.random.default_rng(0))
    np.testing.assert_allclose(trace, [0.2, 0.2, 0.2, 1.5, 1.5, 0.2, 0.2, 0.2])


def test_diurnal_follows_the_sine() -> None:
    spec = parse_trace({"kind": "diurnal", "mean": 1.0, "amplitude": 0.5, "period_s": 4})
    trace = generate_trace(spec, 4, 1.0, np.random.default_rng(0))
    np.testing.assert_allclose(trace, [1.0, 1.5, 1.0, 0.5], atol=1e-12)


def test_noise_has_mean_one_and_the_requested_spread() -> None:
    spec = parse_trace({"kind": "steady", "level": 1.0, "noise": 0.1})
    trace = generate_trace(spec, 20000, 1.0, np.random.default_rng(1))
    assert trace.mean() == pytest.approx(1.0, abs=0.005)
    assert trace.std() == pytest.approx(0.1, rel=0.05)


def test_bursty_trace_is_heavy_tailed_above_base() -> None:
    spec = parse_trace(
        {"kind": "bursty", "base": 0.1, "rate_per_s": 0.05, "scale": 0.2, "alpha": 1.2, "burst_s": 5}
    )
    trace = generate_trace(spec, 5000, 1.0, np.random.default_rng(2))
    assert trace.min() == pytest.approx(0.1)
    assert trace.max() > 0.1 + 5 * 0.2  # a tail far above the typical burst height


def test_count_expands_pods_with_suffixes(tmp_path: Path) -> None:
    sc = load_scenario(
        write_scenario(
            tmp_path / "s.json",
            pods=[{"name": "x", "count": 3, "request": 0.1, "demand": {"kind": "steady", "level": 0.1}}],
        )
    )
    assert [p.name for p in sc.pods] == ["x-0", "x-1", "x-2"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"version": 2}, "version must be 1"),
        ({"colour": "red"}, "unknown keys"),
        ({"duration_s": -5}, "duration_s must be a number > 0"),
        ({"nodes": []}, "at least one node"),
        (
            {"pods": [{"name": "a", "request": 0.1, "demand": {"kind": "wavy", "level": 1}}]},
            "kind must be one of",
        ),
        (
            {"pods": [{"name": "a", "request": 0.1, "demand": {"kind": "steady"}}]},
            "missing 'level'",
        ),
        ({"pods": [{"name": "a", "request": 0, "demand": {"kind": "steady", "level": 1}}]}, "request"),
        (
            {
                "pods": [
                    {"name": "a", "node": "nope", "request": 0.1, "demand": {"kind": "steady", "level": 1}}
                ]
            },
            "unknown node",
        ),
    ],
)
def test_bad_scenarios_are_rejected_with_the_field(
    tmp_path: Path, override: dict[str, object], message: str
) -> None:
    path = write_scenario(tmp_path / "bad.json", **override)
    with pytest.raises(ScenarioError, match=message) as err:
        load_scenario(path)
    assert "bad.json" in str(err.value)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match="contention"):
        load_scenario("no-such-scenario")


def test_broken_json_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(path)


def test_packaged_files_declare_version_1() -> None:
    from mbcas.sim.scenario import SCENARIO_DIR

    for path in SCENARIO_DIR.glob("*.json"):
        assert json.loads(path.read_text(encoding="utf-8"))["version"] == 1
