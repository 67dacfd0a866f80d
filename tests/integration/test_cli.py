"""``mbcas list|usage|allocations|resize|check`` end to end against the real apiserver.

Most commands run in-process through ``main([...])`` (fast); one runs as a subprocess with
KUBECONFIG set, as a user would; ``allocations --watch`` runs as a subprocess stopped with SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from pa_support import make_allocation

from helpers import make_pod, resize_pod, wait_running
from mbcas.cli.main import main

pytestmark = pytest.mark.integration


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # a usage error, reported by the argument parser
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def managed(core_v1: Any, api_client: Any, namespace: str, node_emulator: Any, crd: str) -> Any:
    core_v1.create_namespaced_pod(namespace, make_pod("web", "250m", "500m", memory_request="64Mi"))
    core_v1.create_namespaced_pod(
        namespace, make_pod("g", "500m", "500m", memory_request="64Mi", memory_limit="64Mi")
    )
    pod = wait_running(core_v1, namespace, "web")
    wait_running(core_v1, namespace, "g")
    k8s.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "mbcas.io", "v1alpha1", namespace, "podallocations", make_allocation(pod, "700m", reason="cli test")
    )
    return pod


def test_check_reports_resize_support_and_crd(capsys: Any, kubeconfig: str, crd: str) -> None:
    code, out, _ = run(capsys, "check", "--kubeconfig", kubeconfig, "-o", "json")
    data = json.loads(out)
    assert code == 0
    assert data["resizeSubresource"] is True and data["crdInstalled"] is True
    assert data["serverVersion"].startswith("v1.35")


def test_resize_applies_through_the_actuator_and_refuses_unsafe_changes(
    capsys: Any, kubeconfig: str, core_v1: Any, namespace: str, managed: Any
) -> None:
    base = ("--kubeconfig", kubeconfig, "-n", namespace)
    core_v1.create_namespaced_pod(namespace, make_pod("free", "250m", "500m", memory_request="64Mi"))
    wait_running(core_v1, namespace, "free")  # no PodAllocation: MBCAS does not manage it
    code, out, err = run(capsys, "resize", "free", "--cpu", "900m", "--wait", "10", *base)
    assert code == 0, err
    assert "500m -> 900m" in out and "applied: c0=900m" in out and err == ""
    assert core_v1.read_namespaced_pod("free", namespace).spec.containers[0].resources.limits["cpu"] == "900m"
    # Guaranteed pod: refused by MBCAS (7); with --force the apiserver rejects it as invalid (6)
    code, _, err = run(capsys, "resize", "g", "--cpu", "1", *base)
    assert code == 7 and "Guaranteed" in err
    code, _, err = run(capsys, "resize", "g", "--cpu", "1", "--force", *base)
    assert code == 6 and "QOS" in err.upper()
    # below request: refused (7); missing pod: not found (3); bad quantity: usage (2)
    assert run(capsys, "resize", "free", "--cpu", "100m", *base)[0] == 7
    assert run(capsys, "resize", "nope", "--cpu", "1", *base)[0] == 3
    assert run(capsys, "resize", "free", "--cpu", "-1", *base)[0] == 2
    # dry run changes nothing
    code, out, _ = run(capsys, "resize", "free", "--cpu", "1200m", "--dry-run", *base)
    assert code == 0 and out.startswith("(dry run)")
    assert core_v1.read_namespaced_pod("free", namespace).spec.containers[0].resources.limits["cpu"] == "900m"


def test_resize_of_a_managed_pod_needs_force_and_warns(
    capsys: Any, kubeconfig: str, core_v1: Any, namespace: str, managed: Any
) -> None:
    base = ("--kubeconfig", kubeconfig, "-n", namespace)
    code, out, err = run(capsys, "resize", "web", "--cpu", "900m", *base)
    assert code == 7, err
    assert f"PodAllocation {namespace}/{managed.metadata.uid}" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert core_v1.read_namespaced_pod("web", namespace).spec.containers[0].resources.limits["cpu"] == "500m"
    code, out, err = run(capsys, "resize", "web", "--cpu", "900m", "--force", *base)
    assert code == 0, err
    assert "warning" in err and "will put that limit back" in err and "500m -> 900m" in out
    assert core_v1.read_namespaced_pod("web", namespace).spec.containers[0].resources.limits["cpu"] == "900m"


def test_resize_reports_infeasible_with_its_exit_code(
    capsys: Any, kubeconfig: str, core_v1: Any, namespace: str, node_emulator: Any
) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("big", "250m", "500m", memory_request="64Mi"))
    wait_running(core_v1, namespace, "big")
    resize_pod(core_v1, namespace, "big", cpu_request="5", cpu_limit="6")  # beyond the 4-CPU node
    code, _, err = run(
        capsys, "resize", "big", "--cpu", "7", "--wait", "10", "--kubeconfig", kubeconfig, "-n", namespace
    )
    assert code == 8, err
    assert "infeasible" in err.lower()


def test_list_usage_and_allocations(capsys: Any, kubeconfig: str, namespace: str, managed: Any) -> None:
    base = ("--kubeconfig", kubeconfig, "-n", namespace)
    code, out, _ = run(capsys, "list", *base, "-o", "json")
    rows = json.loads(out)
    assert code == 0 and [r["pod"] for r in rows] == ["web"]  # only pods with an allocation
    assert rows[0]["request"] == "250m" and rows[0]["limit"] == "500m" and rows[0]["allocation"] == "700m"
    code, out, _ = run(capsys, "list", *base, "-o", "wide")
    assert "QOS" in out.splitlines()[0] and "Burstable" in out
    code, out, _ = run(capsys, "usage", "web", *base)
    assert code == 0 and "Allocation: 700m (enforce)" in out and "cli test" in out
    code, out, _ = run(capsys, "usage", "web", *base, "-o", "yaml")
    assert yaml.safe_load(out)["containers"][0]["limit"] == "500m"
    code, out, _ = run(capsys, "allocations", *base, "-o", "wide")
    header = out.splitlines()[0].split()
    assert code == 0 and header[:5] == ["NAMESPACE", "NAME", "POD", "NODE", "DESIRED"] and "MESSAGE" in header
    assert managed.metadata.uid in out
    code, out, _ = run(capsys, "allocations", "-A", "--kubeconfig", kubeconfig, "-o", "json")
    assert managed.metadata.uid in {a["metadata"]["name"] for a in json.loads(out)}


def test_errors_have_clear_exit_codes(capsys: Any, tmp_path: Any, kubeconfig: str) -> None:
    code, _, err = run(capsys, "check", "--kubeconfig", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err
    # an apiserver that is not there: a copy of the kubeconfig pointing at a closed port
    with open(kubeconfig) as fh:
        cfg = yaml.safe_load(fh)
    cfg["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    dead = tmp_path / "dead.yaml"
    dead.write_text(yaml.safe_dump(cfg))
    code, _, err = run(capsys, "check", "--kubeconfig", str(dead))
    assert (code == 9 and "unreachable" in err) or "no response" in err


def test_subprocess_with_kubeconfig_env_and_watch(kubeconfig: str, namespace: str, managed: Any) -> None:
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    done = subprocess.run(
        [sys.executable, "-m", "mbcas", "list", "-n", namespace],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "web" in done.stdout and "700m" in done.stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "mbcas", "allocations", "-n", namespace, "--watch", "--interval", "0.3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.count("Every 0.3s") >= 2 and managed.metadata.uid in out
