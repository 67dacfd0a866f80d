"""The deployment on the real local control plane (kube-apiserver 1.35 with RBAC and admission).

Behaviours:

- the rendered chart passes the apiserver's validation and admission (server-side dry run);
- RBAC, checked by impersonating each ServiceAccount (``kubectl auth can-i --as``): the agent
  writes PodAllocations but cannot resize pods, write Events or read Secrets; the controller
  resizes pods and writes status and Events but cannot delete pods or read Secrets;
- the node-confinement ValidatingAdmissionPolicy, exercised with real requests impersonating the
  agent with and without the ``authentication.kubernetes.io/node-name`` claim, and with a real
  token bound to a pod on an emulated node (the apiserver derives the claim itself);
- docs/install.md's commands work as written (helm install, plain manifests, uninstall).

- the chart's RBAC and settings suffice for the real binaries: ``mbcas controller`` and ``mbcas
  agent`` run as their ServiceAccounts (tokens from the apiserver, the environment exactly as the
  rendered Deployment and DaemonSet give it) and do their work without a single refusal;

Every test renders the chart under its own release name into its own namespace, so the
cluster-scoped objects (ClusterRoles, the policy) have unique names; they are deleted afterwards
even when the test fails. The CRD is applied once and never deleted (other tests use it).
No kubelet runs here, so the workloads' pods are never started: that is what images are for.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pa_support import make_allocation

from helpers import DEFAULT_NODE, make_pod, wait_for, wait_running
from mbcas.local import helm
from mbcas.local.build import ensure_helm
from mbcas.local.procs import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PATHS = helm.repo_paths(ROOT)
CLAIM = "authentication.kubernetes.io/node-name"
CLUSTER_KINDS = {
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "Namespace",
    "CustomResourceDefinition",
}
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


@pytest.fixture(scope="module")
def kubectl(control_plane: Any) -> Kubectl:
    def run(*args: str, input: str | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc: subprocess.CompletedProcess[str] = control_plane.kubectl(*args, input=input)
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    return run


class Release:
    """The chart rendered under a unique release name into one namespace; applies parts of it
    for real and deletes what it applied (cluster-scoped objects included)."""

    def __init__(self, kubectl: Kubectl, namespace: str) -> None:
        self.kubectl = kubectl
        self.namespace = namespace
        self.name = f"mbcas-{uuid.uuid4().hex[:6]}"
        text = helm.template(release=self.name, namespace=namespace, include_crds=False, paths=PATHS)
        self.docs = [d for d in yaml.safe_load_all(text) if d]
        self.applied: list[dict[str, Any]] = []

    @property
    def agent(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}-agent"

    @property
    def controller(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}-controller"

    def select(self, kinds: set[str]) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] in kinds]

    def apply(self, kinds: set[str]) -> None:
        docs = self.select(kinds)
        assert docs, f"the chart renders none of {kinds}"
        self.applied += docs
        self.kubectl("apply", "--server-side", "-f", "-", input=dump(docs), check=True)

    def cleanup(self) -> None:
        for doc in reversed(self.applied):
            args = ["delete", doc["kind"], doc["metadata"]["name"], "--ignore-not-found", "--wait=false"]
            if doc["kind"] not in CLUSTER_KINDS:
                args += ["-n", self.namespace]
            self.kubectl(*args)


@pytest.fixture
def release(kubectl: Kubectl, namespace: str, crd: str) -> Iterator[Release]:
    rel = Release(kubectl, namespace)
    try:
        yield rel
    finally:
        rel.cleanup()


def can_i(kubectl: Kubectl, user: str, *args: str) -> bool:
    proc = kubectl("auth", "can-i", *args, f"--as={user}", "--as-group=system:serviceaccounts")
    answer = proc.stdout.strip()
    assert answer in {"yes", "no"}, f"kubectl auth can-i {' '.join(args)}: {proc.stdout} {proc.stderr}"
    return answer == "yes"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


# ------------------------------------------------------------------------------------ dry run


def test_rendered_chart_passes_server_side_dry_run(kubectl: Kubectl, namespace: str, crd: str) -> None:
    name = f"mbcas-{uuid.uuid4().hex[:6]}"
    text = helm.template(
        release=name,
        namespace=namespace,
        paths=PATHS,
        set_values=["metrics.podAnnotations=true", "config.example=1"],
    )
    docs = [d for d in yaml.safe_load_all(text) if d]
    proc = kubectl("apply", "--dry-run=server", "--server-side", "-f", "-", input=text)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == len(docs), proc.stdout
    assert all("(server dry run)" in ln for ln in lines), proc.stdout
    # Nothing was created.
    assert kubectl("get", "daemonset", f"{name}-agent", "-n", namespace).returncode != 0
    assert kubectl("get", "clusterrole", f"{name}-agent").returncode != 0


def test_dry_run_rejects_a_broken_render(kubectl: Kubectl, namespace: str, crd: str) -> None:
    """The dry run is a real check: the apiserver rejects what its validation would."""
    text = helm.template(
        release="mbcas-broken", namespace=namespace, paths=PATHS, set_values=["controller.replicas=-1"]
    )
    proc = kubectl("apply", "--dry-run=server", "--server-side", "-f", "-", input=text)
    assert proc.returncode != 0
    assert "replicas" in proc.stderr


# ------------------------------------------------------------------------------------ RBAC


def test_agent_rbac_is_least_privilege(kubectl: Kubectl, release: Release) -> None:
    release.apply(RBAC_KINDS)
    agent, ns = release.agent, release.namespace
    wait_until(lambda: can_i(kubectl, agent, "create", "podallocations.mbcas.io", "-n", "default"), "RBAC")
    allowed = [
        ("create", "podallocations.mbcas.io", "-n", "default"),
        ("update", "podallocations.mbcas.io", "-n", "kube-system"),
        ("delete", "podallocations.mbcas.io", "-n", "default"),
        ("watch", "podallocations.mbcas.io", "--all-namespaces"),
        ("list", "pods", "--all-namespaces"),
        ("watch", "pods", "--all-namespaces"),
        ("get", "nodes/node-a"),
        ("get", f"configmaps/{release.name}-config", "-n", ns),
    ]
    denied = [
        ("patch", "pods", "--subresource=resize", "-n", "default"),
        ("update", "pods", "--subresource=resize", "-n", "default"),
        ("patch", "pods", "-n", "default"),
        ("delete", "pods", "-n", "default"),
        ("get", "secrets", "-n", ns),
        ("list", "secrets", "--all-namespaces"),
        ("create", "events", "-n", "default"),
        ("create", "events.events.k8s.io", "-n", "default"),
        ("patch", "podallocations.mbcas.io", "--subresource=status", "-n", "default"),
        ("get", "configmaps/other", "-n", ns),
        ("list", "configmaps", "-n", "kube-system"),
        ("patch", "nodes/node-a"),
        ("list", "nodes"),
        ("create", "leases.coordination.k8s.io", "-n", ns),
    ]
    assert [a for a in allowed if not can_i(kubectl, agent, *a)] == []
    assert [d for d in denied if can_i(kubectl, agent, *d)] == []


def test_controller_rbac_is_least_privilege(kubectl: Kubectl, release: Release) -> None:
    release.apply(RBAC_KINDS)
    ctl, ns = release.controller, release.namespace
    wait_until(lambda: can_i(kubectl, ctl, "patch", "pods", "--subresource=resize", "-n", "default"), "RBAC")
    allowed = [
        ("patch", "pods", "--subresource=resize", "-n", "default"),
        ("list", "pods", "--all-namespaces"),
        ("watch", "podallocations.mbcas.io", "--all-namespaces"),
        ("patch", "podallocations.mbcas.io", "--subresource=status", "-n", "default"),
        ("create", "events", "-n", "default"),
        ("create", "events.events.k8s.io", "-n", "default"),
        ("create", "leases.coordination.k8s.io", "-n", ns),
        ("update", "leases.coordination.k8s.io", "-n", ns),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("get", f"configmaps/{release.name}-config", "-n", ns),  # the contract it shares with the agent
        ("delete", "podallocations.mbcas.io", "-n", "default"),
        ("watch", "nodes"),
    ]
    denied = [
        ("delete", "pods", "-n", "default"),
        ("create", "pods", "-n", "default"),
        ("patch", "pods", "-n", "default"),
        ("create", "pods", "--subresource=eviction", "-n", "default"),
        ("get", "secrets", "-n", ns),
        ("list", "secrets", "--all-namespaces"),
        ("create", "podallocations.mbcas.io", "-n", "default"),
        ("patch", "podallocations.mbcas.io", "-n", "default"),
        ("create", "leases.coordination.k8s.io", "-n", "kube-system"),
        ("update", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "nodes/node-a"),
        ("get", "configmaps/other", "-n", ns),
        ("update", f"configmaps/{release.name}-config", "-n", ns),
    ]
    assert [a for a in allowed if not can_i(kubectl, ctl, *a)] == []
    assert [d for d in denied if can_i(kubectl, ctl, *d)] == []


# ------------------------------------------------------------------------------ node confinement


def pa_name(name: str, namespace: str) -> str:
    """The object name of the test allocation ``name``: a PodAllocation is named by its pod's UID
    (the CRD checks ``metadata.name == spec.podUID``), so each test name maps to a fixed UUID."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}"))


