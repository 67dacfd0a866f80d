"""Every bad argument or setting: one line on stderr naming it, exit code 2, no traceback.

The commands run in-process (``mbcas.cli.main.main``); none of these cases reaches an apiserver,
so an error that escaped as an exception would fail the test with its traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mbcas.cli.main import main

GOOD_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No kubeconfig anywhere and not in a cluster, unless a case sets one."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(var, raising=False)
    for var in [v for v in __import__("os").environ if v.startswith(("MBCAS_CONTROLLER_", "MBCAS_AGENT_"))]:
        monkeypatch.delenv(var)
    (tmp_path / "good.kubeconfig").write_text(GOOD_KUBECONFIG)
    (tmp_path / "broken.kubeconfig").write_text("apiVersion: v1\nclusters: [\n")
    snapshot = {"node": "n1", "allocatable_cpu": "2", "reserve_cpu": "200m", "pods": []}
    (tmp_path / "snap.json").write_text(json.dumps(snapshot))
    return tmp_path


CASES = [
    # (id, argv, env, the words the one line must contain)
    ("kubeconfig-env-missing", ["list"], {"KUBECONFIG": "{home}/nope.yaml"}, ["KUBECONFIG", "nope.yaml"]),
    ("kubeconfig-not-a-kubeconfig", ["list", "--kubeconfig", "/etc/passwd"], {}, ["/etc/passwd"]),
    ("kubeconfig-malformed", ["list", "--kubeconfig", "{home}/broken.kubeconfig"], {}, ["broken.kubeconfig"]),
    ("kubeconfig-missing-flag", ["usage", "web", "--kubeconfig", "{home}/none"], {}, ["{home}/none"]),
    ("no-kubeconfig", ["allocations"], {}, ["no kubeconfig", "--kubeconfig", "KUBECONFIG"]),
    (
        "context-missing",
        ["list", "--kubeconfig", "{home}/good.kubeconfig", "--context", "nope"],
        {},
        ["nope"],
    ),
    ("controller-lease", ["controller"], {"MBCAS_CONTROLLER_LEASE_RENEW_S": "20"}, ["lease_renew_s"]),
    (
        "controller-env-number",
        ["controller"],
        {"MBCAS_CONTROLLER_RESYNC_S": "abc"},
        ["MBCAS_CONTROLLER_RESYNC_S"],
    ),
    ("controller-flag", ["controller", "--resync", "-1"], {}, ["--resync"]),
    ("controller-flag-type", ["controller", "--min-interval", "soon"], {}, ["--min-interval"]),
    ("controller-kubeconfig", ["controller", "--kubeconfig", "{home}/none"], {}, ["{home}/none"]),
    ("plan-min-cpu", ["plan", "--input", "{home}/snap.json", "--min-cpu", "abc"], {}, ["--min-cpu", "abc"]),
    ("plan-max-cpu", ["plan", "--input", "{home}/snap.json", "--max-cpu", "-1"], {}, ["--max-cpu"]),
    ("resize-wait", ["resize", "web", "--cpu", "1", "--wait", "-3"], {}, ["--wait", "-3"]),
    ("resize-cpu", ["resize", "web", "--cpu", "abc"], {}, ["--cpu", "abc"]),
    ("resize-cpu-zero", ["resize", "web", "--cpu", "0"], {}, ["--cpu"]),
    ("resize-missing", ["resize"], {}, ["--cpu"]),
    ("unknown-flag", ["list", "--bogus"], {}, ["--bogus"]),
    ("allocations-interval", ["allocations", "--watch", "--interval", "0"], {}, ["--interval"]),
    ("agent-env", ["agent", "--node", "n1", "--once"], {"MBCAS_AGENT_TICK_S": "abc"}, ["MBCAS_AGENT_TICK_S"]),
    ("agent-flag", ["agent", "--node", "n1", "--once", "--tick", "-1"], {}, ["--tick"]),
    ("agent-min-cpu", ["agent", "--node", "n1", "--once", "--min-cpu", "lots"], {}, ["--min-cpu"]),
    ("sense-interval", ["sense", "--cgroup", "x", "--interval", "-1"], {}, ["--interval"]),
    ("simulate-seed", ["simulate", "--scenario", "spike", "--seed", "x"], {}, ["--seed"]),
    ("demo-duration", ["demo", "--duration", "-5"], {}, ["--duration"]),
    ("demo-node-cpu", ["demo", "--node-cpu", "abc"], {}, ["--node-cpu"]),
]


@pytest.mark.parametrize("case", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_argument_or_setting_is_one_line_naming_it_exit_2(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[list[str], dict[str, str], list[str]],
) -> None:
    argv, env, words = case
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(home=home))
    try:
        code = main([a.format(home=home) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    for word in words:
        assert word.format(home=home) in lines[0], lines[0]
    assert "Traceback" not in err and "validation error for" not in err
    if "no kubeconfig" in words:
        assert "in-cluster" not in lines[0]
