"""The controller's configuration: nested resize rules from env and flags, no way to set the
contract from its environment, and the shared ConfigMap's contract section read live."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from mbcas.api.contract import ContractSettings
from mbcas.cli.controller import _config, _overrides, register
from mbcas.controller.config import ControllerConfig
from mbcas.controller.shared import SharedSettings
from mbcas.kube.errors import ApiUnavailableError, NotFoundError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("MBCAS_CONTROLLER_")]:
        monkeypatch.delenv(name)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["controller", *argv])


def test_rules_are_nested_in_env_and_flags_override_one_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_CONTROLLER_RULES__MIN_INTERVAL_S", "3")
    monkeypatch.setenv("MBCAS_CONTROLLER_RULES__BURST", "4")
    config = _config(_overrides(_args("--max-step-mcpu", "500", "--resync", "7")))
    assert (config.rules.min_interval_s, config.rules.burst, config.rules.max_step_mcpu) == (3.0, 4, 500)
    assert config.resync_s == 7.0
    assert config.config_map_ref() == ("mbcas-system", "mbcas-config")
    assert _config(_overrides(_args("--config-map", ""))).config_map_ref() is None


@pytest.mark.parametrize(
    ("env", "where"),
    [
        ("MBCAS_CONTROLLER_DEADBAND_RATIO", "contract.deadband_ratio in the shared ConfigMap"),
        ("MBCAS_CONTROLLER_STALENESS_S", "contract.staleness_s in the shared ConfigMap"),
        ("MBCAS_CONTROLLER_ALLOW_RESTART", "contract.allow_restart in the shared ConfigMap"),
        ("MBCAS_CONTROLLER_MIN_INTERVAL_S", "MBCAS_CONTROLLER_RULES__MIN_INTERVAL_S"),
        ("MBCAS_CONTROLLER_TYPO", "not a setting"),
    ],
)
def test_an_env_variable_that_sets_nothing_is_an_error_saying_where_the_setting_is(
    monkeypatch: pytest.MonkeyPatch, env: str, where: str
) -> None:
    monkeypatch.setenv(env, "1")
    with pytest.raises(ValueError, match=f"{env} is not a setting") as info:
        ControllerConfig()
    assert where in str(info.value)


def test_bad_rules_name_the_field() -> None:
    with pytest.raises(ValueError, match="failure_cooldown_max_s"):
        ControllerConfig(rules={"failure_cooldown_s": 10, "failure_cooldown_max_s": 1})  # type: ignore[arg-type]


class _Kube:
    """Serves one ConfigMap body (or an error) and counts the reads."""

    def __init__(self) -> None:
        self.body: dict[str, Any] | Exception = NotFoundError("not found", status=404)
        self.reads = 0

    def request_json(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.reads += 1
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


def _doc(text: str) -> dict[str, Any]:
    return {"data": {"config.yaml": text}}


def test_the_contract_is_read_live_and_the_last_good_copy_kept(caplog: pytest.LogCaptureFixture) -> None:
    kube, clock = _Kube(), [0.0]
    shared = SharedSettings(kube, ("mbcas-system", "mbcas-config"), poll_s=10, mono=lambda: clock[0])  # type: ignore[arg-type]
    assert shared.current() == ContractSettings()  # no ConfigMap: the defaults, as for the agent
    kube.body = _doc(
        "mode: enforce\nplanner: {min_cpu: 1}\ncontract: {deadband_ratio: 0.08, staleness_s: 300}\n"
    )
    assert shared.current().deadband_ratio == 0.05, "read at most every poll_s"
    clock[0] = 10.0
    assert (shared.current().deadband_ratio, shared.current().staleness_s) == (0.08, 300.0)
    assert kube.reads == 2
    kube.body = _doc("contract: {refresh_s: 400}\n")  # refresh longer than staleness: refused
    clock[0] = 20.0
    assert shared.current().deadband_ratio == 0.08
    assert "contract.refresh_s = 400 must be shorter than contract.staleness_s" in caplog.text
    kube.body = ApiUnavailableError("down", status=503)
    clock[0] = 30.0
    assert shared.current().staleness_s == 300.0
    kube.body = _doc("contract: {deadband_ratio: 0.06, deadbnd_mcpu: 3}\n")
    clock[0] = 40.0
    assert shared.current().deadband_ratio == 0.06  # an unknown key is a warning, the rest applies
    assert "contract.deadbnd_mcpu" in caplog.text
    # A document the agent refuses (here: a contract deadband wider than the planner's band) is
    # refused here too, so the two never act on different contracts.
    kube.body = _doc("contract: {deadband_ratio: 0.3}\n")
    clock[0] = 50.0
    assert shared.current().deadband_ratio == 0.06
    assert "planner.raise_band = 0.25 must be >= contract.deadband_ratio" in caplog.text
