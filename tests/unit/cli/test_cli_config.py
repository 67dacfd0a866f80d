"""``mbcas config``: the settings reference is generated from the models and current, the default
config.yaml is the models' defaults, and ``check`` validates a file as the agent would."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mbcas.agent.config import LiveConfig
from mbcas.cli.config import MARKER, defaults_yaml, render_docs
from mbcas.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


def test_the_settings_reference_is_generated_from_the_models() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    _, sep, generated = text.partition(MARKER)
    assert sep, f"docs/configuration.md lost its marker line {MARKER!r}"
    assert generated.strip() == render_docs().strip(), (
        "docs/configuration.md is out of date: run `mbcas config docs --write docs/configuration.md`"
    )


def test_the_reference_names_every_setting() -> None:
    text = render_docs()
    for section in ("planner", "contract"):
        model = type(getattr(LiveConfig(), section))
        for name in model.model_fields:
            assert f"`{section}.{name}`" in text
    assert "`MBCAS_CONTROLLER_RULES__MIN_INTERVAL_S`" in text
    assert "`MBCAS_AGENT_TICK_S`" in text


def test_defaults_are_the_models_defaults() -> None:
    assert LiveConfig.model_validate(yaml.safe_load(defaults_yaml())) == LiveConfig()


def test_check_validates_as_the_agent_would(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("mode: recommend\ncontract: {staleness_s: 300}\nplanner: {max_cpus: 3}\n")
    assert main(["config", "check", str(good)]) == 0
    out = capsys.readouterr()
    assert "unknown key planner.max_cpus" in out.err and "valid (1 unknown key(s))" in out.out
    bad = tmp_path / "bad.yaml"
    bad.write_text("contract: {refresh_s: 200}\n")
    assert main(["config", "check", str(bad)]) == 2
    assert (
        "contract.refresh_s = 200 must be shorter than contract.staleness_s = 120" in capsys.readouterr().err
    )
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 2
