"""Process settings from the environment (:class:`mbcas.api.settings.ProcessSettings`): the prefix,
``__`` for nested settings, case-insensitive names, alias variables (``NODE_NAME``), JSON for lists,
mappings and sections, keyword arguments over the environment, empty strings kept, stray variables
refused, and errors that name the setting. The rules are pydantic-settings' defaults, which MBCAS
used before it read the environment itself; these tests passed against both."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from mbcas.agent.config import AgentConfig
from mbcas.api.live import RolloutMode
from mbcas.controller.config import ControllerConfig
from mbcas.policy.resize import ResizeRules

_ALIASES = {"node", "node_name", "namespace", "pod_namespace"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().startswith("mbcas_") or name.lower() in _ALIASES:
            monkeypatch.delenv(name)


# ---------------------------------------------------------------------------- names


def test_a_setting_is_its_prefixed_upper_case_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_AGENT_TICK_S", "2.5")
    monkeypatch.setenv("MBCAS_CONTROLLER_WORKERS", "3")
    monkeypatch.setenv("MBCAS_CONTROLLER_LEADER_ELECTION", "false")
    assert AgentConfig().tick_s == 2.5
    controller = ControllerConfig()
    assert (controller.workers, controller.leader_election) == (3, False)
    assert "tick_s" in AgentConfig().model_fields_set


def test_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("mbcas_agent_tick_s", "3")
    monkeypatch.setenv("Mbcas_Agent_Metrics_Port", "0")
    config = AgentConfig()
    assert (config.tick_s, config.metrics_port) == (3.0, 0)


def test_one_process_does_not_read_the_others_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_CONTROLLER_KUBECONFIG", "/ctl")
    assert AgentConfig().kubeconfig is None
    monkeypatch.setenv("MBCAS_AGENT_KUBECONFIG", "/agent")
    assert ControllerConfig().kubeconfig == "/ctl"


def test_alias_variables_in_the_order_the_field_lists_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "from-downward-api")
    monkeypatch.setenv("POD_NAMESPACE", "mbcas-system")
    config = AgentConfig()
    assert (config.node, config.namespace) == ("from-downward-api", "mbcas-system")
    monkeypatch.setenv("MBCAS_AGENT_NODE", "from-prefix")
    assert AgentConfig().node == "from-prefix"
    # The first choice is the bare field name, read without the prefix (pydantic-settings did).
    monkeypatch.setenv("NODE", "bare")
    assert AgentConfig().node == "bare"
    monkeypatch.setenv("node_name", "ignored")  # case-insensitive, but a later choice
    assert AgentConfig().node == "bare"


def test_an_alias_only_field_has_no_prefixed_field_name_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # The controller's namespace has no alias: its variable is the prefixed name only.
    monkeypatch.setenv("NAMESPACE", "not-read")
    assert ControllerConfig().namespace is None


# ---------------------------------------------------------------------------- nested and JSON


def test_nested_settings_take_double_underscores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_CONTROLLER_RULES__MIN_INTERVAL_S", "3")
    monkeypatch.setenv("MBCAS_CONTROLLER_RULES__BURST", "4")
    monkeypatch.setenv("MBCAS_AGENT_LIVE__MODE", "recommend")
    monkeypatch.setenv("MBCAS_AGENT_LIVE__PLANNER__MAX_CPU", "1500m")
    monkeypatch.setenv("mbcas_agent_live__contract__allow_restart", "true")
    rules = ControllerConfig().rules
    assert (rules.min_interval_s, rules.burst) == (3.0, 4)
    live = AgentConfig().live
    assert live.mode is RolloutMode.RECOMMEND
    assert live.planner.max_cpu == pytest.approx(1.5)
    assert live.contract.allow_restart is True


def test_a_list_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_AGENT_LIVE__EXCLUDE_NAMESPACES", '["batch", "Lab"]')
    assert AgentConfig().live.exclude_namespaces == ("batch", "Lab")


def test_a_list_that_is_not_json_is_an_error_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_AGENT_LIVE__EXCLUDE_NAMESPACES", "batch,lab")
    with pytest.raises(ValueError, match="live") as info:
        AgentConfig()
    assert not isinstance(info.value, ValidationError)


def test_a_mapping_takes_a_key_per_variable_lower_cased_or_json_as_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MBCAS_AGENT_LIVE__NAMESPACE_MODES__SHOP", "observe")
    assert AgentConfig().live.namespace_modes == {"shop": RolloutMode.OBSERVE}
    monkeypatch.delenv("MBCAS_AGENT_LIVE__NAMESPACE_MODES__SHOP")
    monkeypatch.setenv("MBCAS_AGENT_LIVE__NAMESPACE_MODES", '{"Lab": "recommend"}')
    assert AgentConfig().live.namespace_modes == {"Lab": RolloutMode.RECOMMEND}


def test_a_section_is_json_with_nested_variables_on_top(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_CONTROLLER_RULES", '{"BURST": 5, "min_interval_s": 1}')
    monkeypatch.setenv("MBCAS_CONTROLLER_RULES__MIN_INTERVAL_S", "9")
    rules = ControllerConfig().rules
    assert (rules.burst, rules.min_interval_s) == (5, 9.0)


def test_a_section_that_is_not_json_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_CONTROLLER_RULES", "burst=5")
    with pytest.raises(ValueError, match="rules"):
        ControllerConfig()


# ---------------------------------------------------------------------------- empty strings


def test_an_empty_value_is_kept_as_an_empty_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_AGENT_CONFIG_MAP", "")
    monkeypatch.setenv("MBCAS_AGENT_CGROUP_PREFIX", "")
    config = AgentConfig()
    assert config.config_map == ""
    assert config.config_map_ref() is None
    monkeypatch.setenv("MBCAS_AGENT_TICK_S", "")
    with pytest.raises(ValidationError, match="tick_s"):
        AgentConfig()


def test_an_empty_nested_list_is_a_string_and_an_empty_section_not_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MBCAS_AGENT_LIVE__EXCLUDE_NAMESPACES", "")
    with pytest.raises(ValidationError, match="exclude_namespaces"):
        AgentConfig()
    monkeypatch.delenv("MBCAS_AGENT_LIVE__EXCLUDE_NAMESPACES")
    monkeypatch.setenv("MBCAS_AGENT_LIVE", "")
    with pytest.raises(ValueError, match="live"):
        AgentConfig()


# ---------------------------------------------------------------------------- priority


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_AGENT_TICK_S", "5")
    monkeypatch.setenv("MBCAS_AGENT_ALLOCATABLE_CPU", "4")
    monkeypatch.setenv("NODE_NAME", "from-env")
    config = AgentConfig(tick_s=0.5, allocatable_cpu=None, node="from-kwarg")
    assert (config.tick_s, config.allocatable_cpu, config.node) == (0.5, None, "from-kwarg")
    assert AgentConfig(NODE_NAME="by-alias").node == "by-alias"  # type: ignore[call-arg]


def test_a_section_given_as_a_mapping_is_merged_over_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCAS_CONTROLLER_RULES__BURST", "4")
    monkeypatch.setenv("MBCAS_CONTROLLER_RULES__MIN_INTERVAL_S", "3")
    rules = ControllerConfig(rules={"min_interval_s": 1}).rules  # type: ignore[arg-type]
    assert (rules.min_interval_s, rules.burst) == (1.0, 4)
    # A model replaces the section whole.
    assert ControllerConfig(rules=ResizeRules(min_interval_s=1)).rules.burst == ResizeRules().burst


def test_validating_a_mapping_reads_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # pydantic validates a model with its own __init__ by calling it.
    monkeypatch.setenv("MBCAS_AGENT_TICK_S", "5")
    monkeypatch.setenv("MBCAS_AGENT_RESERVE_CPU", "1")
    config = AgentConfig.model_validate({"tick_s": 2})
    assert (config.tick_s, config.reserve_cpu) == (2.0, "1")


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("MBCAS_AGENT_REFRESH_S", "MBCAS_AGENT_REFRESH_S is not a setting: it is part of the contract"),
        ("MBCAS_AGENT_TYPO", "MBCAS_AGENT_TYPO is not a setting"),
    ],
)
def test_a_stray_variable_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: str, message: str
) -> None:
    monkeypatch.setenv(env, "1")
    with pytest.raises(ValueError, match=message):
        AgentConfig(node="n1")


@pytest.mark.parametrize(
    ("env", "value", "where"),
    [
        ("MBCAS_AGENT_TICK_S", "soon", "tick_s"),
        ("MBCAS_AGENT_METRICS_PORT", "70000", "metrics_port"),
        ("MBCAS_CONTROLLER_RULES__BURST", "0", r"rules\.burst"),
        ("MBCAS_CONTROLLER_RULES__BOGUS", "1", r"rules\.bogus"),
        ("MBCAS_AGENT_LIVE__PLANNER__MIN_CPU", "lots", r"live\.planner\.min_cpu"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, where: str
) -> None:
    monkeypatch.setenv(env, value)
    model = AgentConfig if env.startswith("MBCAS_AGENT_") else ControllerConfig
    with pytest.raises(ValidationError, match=where):
        model()


def test_unknown_keywords_are_refused_and_settings_are_frozen() -> None:
    with pytest.raises(ValidationError, match="bogus"):
        AgentConfig(bogus=1)  # type: ignore[call-arg]
    config = ControllerConfig()
    with pytest.raises(ValidationError, match="frozen"):
        config.workers = 3  # type: ignore[misc]


def test_the_processes_do_not_import_pydantic_settings() -> None:
    code = (
        "import sys, mbcas.cli.main, mbcas.cli.agent, mbcas.cli.controller, mbcas.cli.config, "
        "mbcas.agent.loop, mbcas.controller.main; "
        "assert 'pydantic_settings' not in sys.modules, 'pydantic_settings imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