def allocation(name: str, namespace: str, node: str, cpu: str = "500m") -> dict[str, Any]:
    return {
        "apiVersion": "mbcas.io/v1alpha1",
        "kind": "PodAllocation",
        "metadata": {"name": pa_name(name, namespace), "namespace": namespace},
        "spec": {
            "podName": name,
            "podUID": pa_name(name, namespace),
            "nodeName": node,
            "cpuLimit": cpu,
            "reason": "test",
            "decidedAt": "2026-01-01T00:00:00Z",
        },
    }


class Agent:
    """kubectl as the agent's ServiceAccount, with an optional node claim in its user extra."""

    def __init__(self, kubectl: Kubectl, release: Release, node: str | None) -> None:
        self.kubectl = kubectl
        self.ns = release.namespace
        self.flags = [f"--as={release.agent}", "--as-group=system:serviceaccounts"]
        if node is not None:
            self.flags.append(f"--as-user-extra={CLAIM}={node}")

    def create(self, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl("create", *self.flags, "-f", "-", input=json.dumps(body))

    def patch(self, name: str, patch: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl(
            "patch",
            *self.flags,
            "podallocation",
            pa_name(name, self.ns),
            "-n",
            self.ns,
            "--type=merge",
            "-p",
            json.dumps(patch),
        )

    def delete(self, name: str) -> subprocess.CompletedProcess[str]:
        return self.kubectl(
            "delete", *self.flags, "podallocation", pa_name(name, self.ns), "-n", self.ns, "--wait=false"
        )


def denied_by_policy(proc: subprocess.CompletedProcess[str], policy: str) -> bool:
    return (
        proc.returncode != 0
        and "Forbidden" in proc.stderr
        and f"ValidatingAdmissionPolicy '{policy}'" in (proc.stderr)
    )


def test_node_confinement_policy_binds_the_agent_to_its_node(kubectl: Kubectl, release: Release) -> None:
    ns = release.namespace
    release.apply(RBAC_KINDS)
    release.apply({"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"})
    policy = f"{release.name}-agent-node-confinement"
    on_a, on_b, no_claim = (
        Agent(kubectl, release, "node-a"),
        Agent(kubectl, release, "node-b"),
        Agent(kubectl, release, None),
    )
    wait_until(lambda: can_i(kubectl, release.agent, "create", "podallocations.mbcas.io", "-n", ns), "RBAC")

    # A new policy takes a moment to be enforced: probe with a request it must deny.
    def policy_active() -> bool:
        probe = on_a.create(allocation("probe", ns, "node-b"))
        if probe.returncode == 0:  # not enforced yet: undo as admin and retry
            kubectl("delete", "podallocation", pa_name("probe", ns), "-n", ns, "--wait=false", check=True)
            return False
        assert denied_by_policy(probe, policy), probe.stderr
        return True

    wait_until(policy_active, "the ValidatingAdmissionPolicy to be enforced", timeout=60)

    # Create: own node allowed, another node denied, no claim denied.
    created = on_a.create(allocation("pa-a", ns, "node-a"))
    assert created.returncode == 0, created.stderr
    other = on_a.create(allocation("pa-b", ns, "node-b"))
    assert denied_by_policy(other, policy)
    assert "may not write a PodAllocation for node node-b" in other.stderr
    missing = no_claim.create(allocation("pa-x", ns, "node-a"))
    assert denied_by_policy(missing, policy)
    assert "no node claim" in missing.stderr
    assert kubectl("get", "podallocation", pa_name("pa-b", ns), "-n", ns).returncode != 0
    assert kubectl("get", "podallocation", pa_name("pa-x", ns), "-n", ns).returncode != 0

    # Other users are not matched: the admin creates node-b's allocation.
    kubectl("create", "-f", "-", input=json.dumps(allocation("pa-b", ns, "node-b")), check=True)

    # Update: own allocation allowed; another node's denied; moving one's own to another node denied.
    assert on_a.patch("pa-a", {"spec": {"cpuLimit": "750m"}}).returncode == 0
    assert denied_by_policy(on_a.patch("pa-b", {"spec": {"cpuLimit": "750m"}}), policy)
    assert denied_by_policy(on_a.patch("pa-a", {"spec": {"nodeName": "node-b"}}), policy)
    assert denied_by_policy(on_b.patch("pa-a", {"spec": {"nodeName": "node-b"}}), policy)
    assert denied_by_policy(no_claim.patch("pa-a", {"spec": {"cpuLimit": "1"}}), policy)
    stored = json.loads(kubectl("get", "podallocation", "-n", ns, "-o", "json", check=True).stdout)
    specs = {item["spec"]["podName"]: item["spec"] for item in stored["items"]}
    assert specs["pa-a"]["nodeName"] == "node-a" and specs["pa-a"]["cpuLimit"] == "750m"
    assert specs["pa-b"]["cpuLimit"] == "500m"

    # The controller (not matched) still writes status for any node.
    status = kubectl(
        "patch", f"--as={release.controller}", "--as-group=system:serviceaccounts", "podallocation",
        pa_name("pa-b", ns), "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phase": "Pending"}}),
    )  # fmt: skip
    assert status.returncode == 0, status.stderr

    # Delete: the stored object's node counts.
    assert denied_by_policy(on_a.delete("pa-b"), policy)
    assert denied_by_policy(no_claim.delete("pa-a"), policy)
    assert on_b.delete("pa-b").returncode == 0
    assert on_a.delete("pa-a").returncode == 0


