"""``mbcas top`` (and ``kubectl mbcas top``) against the local control plane with a running agent
and controller (tests/integration/mbcas_stack.py).

Behaviours: each managed pod's row shows the decision, the applied limit, the phase and the reason
exactly as the PodAllocation and the pod hold them; with the agent's ``/metrics`` reachable it adds
usage, throttling and PSI, and without metrics it still works from the API alone; the default
source, the apiserver's pod proxy to each node's agent pod, is never required (no agent pod, or a
proxy the apiserver refuses, leaves the columns empty with a note and exit 0); ``--node`` and
``-A`` scope the rows; ``--watch -o json`` prints one document per refresh until Ctrl-C; kubectl
runs the same command as a plugin.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from mbcas_stack import MANAGED, Stack, stack_fixture  # noqa: F401

from helpers import make_pod, wait_for
from mbcas.cli.main import main
from mbcas.core.units import format_cpu, parse_cpu
from mbcas.kube.podview import PodView

pytestmark = [pytest.mark.integration, pytest.mark.kernel, pytest.mark.slow]


def top(capsys: Any, stack: Stack, *argv: str) -> tuple[int, str, str]:
    code = main(["top", "--kubeconfig", stack.kubeconfig, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def truth(api_client: Any, core_v1: Any, namespace: str) -> dict[str, dict[str, Any]]:
    """What the API holds for each managed pod, in top's JSON vocabulary."""
    items = k8s.CustomObjectsApi(api_client).list_namespaced_custom_object(
        "mbcas.io", "v1alpha1", namespace, "podallocations"
    )["items"]
    out = {}
    for pa in items:
        pod = core_v1.read_namespaced_pod(pa["spec"]["podName"], namespace)
        view = PodView.from_body(k8s.ApiClient().sanitize_for_serialization(pod))
        applied = view.applied_limit_mcpu()
        out[pa["spec"]["podName"]] = {
            "desired": format_cpu(parse_cpu(pa["spec"]["cpuLimit"])),
            "applied": None if applied is None else format_cpu(applied),
            "phase": pa["status"]["phase"],
            "reason": pa["spec"]["reason"],
            "mode": pa["spec"]["mode"],
            "node": pa["spec"]["nodeName"],
        }
    return out


def test_rows_match_the_api_and_add_the_agents_signals(
    capsys: Any, stack: Stack, api_client: Any, core_v1: Any
) -> None:
    def consistent() -> dict[str, Any] | None:
        code, out, err = top(
            capsys, stack, "-n", stack.namespace, "--metrics-url", stack.agent_url, "-o", "json"
        )
        assert code == 0, err
        doc = json.loads(out)
        rows = {r["pod"]: r for r in doc["pods"]}
        api = truth(api_client, core_v1, stack.namespace)
        shown = {
            pod: {k: rows[pod][k] for k in ("desired", "applied", "phase", "reason", "mode", "node")}
            for pod in rows
        }
        # The agent's numbers come from its second tick on (a rate needs two samples), and the
        # busy pod's usage from the first interval it burns in: both may come after the
        # allocations the agent wrote at its first tick were applied.
        sampled = [a["pods"] for a in doc["metrics"]["agents"]] == [3] and any(
            r["pod"] == "busy" and (r.get("usageCores") or 0) > 0 for r in doc["pods"]
        )
        # Settled: no resize between the controller's patch and its status update (the pod's
        # limit already moved while the allocation still says what was applied before).
        settled = all(r["limit"] == r["applied"] and r["phaseReason"] == "Applied" for r in doc["pods"])
        return doc if shown == api and set(rows) == set(MANAGED) and sampled and settled else None

    doc = wait_for(consistent, timeout=60, interval=1, message="top's rows equal the API's view")
    [agent] = doc["metrics"]["agents"]
    assert doc["metrics"]["enabled"] is True
    # Three pods have numbers: the two managed ones, and the Guaranteed one's demand estimate.
    assert agent == {"source": stack.agent_url, "node": stack.node, "pods": 3, "error": None}
    for row in doc["pods"]:
        assert row["namespace"] == stack.namespace and row["qos"] == "Burstable"
        assert row["request"] == "100m" and row["limit"] == row["applied"]
        assert row["phaseReason"] == "Applied"
        for key in ("demandCores", "usageCores", "throttledRatio"):
            assert isinstance(row[key], float) and row[key] >= 0, (row["pod"], key)
    busy = next(r for r in doc["pods"] if r["pod"] == "busy")
    assert busy["usageCores"] > 0

    # The table: one line per managed pod under the demo's columns.
    code, out, _ = top(capsys, stack, "-n", stack.namespace, "--metrics-url", stack.agent_url)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:7] == [
        "POD", "NODE", "DEMAND", "USAGE", "DESIRED", "APPLIED", "THROTTLED",
    ]  # fmt: skip
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(MANAGED)


