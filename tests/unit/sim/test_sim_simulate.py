"""End to end: `simulate` is deterministic, and `mbcas simulate` writes the report, plots and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_sim import write_scenario

from mbcas.cli.main import main
from mbcas.sim import load_scenario, simulate
from mbcas.sim.policies import POLICY_NAMES

KEYS = {
    "utilization",
    "throttled_share",
    "stall_share",
    "resizes_per_pod_hour",
    "reaction_time_s",
    "jain",
    "nsw",
}


def test_same_seed_same_results_other_seed_differs(tmp_path: Path) -> None:
    sc = load_scenario(write_scenario(tmp_path / "tiny.json"))
    a = simulate(sc, seed=4).results
    b = simulate(sc, seed=4).results
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    c = simulate(sc, seed=5).results
    assert c["policies"]["mbcas"]["utilization"] != a["policies"]["mbcas"]["utilization"]


def test_cli_writes_report_plots_and_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = write_scenario(tmp_path / "tiny.json")
    out = tmp_path / "report"
    assert main(["simulate", "--scenario", str(scenario), "--seed", "3", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["scenario"] == "tiny" and results["seed"] == 3
    assert list(results["policies"]) == list(POLICY_NAMES)
    for metrics in results["policies"].values():
        assert metrics.keys() >= KEYS
    report = (out / "report.md").read_text(encoding="utf-8")
    for png in ("allocations.png", "throttling.png", "nsw.png"):
        assert (out / png).stat().st_size > 1000
        assert f"]({png})" in report
    assert "| mbcas |" in report
    printed = capsys.readouterr().out
    assert "mbcas" in printed and "reaction p50" in printed


def test_cli_json_output_and_policy_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = write_scenario(tmp_path / "tiny.json")
    assert main(["simulate", "--scenario", str(scenario), "--policies", "static,mbcas", "-o", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert list(results["policies"]) == ["static", "mbcas"]


def test_cli_list_names_the_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--list"]) == 0
    out = capsys.readouterr().out
    assert "contention" in out and "spike" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--scenario", "no-such-thing"],
        ["simulate"],
        ["simulate", "--scenario", "spike", "--policies", "static,bogus"],
    ],
)
def test_cli_errors_exit_2_with_a_message(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "mbcas simulate:" in capsys.readouterr().err