# ------------------------------------------------------------------------------ docs/install.md


def install_blocks() -> dict[str, list[str]]:
    """Commands of each ``<!-- install-test: NAME -->`` bash block in docs/install.md."""
    text = (ROOT / "docs" / "install.md").read_text()
    blocks: dict[str, list[str]] = {}
    for match in re.finditer(r"<!-- install-test: ([\w-]+) -->\s*```bash\n(.*?)```", text, re.S):
        lines = [ln.strip() for ln in match.group(2).replace("\\\n", " ").splitlines()]
        blocks[match.group(1)] = [ln for ln in lines if ln and not ln.startswith("#")]
    return blocks


@pytest.fixture
def shell(control_plane: Any, tmp_path: Path) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """Run a documented command line in bash from the repository root, with the built helm and
    kubectl first on PATH, KUBECONFIG set, and helm's cache and config in a temporary directory."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "kubectl").symlink_to(control_plane.kubectl_path)
    (bindir / "helm").symlink_to(ensure_helm())
    env = dict(os.environ)
    env.update(
        PATH=f"{bindir}:{env.get('PATH', '')}",
        KUBECONFIG=str(control_plane.kubeconfig),
        HELM_CACHE_HOME=str(tmp_path / "helm-cache"),
        HELM_CONFIG_HOME=str(tmp_path / "helm-config"),
        HELM_DATA_HOME=str(tmp_path / "helm-data"),
    )

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def namespace_gone(kubectl: Kubectl, name: str) -> bool:
    return kubectl("get", "namespace", name).returncode != 0


def remove_install(kubectl: Kubectl, docs: list[dict[str, Any]]) -> None:
    """Delete what the default install creates, except the CRD, and wait for its namespace to go."""
    for doc in docs:
        if doc["kind"] in CLUSTER_KINDS - {"CustomResourceDefinition", "Namespace"}:
            kubectl("delete", doc["kind"], doc["metadata"]["name"], "--ignore-not-found", "--wait=false")
    kubectl("delete", "namespace", helm.DEFAULT_NAMESPACE, "--ignore-not-found", "--wait=false")
    wait_until(lambda: namespace_gone(kubectl, helm.DEFAULT_NAMESPACE), "mbcas-system to be deleted", 90)


def test_install_page_commands_work_as_written(
    kubectl: Kubectl, crd: str, shell: Callable[[str], subprocess.CompletedProcess[str]]
) -> None:
    blocks = install_blocks()
    assert set(blocks) == {"helm", "helm-uninstall", "manifests"}
    assert any(cmd.startswith("helm install") for cmd in blocks["helm"])
    assert "kubectl get podallocations -A" in blocks["helm"]
    manifest_docs = [d for d in yaml.safe_load_all(PATHS.manifests.read_text()) if d]
    if not namespace_gone(kubectl, helm.DEFAULT_NAMESPACE):  # left over from an interrupted run
        remove_install(kubectl, manifest_docs)

    def run_block(name: str) -> list[subprocess.CompletedProcess[str]]:
        results = []
        for command in blocks[name]:
            proc = shell(command)
            assert proc.returncode == 0, f"{name}: `{command}` failed:\n{proc.stdout}\n{proc.stderr}"
            results.append(proc)
        return results

    def installed() -> dict[str, Any]:
        proc = kubectl(
            "get", "daemonset,deployment,configmap,serviceaccount", "-n", "mbcas-system", "-o", "json"
        )
        items = json.loads(proc.stdout)["items"]
        return {f"{i['kind']}/{i['metadata']['name']}": i for i in items}

    try:
        # Plain manifests, for real.
        run_block("manifests")
        objects = installed()
        assert {
            "DaemonSet/mbcas-agent",
            "Deployment/mbcas-controller",
            "ConfigMap/mbcas-config",
        } <= set(objects)
        assert kubectl("get", "validatingadmissionpolicy", "mbcas-agent-node-confinement").returncode == 0
        labels = json.loads(kubectl("get", "namespace", "mbcas-system", "-o", "json", check=True).stdout)
        assert labels["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
        remove_install(kubectl, manifest_docs)

        # Helm, for real, then its uninstall.
        results = run_block("helm")
        assert "STATUS: deployed" in results[2].stdout
        assert "kubectl get podallocations -A" in results[2].stdout  # NOTES.txt
        objects = installed()
        assert objects["Deployment/mbcas-controller"]["spec"]["replicas"] == 2
        assert (
            objects["DaemonSet/mbcas-agent"]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        )
        run_block("helm-uninstall")
        assert kubectl("get", "clusterrole", "mbcas-agent").returncode != 0
        assert kubectl("get", "validatingadmissionpolicy", "mbcas-agent-node-confinement").returncode != 0
        assert kubectl("get", "crd", crd).returncode == 0, "helm uninstall must keep the CRD"
        wait_until(lambda: namespace_gone(kubectl, helm.DEFAULT_NAMESPACE), "mbcas-system to be deleted", 90)
    finally:
        if not namespace_gone(kubectl, helm.DEFAULT_NAMESPACE):
            shell("helm uninstall mbcas --namespace mbcas-system")
            remove_install(kubectl, manifest_docs)


@pytest.mark.usefixtures("node_emulator")
def test_node_confinement_with_a_real_pod_bound_token(
    kubectl: Kubectl, release: Release, control_plane: Any, core_v1: Any, tmp_path: Path
) -> None:
    """No impersonation: the agent's ServiceAccount gets a token bound to a pod on an emulated node,
    as the kubelet would project it, and the apiserver itself derives the node claim from it."""
    from helpers import DEFAULT_NODE, make_pod, pod_bound_token, wait_running

    ns = release.namespace
    release.apply(RBAC_KINDS | {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"})
    policy = f"{release.name}-agent-node-confinement"
    body = make_pod("agent-pod", "10m", "20m")
    body["spec"]["serviceAccountName"] = f"{release.name}-agent"
    pod = core_v1.create_namespaced_pod(ns, body)
    wait_running(core_v1, ns, "agent-pod")
    token = pod_bound_token(core_v1, ns, f"{release.name}-agent", pod)
    empty = tmp_path / "empty.kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    as_agent = [
        f"--kubeconfig={empty}",
        f"--server={control_plane.url}",
        f"--certificate-authority={control_plane.certs.ca_cert}",
        f"--token={token}",
    ]

    def create(name: str, node: str) -> subprocess.CompletedProcess[str]:
        argv = [str(control_plane.kubectl_path), *as_agent, "create", "-f", "-"]
        return subprocess.run(
            argv,
            input=json.dumps(allocation(name, ns, node)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def foreign_denied() -> bool:
        proc = create("probe", "node-b")
        if proc.returncode == 0:  # the policy is not enforced yet: undo as admin and retry
            kubectl("delete", "podallocation", pa_name("probe", ns), "-n", ns, "--wait=false", check=True)
            return False
        assert denied_by_policy(proc, policy), proc.stderr
        return True

    wait_until(foreign_denied, "the policy to deny the agent a foreign node", timeout=60)
    own = create("own", DEFAULT_NODE)
    assert own.returncode == 0, own.stderr
    whoami = subprocess.run(
        [str(control_plane.kubectl_path), *as_agent, "auth", "whoami", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    assert user["username"] == release.agent
    assert user["extra"][CLAIM] == [DEFAULT_NODE]


# ------------------------------------------------------- the real binaries under the chart's RBAC


def token_kubeconfig(control_plane: Any, token: str, path: Path) -> Path:
    """A kubeconfig that authenticates with ``token`` only (no admin client certificate)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": control_plane.url,
                            "certificate-authority": str(control_plane.certs.ca_cert),
                        },
                    }
                ],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    return path