def test_without_metrics_it_works_from_allocations_and_pods_alone(capsys: Any, stack: Stack) -> None:
    code, out, err = top(capsys, stack, "-n", stack.namespace, "--no-metrics", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["metrics"] == {"enabled": False, "agents": []}
    assert {r["pod"] for r in doc["pods"]} == set(MANAGED)
    for row in doc["pods"]:
        assert row["desired"] and row["applied"] and row["phase"] and row["reason"]
        assert row["usageCores"] is None and row["psiFullRatio"] is None
    code, out, _ = top(capsys, stack, "-n", stack.namespace, "--no-metrics", "-o", "wide")
    assert code == 0 and "REQUEST" in out.splitlines()[0] and "busy" in out

    # -A with --node: this node's rows from every namespace, no other node's.
    code, out, _ = top(capsys, stack, "-A", "--node", stack.node, "--no-metrics", "-o", "json")
    rows = json.loads(out)["pods"]
    assert code == 0 and {r["pod"] for r in rows} == set(MANAGED)
    code, out, _ = top(capsys, stack, "-A", "--node", "no-such-node", "--no-metrics", "-o", "json")
    assert code == 0 and json.loads(out)["pods"] == []


def test_the_pod_proxy_source_is_never_required(
    capsys: Any, stack: Stack, core_v1: Any, namespace: str
) -> None:
    # No agent pod matches (a namespace without one): rows as usual, a note, exit 0.
    code, out, err = top(capsys, stack, "-n", stack.namespace, "--agent-namespace", namespace)
    assert code == 0
    assert "busy" in out and "calm" in out
    assert "note: no usage/throttling/PSI" in err and "no running agent pod matches" in err

    # An agent pod the apiserver will not proxy to (a loopback pod IP: refused by the apiserver,
    # so no packet leaves it) on a node without an emulator.
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"
    body = make_pod(
        "mbcas-agent-x", "10m", "50m", ghost,
        labels={"app.kubernetes.io/part-of": "mbcas", "app.kubernetes.io/component": "agent"},
    )  # fmt: skip
    body["spec"]["containers"][0]["ports"] = [{"name": "metrics", "containerPort": 9100}]
    core_v1.create_namespaced_pod(namespace, body)
    core_v1.patch_namespaced_pod_status(
        "mbcas-agent-x",
        namespace,
        {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}},
    )
    code, out, err = top(
        capsys, stack, "-n", stack.namespace, "--node", ghost, "--agent-namespace", namespace, "-o", "json"
    )
    assert code == 0, err
    doc = json.loads(out)
    [agent] = doc["metrics"]["agents"]
    assert agent["source"] == f"pod-proxy {namespace}/mbcas-agent-x" and agent["node"] == ghost
    # The apiserver found the pod and its port, and refused the address (so the path is right).
    assert "address not allowed" in agent["error"] and agent["pods"] == 0, agent
    assert doc["pods"] == []


def test_watch_prints_one_json_document_per_refresh_until_ctrl_c(stack: Stack) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mbcas", "top", "-n", stack.namespace, "--no-metrics", "-w",
         "--interval", "0.3", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "KUBECONFIG": stack.kubeconfig},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        docs = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert all({r["pod"] for r in d["pods"]} == set(MANAGED) for d in docs)
        assert docs[0]["time"] <= docs[1]["time"]
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_kubectl_runs_it_as_a_plugin(stack: Stack, control_plane: Any) -> None:
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "kubectl-mbcas").exists(), "the package installs kubectl-mbcas"
    proc = subprocess.run(
        [str(control_plane.kubectl_path), "mbcas", "top",
         "-n", stack.namespace, "--no-metrics"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
             "KUBECONFIG": stack.kubeconfig},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("POD") and "busy" in proc.stdout
