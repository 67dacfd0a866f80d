"""The agent's configuration: defaults < MBCAS_AGENT_* env < flags, and the live ConfigMap (modes,
opt-in/out, CPU quantities as numbers or strings, clear errors naming the field, an invalid
ConfigMap ignored with the last good config kept)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
from agent_fakes import FakeKube, FakeNode, agent_on

from mbcas.agent.config import AgentConfig, LiveConfig, RolloutMode, load_live_yaml
from mbcas.agent.loop import NodeAgent
from mbcas.cli.agent import build_config, register
from mbcas.kube.errors import ApiUnavailableError, ForbiddenError, KubeError
from mbcas.policy.node_config import NodePolicy


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["agent", *argv])


# ---------------------------------------------------------------------------- AgentConfig


def test_agent_config_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    config = AgentConfig()
    assert config.node is None
    assert config.tick_s == 1.0
    assert config.reserve_cores == pytest.approx(0.2)
    assert config.config_map_ref() == ("mbcas-system", "mbcas-config")
    assert config.live == LiveConfig()
    assert config.live.mode is RolloutMode.ENFORCE


def test_agent_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "node-7")
    monkeypatch.setenv("MBCAS_AGENT_TICK_S", "2.5")
    monkeypatch.setenv("MBCAS_AGENT_RESERVE_CPU", "0.5")
    monkeypatch.setenv("MBCAS_AGENT_LIVE__MODE", "recommend")
    monkeypatch.setenv("MBCAS_AGENT_LIVE__PLANNER__MAX_CPU", "1500m")
    config = AgentConfig()
    assert config.node == "node-7"
    assert config.tick_s == 2.5
    assert config.reserve_cores == 0.5
    assert config.live.mode is RolloutMode.RECOMMEND
    assert config.live.planner.max_cpu == pytest.approx(1.5)


def test_flags_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "from-env")
    monkeypatch.setenv("MBCAS_AGENT_TICK_S", "5")
    monkeypatch.setenv("MBCAS_AGENT_LIVE__MODE", "recommend")
    config = build_config(
        _args(
            "--node", "from-flag", "--tick", "0.5", "--mode", "observe", "--max-cpu", "2", "--config-map", ""
        )
    )
    assert config.node == "from-flag"
    assert config.tick_s == 0.5
    assert config.live.mode is RolloutMode.OBSERVE
    assert config.live.planner.max_cpu == 2.0
    assert config.config_map_ref() is None
    # What no flag sets still comes from the environment.
    monkeypatch.setenv("MBCAS_AGENT_RESERVE_CPU", "300m")
    assert build_config(_args()).reserve_cpu == "300m"
    assert build_config(_args()).tick_s == 5.0


@pytest.mark.parametrize(
    ("env", "value", "field"),
    [
        ("MBCAS_AGENT_TICK_S", "0", "tick_s"),
        ("MBCAS_AGENT_RESERVE_CPU", "lots", "reserve_cpu"),
        ("MBCAS_AGENT_LIVE__MODE", "yolo", "mode"),
    ],
)
def test_bad_env_names_the_field(monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=field):
        AgentConfig()


def test_bad_config_map_reference() -> None:
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        AgentConfig(config_map="no-slash").config_map_ref()


# ---------------------------------------------------------------------------- LiveConfig


def test_modes_global_and_per_namespace() -> None:
    live = load_live_yaml("mode: recommend\nnamespace_modes: {shop: enforce, lab: observe}\n", LiveConfig())
    assert live.mode_for("shop") is RolloutMode.ENFORCE
    assert live.mode_for("lab") is RolloutMode.OBSERVE
    assert live.mode_for("anything-else") is RolloutMode.RECOMMEND


@pytest.mark.parametrize(
    ("text", "expected_cores"),
    [
        ("max_cpu: 3", 3.0),  # YAML int: cores
        ("max_cpu: 0.5", 0.5),  # YAML float: cores
        ("max_cpu: '3'", 3.0),
        ("max_cpu: 1500m", 1.5),
        ("max_cpu: '250m'", 0.25),
        ("max_cpu: 1.0005", 1.001),  # rounded up to whole millicores, as the apiserver does
        ("max_cpu: null", None),
    ],
)
def test_cpu_quantities_accept_numbers_as_cores(text: str, expected_cores: float | None) -> None:
    live = load_live_yaml(f"planner: {{{text}}}", LiveConfig())
    assert live.planner.max_cpu == (None if expected_cores is None else pytest.approx(expected_cores))


def test_every_cpu_field_accepts_numbers() -> None:
    live = load_live_yaml("planner: {min_cpu: 0.1, max_cpu: 2}\n", LiveConfig())
    policy = live.planner
    assert (policy.min_cpu, policy.max_cpu) == pytest.approx((0.1, 2.0))
    assert AgentConfig(reserve_cpu=0.25, allocatable_cpu=4).reserve_cpu == "250m"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("planner: {max_cpu: lots}", r"planner\.max_cpu: .*malformed CPU quantity 'lots'"),
        ("planner: {max_cpu: -1}", r"planner\.max_cpu: .*>= 0"),
        ("planner: {min_cpu: true}", r"planner\.min_cpu: .*got True"),
        ("planner: {min_cpu: [1]}", r"planner\.min_cpu: "),
        ("mode: yolo", r"mode: .*'observe', 'recommend' or 'enforce'"),
        ("namespace_modes: {shop: fast}", r"namespace_modes\.shop: "),
        ("planner: {headroom_ratio: -0.5}", r"planner\.headroom_ratio: .*greater than or equal to 0"),
        ("pod_selector: 'tier in (web)'", r"pod_selector: .*set-based requirement"),
        ("exclude_pod_selector: '=x'", r"exclude_pod_selector: .*malformed requirement"),
        ("planner: {min_cpu: 2, max_cpu: 1}", r"max_cpu"),  # NodePolicy: the hard maximum under the floor
        ("planner: {limit_overcommit: 0.5}", r"planner\.limit_overcommit: .*greater than or equal to 1"),
        (
            "contract: {refresh_s: 200}",
            r"contract\.refresh_s = 200 must be shorter than contract\.staleness_s",
        ),
        (
            "planner: {raise_band: 0.02}",
            r"planner\.raise_band = 0.02 must be >= contract\.deadband_ratio",
        ),
        (
            "contract: {deadband_ratio: 0.3}",
            r"planner\.raise_band = 0.25 must be >= contract\.deadband_ratio = 0.3",
        ),
        ("- a list", r"must be a mapping"),
        ("mode: [unclosed", r"not YAML"),
    ],
)
def test_bad_live_config_names_the_field(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_live_yaml(text, LiveConfig())


def test_several_bad_fields_are_all_named() -> None:
    with pytest.raises(ValueError) as info:
        load_live_yaml("planner: {max_cpu: lots}\nmode: yolo\n", LiveConfig())
    assert "max_cpu: " in str(info.value) and "mode: " in str(info.value)


def test_missing_keys_keep_the_base_values() -> None:
    base = LiveConfig(mode=RolloutMode.RECOMMEND, planner=NodePolicy(max_cpu="2"))  # type: ignore[arg-type]
    assert load_live_yaml("", base) is base
    assert load_live_yaml("# nothing\n", base) is base
    live = load_live_yaml("planner: {headroom_ratio: 0.5}", base)
    assert (live.mode, live.planner.max_cpu, live.planner.headroom_ratio) == (RolloutMode.RECOMMEND, 2.0, 0.5)


# ---------------------------------------------------------------------------- in the agent


def _agent(node: FakeNode, kube: FakeKube, **config: object) -> NodeAgent:
    settings: dict[str, object] = {
        "node": "n1",
        "allocatable_cpu": "2",
        "config_map": "mbcas-system/mbcas-config",
        "config_poll_s": 10.0,
        **config,
    }
    agent: NodeAgent = agent_on(node, kube, AgentConfig(**settings))  # type: ignore[arg-type]
    return agent


def _config_map(text: str) -> dict[str, object]:
    return {"data": {"config.yaml": text}}


def _managed(agent: NodeAgent) -> dict[str, bool]:
    plan = agent.last_plan
    assert plan is not None
    names = {p.uid: p.name for p in agent.source.pods().values()}
    return {names[uid]: bool(plan.managed[i]) for i, uid in enumerate(plan.uids)}


def test_opt_in_and_opt_out(tmp_path: Path) -> None:
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.2, labels={"tier": "web"})
    node.add("batch", 0.2, labels={"tier": "batch"})
    node.add("opted-out", 0.2, labels={"tier": "web", "mbcas.io/opt-out": "true"})
    node.add("system", 0.2, namespace="kube-system")
    node.add("other-ns", 0.2, namespace="lab")
    node.add("free", 0.2, request=None, limit=None)  # BestEffort: never managed
    agent = _agent(node, kube)
    node.advance()
    agent.tick()
    assert _managed(agent) == {
        "web": True,
        "batch": True,
        "opted-out": False,
        "system": False,
        "other-ns": True,
        "free": False,
    }
    kube.config_map = _config_map("pod_selector: tier=web\ninclude_namespaces: [shop]\n")
    node.advance(10)
    agent.tick()
    assert _managed(agent) == {
        "web": True,
        "batch": False,
        "opted-out": False,
        "system": False,
        "other-ns": False,
        "free": False,
    }
    kube.config_map = _config_map("exclude_pod_selector: ''\nexclude_namespaces: [lab]\n")
    node.advance(10)
    agent.tick()
    managed = _managed(agent)
    # kube-system stays out even when exclude_namespaces no longer names it (issue 14 item 10).
    assert managed["opted-out"] and not managed["system"] and not managed["other-ns"]


def test_invalid_config_map_is_ignored_and_the_last_good_one_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.2)
    agent = _agent(node, kube)
    kube.config_map = _config_map("mode: recommend\nplanner: {max_cpu: 3}\n")  # a bare number: cores
    node.advance()
    agent.tick()
    assert agent.live.mode is RolloutMode.RECOMMEND
    assert agent.planner.policy.max_cpu == 3.0
    good = agent.live

    kube.config_map = _config_map("mode: enforce\nplanner: {max_cpu: lots}\n")
    node.advance(10)
    agent.tick()
    assert agent.live == good  # nothing of the bad ConfigMap applied, not even its valid mode
    assert agent.planner.policy.max_cpu == 3.0
    assert "max_cpu: " in caplog.text and "keeping the last good config" in caplog.text
    assert agent.metrics.config_reloads.labels("invalid")._value.get() == 1

    kube.config_map = None  # deleted: the last good one stays (it used to revert to defaults)
    node.advance(10)
    agent.tick()
    assert agent.live == good


def test_config_map_is_polled_not_read_every_tick(tmp_path: Path) -> None:
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.2)
    agent = _agent(node, kube)
    for _ in range(25):
        node.advance()
        agent.tick()
    reads = [r for r in kube.requests if "/configmaps/" in r.path]
    assert len(reads) == 3  # at t = 1, 11, 21 s with config_poll_s = 10


@pytest.mark.parametrize("bad", ["foo", "ns/", "/name", "a/b/c"])
def test_config_map_must_be_namespace_slash_name(bad: str) -> None:
    # A bad value used to pass validation and fail at every tick, leaving the agent "healthy"
    # but planning nothing; now it is refused at start-up, naming the field.
    with pytest.raises(ValueError, match="config_map"):
        AgentConfig(node="n1", config_map=bad)


def test_an_unknown_key_is_a_warning_not_a_reason_to_drop_the_config_map(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 14 item 11: one unknown key invalidated every other change of the ConfigMap.
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.2)
    agent = _agent(node, kube)
    kube.config_map = _config_map("mode: recommend\nmax_cpu_typo: 3\n")
    node.advance()
    agent.tick()
    assert agent.live.mode is RolloutMode.RECOMMEND
    assert "max_cpu_typo" in caplog.text and "unknown" in caplog.text
    assert agent.metrics.config_unknown_keys.labels("max_cpu_typo")._value.get() == 1


def test_limit_overcommit_is_live(tmp_path: Path) -> None:
    # The overcommit bound follows the ConfigMap from the next tick, without a restart.
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.2)
    agent = _agent(node, kube)
    node.advance()
    plan = agent.tick()
    assert plan is not None and plan.limit_bound == pytest.approx(2.0 * plan.capacity)
    kube.config_map = _config_map("planner:\n  limit_overcommit: 1.0\n")
    node.advance(agent.config.config_poll_s)
    plan = agent.tick()
    assert agent.planner.policy.limit_overcommit == 1.0
    assert plan is not None and plan.limit_bound == pytest.approx(plan.capacity)


def test_every_section_of_the_config_map_is_live(tmp_path: Path) -> None:
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.2)
    agent = _agent(node, kube)
    kube.config_map = _config_map(
        "mode: recommend\n"
        "planner: {min_cpu: 100m, raise_band: 0.2, limit_overcommit: 1.5}\n"
        "contract: {deadband_ratio: 0.15, staleness_s: 300, refresh_s: 100}\n"
    )
    node.advance()
    agent.tick()
    assert agent.live.mode is RolloutMode.RECOMMEND
    policy = agent.planner.policy
    assert (policy.min_cpu, policy.raise_band, policy.limit_overcommit) == (0.1, 0.2, 1.5)
    assert agent.planner.deadband.ratio == 0.15  # the contract's deadband reaches the planner
    assert (agent.live.contract.deadband_ratio, agent.live.contract.refresh_s) == (0.15, 100.0)


# ------------------------------------------------------------------ failing closed (issue 14 item 10)


def test_the_agent_observes_until_it_has_read_the_config_map(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # It used to start in enforce from built-in defaults and ignore a failed read.
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.2)
    kube.config_map = None
    agent = _agent(node, kube)
    for _ in range(12):
        node.advance()
        agent.tick()
    assert agent.live.mode is RolloutMode.OBSERVE
    assert kube.writes() == [], "the agent wrote decisions before it had read its ConfigMap"
    assert agent.metrics.config_loaded._value.get() == 0
    assert agent.metrics.config_read_errors.labels("NotFound")._value.get() == 2  # polled at 1 s, 11 s
    assert "mbcas-system/mbcas-config" in caplog.text and "observe" in caplog.text
    kube.config_map = _config_map("")  # created (empty: the flags' and env's settings apply)
    node.advance(10)
    agent.tick()
    assert agent.live == agent.config.live and agent.live.mode is RolloutMode.ENFORCE
    assert agent.metrics.config_loaded._value.get() == 1
    assert kube.writes(), "no decision written once the ConfigMap was read"


def test_without_a_config_map_the_flags_and_env_apply_at_once(tmp_path: Path) -> None:
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.2)
    agent = _agent(node, kube, config_map=None)
    node.advance()
    agent.tick()
    assert agent.live.mode is RolloutMode.ENFORCE and kube.writes()


@pytest.mark.parametrize(
    "error",
    [
        ForbiddenError("read configmap: forbidden", status=403),
        ApiUnavailableError("read configmap: service unavailable", status=503),
        None,  # deleted
    ],
    ids=["403", "503", "deleted"],
)
def test_an_unreadable_or_deleted_config_map_keeps_the_last_good_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: KubeError | None
) -> None:
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.2)
    agent = _agent(node, kube)
    kube.config_map = _config_map("mode: recommend\nplanner: {max_cpu: 3}\n")
    node.advance()
    agent.tick()
    good = agent.live
    assert good.mode is RolloutMode.RECOMMEND
    caplog.clear()
    if error is None:
        kube.config_map = None
    else:
        kube.config_error = error
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            node.advance(10)
            agent.tick()
    assert agent.live == good, "a ConfigMap that cannot be read changed the live config"
    code = "NotFound" if error is None else error.code
    assert agent.metrics.config_read_errors.labels(code)._value.get() == 3
    assert agent.metrics.config_loaded._value.get() == 1  # the last good one is still in force
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "keeping the last good" in warnings[0].getMessage()
    assert (str(error) if error else "not found") in warnings[0].getMessage()


def test_the_agents_namespace_and_kube_system_are_always_excluded(tmp_path: Path) -> None:
    node, kube = FakeNode(tmp_path / "cg"), FakeKube()
    node.add("web", 0.2)
    node.add("dns", 0.2, namespace="kube-system")
    node.add("agent", 0.2, namespace="mbcas-system")
    node.add("own", 0.2, namespace="ops")
    kube.config_map = _config_map("exclude_namespaces: []\n")
    agent = _agent(node, kube, namespace="ops")  # the agent's own namespace (POD_NAMESPACE)
    node.advance()
    agent.tick()
    assert _managed(agent) == {"web": True, "dns": False, "agent": True, "own": False}
    # Outside a pod and without a namespace set, only kube-system is always left out.
    agent = _agent(node, kube)
    node.advance()
    agent.tick()
    assert _managed(agent) == {"web": True, "dns": False, "agent": True, "own": True}