def workload_env(release: Release, kind: str, pod_name: str, node: str) -> dict[str, str]:
    """The container environment of the rendered workload, fieldRefs resolved like the kubelet."""
    (workload,) = release.select({kind})
    refs = {"metadata.name": pod_name, "metadata.namespace": release.namespace, "spec.nodeName": node}
    env: dict[str, str] = {}
    for item in workload["spec"]["template"]["spec"]["containers"][0]["env"]:
        env[item["name"]] = (
            item["value"] if "value" in item else refs[item["valueFrom"]["fieldRef"]["fieldPath"]]
        )
    return env


@contextlib.contextmanager
def mbcas_process(command: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m mbcas <command>`` with exactly the given MBCAS/NODE env; killed by pid after."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MBCAS_") and k not in {"NODE_NAME", "KUBECONFIG"}
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mbcas", "-v", command],
            env={**base, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def wait_logged(predicate: Callable[[], Any], what: str, log: Path, timeout: float) -> Any:
    """wait_for, failing with the process's log tail (the reason a binary did not get there)."""
    try:
        return wait_for(predicate, timeout=timeout, message=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- log tail:\n{log.read_text(errors='replace')[-3000:]}") from None


def refusals(log: Path) -> list[str]:
    """RBAC refusals in ``log`` (a write into a namespace another test is deleting is a 403 too,
    from the namespace lifecycle, not from RBAC: left out)."""
    # The log's own timestamp is left out: its milliseconds can read "403" ("15:21:51,403 INFO").
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
    lines = [stamp.sub("", ln) for ln in log.read_text(errors="replace").splitlines()]
    return [
        ln
        for ln in lines
        if re.search(r"\b403\b|[Ff]orbidden|not allowed", ln) and "because it is being terminated" not in ln
    ]


@pytest.mark.usefixtures("node_emulator")
def test_controller_works_with_exactly_the_chart_rbac_and_settings(
    kubectl: Kubectl, release: Release, control_plane: Any, core_v1: Any, tmp_path: Path
) -> None:
    from kubernetes import client

    ns = release.namespace
    release.apply(RBAC_KINDS | {"ConfigMap"})  # the controller reads its contract section through the Role
    token = kubectl(
        "create", "token", f"{release.name}-controller", "-n", ns, "--duration=1h", check=True
    ).stdout
    env = workload_env(release, "Deployment", "ctl-0", "n/a")
    health, metrics = free_port(), free_port()
    env.update(
        MBCAS_CONTROLLER_KUBECONFIG=str(
            token_kubeconfig(control_plane, token.strip(), tmp_path / "ctl.kubeconfig")
        ),
        MBCAS_CONTROLLER_HEALTH_PORT=str(health),
        MBCAS_CONTROLLER_METRICS_PORT=str(metrics),
        MBCAS_CONTROLLER_BIND_ADDRESS="127.0.0.1",
    )
    core_v1.create_namespaced_pod(ns, make_pod("web", "250m", "500m", memory_request="64Mi"))
    pod = wait_running(core_v1, ns, "web")
    log = tmp_path / "controller.log"
    with mbcas_process("controller", env, log) as proc:
        # Leader election through the chart's Lease Role: the Lease is in the release namespace.
        def lease() -> dict[str, Any] | None:
            proc = kubectl("get", "lease", f"{release.name}-controller", "-n", ns, "-o", "json")
            return json.loads(proc.stdout) if proc.returncode == 0 else None

        held = wait_logged(lease, "the controller's Lease", log, timeout=60)
        assert held["spec"]["holderIdentity"] == "ctl-0"
        wait_for(lambda: http_get(health, "/healthz")[0] == 200, timeout=30, message="/healthz")
        client.CustomObjectsApi(control_plane.api_client()).create_namespaced_custom_object(
            "mbcas.io", "v1alpha1", ns, "podallocations", make_allocation(pod, "800m")
        )
        wait_logged(
            lambda: (
                core_v1.read_namespaced_pod("web", ns).spec.containers[0].resources.limits["cpu"] == "800m"
            ),
            "the pod resized through pods/resize",
            log,
            timeout=60,
        )

        def applied() -> dict[str, Any] | None:
            proc = kubectl("get", "podallocation", pod.metadata.uid, "-n", ns, "-o", "json")
            body: dict[str, Any] = json.loads(proc.stdout) if proc.returncode == 0 else {}
            return body if body.get("status", {}).get("phase") == "Applied" else None

        pa = wait_logged(applied, "status Applied", log, timeout=30)
        assert pa["status"]["appliedCPULimit"] == "800m"
        events = core_v1.list_namespaced_event(ns, field_selector="involvedObject.name=web").items
        assert any(e.reason == "Resized" for e in events), "the controller posts Events"
        assert "mbcas_controller" in http_get(metrics, "/metrics")[1]
        assert proc.poll() is None, log.read_text()
    assert refusals(log) == [], "the chart's RBAC refused the controller something"


@pytest.mark.usefixtures("node_emulator")
def test_agent_works_with_exactly_the_chart_rbac_and_settings(
    kubectl: Kubectl, release: Release, control_plane: Any, core_v1: Any, tmp_path: Path
) -> None:
    ns = release.namespace
    release.apply(RBAC_KINDS | {"ConfigMap", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"})
    body = make_pod("agent-pod", "10m", "20m")
    body["spec"]["serviceAccountName"] = f"{release.name}-agent"
    pod = core_v1.create_namespaced_pod(ns, body)
    wait_running(core_v1, ns, "agent-pod")
    token = kubectl(
        "create", "token", f"{release.name}-agent", "-n", ns, "--bound-object-kind=Pod",
        "--bound-object-name=agent-pod", f"--bound-object-uid={pod.metadata.uid}", check=True,
    ).stdout  # fmt: skip
    env = workload_env(release, "DaemonSet", "agent-pod", DEFAULT_NODE)
    port = free_port()
    env.update(
        MBCAS_AGENT_KUBECONFIG=str(
            token_kubeconfig(control_plane, token.strip(), tmp_path / "agent.kubeconfig")
        ),
        MBCAS_AGENT_METRICS_PORT=str(port),
        MBCAS_AGENT_BIND_ADDRESS="127.0.0.1",
        # This machine's own cgroup tree stands in for the host's (read only, as in the DaemonSet).
        MBCAS_AGENT_CGROUP_ROOT="/sys/fs/cgroup",
    )
    log = tmp_path / "agent.log"
    with mbcas_process("agent", env, log) as proc:
        # Ready = pods listed and watched on its node, its Node read, a first tick done.
        wait_logged(lambda: http_get(port, "/readyz")[0] == 200, "/readyz", log, timeout=60)
        assert http_get(port, "/healthz")[0] == 200
        # The live ConfigMap was read through the chart's Role (it differs from the defaults:
        # the release namespace is excluded).
        wait_for(
            lambda: 'mbcas_agent_config_reloads_total{result="applied"} 1.0' in http_get(port, "/metrics")[1],
            timeout=30,
            message="the live ConfigMap applied",
        )
        assert proc.poll() is None, log.read_text()
    assert refusals(log) == [], "the chart's RBAC refused the agent something"
