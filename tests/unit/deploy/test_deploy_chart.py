"""The Helm chart, rendered by a real helm (no cluster needed).

Behaviours: the generated files are current (the chart's CRD copy equals ``crds/``, the raw
manifests equal a fresh render), ``helm lint --strict`` passes, every MBCAS pod is hardened and
bounded, the agent DaemonSet gets its node name and a read-only host cgroup mount, the RBAC is
least privilege by construction (checked rule by rule), and the node-confinement policy names the
agent's ServiceAccount for any release name and namespace. Whether the apiserver accepts all of
this, and enforces it, is tested on the real control plane in tests/integration/test_deploy.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

import mbcas
from mbcas.local import helm

ROOT = Path(__file__).resolve().parents[3]
PATHS = helm.repo_paths(ROOT)

Docs = list[dict[str, Any]]


def render(*set_values: str, release: str = "mbcas", namespace: str = "mbcas-system") -> Docs:
    text = helm.template(release=release, namespace=namespace, set_values=set_values, paths=PATHS)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: Docs, kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def rules_of(docs: Docs, kind: str, name: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = find(docs, kind, name)["rules"]
    return rules


def grants(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r.get("apiGroups", [])
        and resource in r.get("resources", [])
        and verb in r.get("verbs", [])
        and not r.get("resourceNames")
        for r in rules
    )


def pod_specs(docs: Docs) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in {"Deployment", "DaemonSet", "StatefulSet", "Job"}:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def docs() -> Docs:
    return render()


def test_chart_crd_is_the_repository_crd() -> None:
    assert PATHS.chart_crd.read_text() == PATHS.crd.read_text(), (
        "run 'make manifests' to copy crds/ into the chart"
    )


def test_raw_manifests_are_rendered_from_the_current_chart() -> None:
    assert helm.stale_files(paths=PATHS) == [], "run 'make manifests'"
    docs = [d for d in yaml.safe_load_all(PATHS.manifests.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    # kubectl apply creates in file order: the CRD and the Namespace must come before their users.
    assert kinds[:2] == ["CustomResourceDefinition", "Namespace"]
    assert find(docs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_helm_lint_strict_passes() -> None:
    report = helm.lint(paths=PATHS)
    assert "0 chart(s) failed" in report


def test_helm_errors_carry_helms_message(tmp_path: Path) -> None:
    with pytest.raises(helm.HelmError, match="values"):
        helm.template(values_files=[tmp_path / "missing-values.yaml"], paths=PATHS)
    with pytest.raises(helm.HelmError, match="no Helm chart"):
        helm.repo_paths(tmp_path)


def test_every_pod_is_hardened_and_bounded(docs: Docs) -> None:
    specs = dict(pod_specs(docs))
    assert set(specs) == {"mbcas-agent", "mbcas-controller"}
    for name, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{name}: {flag}"
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["privileged"] is False, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["runAsNonRoot"] is True, name
            assert ctx["capabilities"] == {"drop": ["ALL"]}, name
            assert "add" not in ctx["capabilities"], name
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name}: {kind}"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] in {"/readyz", "/healthz"}
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{name}: a writable /tmp on a read-only root filesystem"


def test_agent_daemonset_reads_host_cgroups_read_only_on_every_node(docs: Docs) -> None:
    ds = find(docs, "DaemonSet", "mbcas-agent")
    spec = ds["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    volumes = {v["name"]: v for v in spec["volumes"]}
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/host/sys/fs/cgroup")
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["hostPath"]["path"] == "/sys/fs/cgroup"
    host_paths = [v for v in spec["volumes"] if "hostPath" in v]
    assert host_paths == [volumes[mount["name"]]], "the cgroup tree is the only host path"
    assert {"operator": "Exists"} in spec["tolerations"]
    assert container["ports"][0]["containerPort"] == 9100
    assert spec["serviceAccountName"] == "mbcas-agent"


def test_controller_has_two_spread_replicas_and_a_disruption_budget(docs: Docs) -> None:
    deploy = find(docs, "Deployment", "mbcas-controller")
    assert deploy["spec"]["replicas"] == 2
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    pdb = find(docs, "PodDisruptionBudget", "mbcas-controller")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    anti = deploy["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    ports = {
        p["name"]: p["containerPort"] for p in deploy["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert ports == {"metrics": 9101, "health": 8081}


def test_metrics_services_select_their_pods(docs: Docs) -> None:
    for component, workload in (("agent", "DaemonSet"), ("controller", "Deployment")):
        svc = find(docs, "Service", f"mbcas-{component}-metrics")
        labels = find(docs, workload, f"mbcas-{component}")["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items()
        assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"], "ServiceMonitor is opt-in"
    monitors = [d for d in render("metrics.serviceMonitor.enabled=true") if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2


def test_no_role_reads_secrets_or_uses_wildcards(docs: Docs) -> None:
    roles = [d for d in docs if d["kind"] in {"Role", "ClusterRole"}]
    assert len(roles) == 4
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], f"{role['metadata']['name']}: wildcard in {key}"
            assert "secrets" not in rule["resources"], role["metadata"]["name"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_agent_writes_allocations_but_cannot_resize_or_write_events(docs: Docs) -> None:
    rules = rules_of(docs, "ClusterRole", "mbcas-agent")
    for verb in ("create", "update", "patch", "delete", "list", "watch"):
        assert grants(rules, "mbcas.io", "podallocations", verb), verb
    for verb in ("get", "list", "watch"):
        assert grants(rules, "", "pods", verb)
    assert grants(rules, "", "nodes", "get")
    assert not grants(rules, "", "pods/resize", "patch")
    for verb in ("create", "update", "patch", "delete"):
        assert not grants(rules, "", "pods", verb)
        assert not grants(rules, "", "events", verb)
        assert not grants(rules, "events.k8s.io", "events", verb)
        assert not grants(rules, "", "nodes", verb)
    assert not grants(rules, "mbcas.io", "podallocations/status", "patch")
    # Its ConfigMap access is by name only.
    ns_rules = rules_of(docs, "Role", "mbcas-agent")
    assert ns_rules == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["mbcas-config"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    assert find(docs, "ConfigMap", "mbcas-config")


def test_controller_resizes_and_reports_but_cannot_delete_pods(docs: Docs) -> None:
    rules = rules_of(docs, "ClusterRole", "mbcas-controller")
    assert grants(rules, "", "pods/resize", "patch")
    assert grants(rules, "mbcas.io", "podallocations/status", "patch")
    assert grants(rules, "", "events", "create")
    assert grants(rules, "events.k8s.io", "events", "create")
    for verb in ("create", "update", "patch", "delete", "deletecollection"):
        assert not grants(rules, "", "pods", verb), verb
    assert not grants(rules, "", "pods/eviction", "create")
    for verb in ("create", "update", "patch"):
        assert not grants(rules, "mbcas.io", "podallocations", verb), "the controller cannot change decisions"
    assert grants(rules, "mbcas.io", "podallocations", "delete"), "it deletes allocations naming another node"
    assert grants(rules, "", "nodes", "watch") and not grants(rules, "", "nodes", "patch")


def test_bindings_bind_each_role_to_its_own_service_account(docs: Docs) -> None:
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        for component in ("agent", "controller"):
            binding = find(docs, kind, f"mbcas-{component}")
            assert binding["roleRef"] == {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": role_kind,
                "name": f"mbcas-{component}",
            }
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": f"mbcas-{component}", "namespace": "mbcas-system"}
            ]


@pytest.mark.parametrize(("release", "namespace"), [("mbcas", "mbcas-system"), ("edge", "platform")])
def test_node_confinement_policy_matches_the_agent_of_the_release(release: str, namespace: str) -> None:
    docs = render(release=release, namespace=namespace)
    prefix = release if "mbcas" in release else f"{release}-mbcas"
    policy = find(docs, "ValidatingAdmissionPolicy", f"{prefix}-agent-node-confinement")
    binding = find(docs, "ValidatingAdmissionPolicyBinding", f"{prefix}-agent-node-confinement")
    assert policy["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    sa = find(docs, "DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"]
    assert sa == f"{prefix}-agent"
    (condition,) = policy["spec"]["matchConditions"]
    assert condition["expression"] == f"request.userInfo.username == 'system:serviceaccount:{namespace}:{sa}'"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert set(rule["operations"]) == {"CREATE", "UPDATE", "DELETE"}
    assert rule["apiGroups"] == ["mbcas.io"]
    assert policy["spec"]["failurePolicy"] == "Fail"
    text = yaml.safe_dump(policy)
    assert "authentication.kubernetes.io/node-name" in text and "oldObject.spec.nodeName" in text


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((PATHS.chart / "Chart.yaml").read_text())
    assert chart["appVersion"] == mbcas.__version__
    assert chart["kubeVersion"].startswith(">=1.3")


def test_values_can_disable_optional_parts() -> None:
    docs = render(
        "admissionPolicy.enabled=false",
        "controller.podDisruptionBudget.enabled=false",
        "metrics.service.enabled=false",
    )
    kinds = {d["kind"] for d in docs}
    assert not kinds & {
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "PodDisruptionBudget",
    }
    assert "Service" not in kinds
    image = find(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["image"]
    chart = yaml.safe_load((PATHS.chart / "Chart.yaml").read_text())
    assert image == f"ghcr.io/mbcas/mbcas-agent:{chart['appVersion']}"
    pinned = render("agent.image.digest=sha256:" + "a" * 64, "image.registry=registry.example/x")
    image = find(pinned, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example/x/mbcas-agent@sha256:" + "a" * 64


# ------------------------------------------------------------------ values cover every setting


def container_env(docs: Docs, kind: str, pod_name: str, namespace: str) -> dict[str, str]:
    """The container's environment as the kubelet would give it (fieldRefs resolved)."""
    container = find(docs, kind)["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        path = item["valueFrom"]["fieldRef"]["fieldPath"]
        env[item["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace}.get(path, "node-x")
    return env


# Settings the chart derives from other values or from the pod rather than from controller.settings.
CONTROLLER_CHART_MANAGED = {"metrics_port", "health_port", "identity", "lease_namespace", "config_map"}
# Settings whose null in values.yaml means "the chart picks" (lease_name: <release>-controller).
CONTROLLER_CHART_DEFAULTED = {"lease_name"}


def test_controller_settings_cover_every_config_field_with_its_default() -> None:
    config = pytest.importorskip("mbcas.controller.config", reason="the controller's config has not landed")
    fields = config.ControllerConfig.model_fields
    settings = yaml.safe_load((PATHS.chart / "values.yaml").read_text())["controller"]["settings"]
    assert set(settings) | CONTROLLER_CHART_MANAGED == set(fields), "values.yaml must list every setting"
    assert not set(settings) & CONTROLLER_CHART_MANAGED
    for key, value in settings.items():
        if key in CONTROLLER_CHART_DEFAULTED and value is None:
            continue
        default = fields[key].get_default(call_default_factory=True)
        if isinstance(default, BaseModel):  # a nested section (rules): every key, every default
            default = default.model_dump()
        assert value == default, (
            f"controller.settings.{key} = {value!r}, but the binary's default is {default!r}"
        )


def test_controller_env_from_the_chart_is_read_by_its_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = pytest.importorskip("mbcas.controller.config", reason="the controller's config has not landed")
    docs = render(
        "controller.settings.rules.max_step_mcpu=2500000",
        "controller.settings.namespace=team-a",
        "controller.settings.rules.max_step_ratio=0.125",
        "controller.settings.leader_election=false",
        "controller.metricsPort=9200",
        namespace="platform",
    )
    env = container_env(docs, "Deployment", "mbcas-controller-abc", "platform")
    assert env["MBCAS_CONTROLLER_RULES__MAX_STEP_MCPU"] == "2500000", (
        "numbers must not be printed with an exponent"
    )
    for name in [n for n in os.environ if n.startswith("MBCAS_CONTROLLER_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = config.ControllerConfig()
    assert (cfg.rules.max_step_mcpu, cfg.namespace, cfg.rules.max_step_ratio, cfg.leader_election) == (
        2500000,
        "team-a",
        0.125,
        False,
    )
    assert (cfg.metrics_port, cfg.health_port) == (9200, 8081)
    assert (cfg.lease_namespace, cfg.lease_name, cfg.identity) == (
        "platform",
        "mbcas-controller",
        "mbcas-controller-abc",
    )
    assert cfg.config_map_ref() == ("platform", "mbcas-config"), (
        "the controller reads the release's ConfigMap"
    )
    assert cfg.rules.min_interval_s == 10.0  # the safety rules accept the chart's defaults


# Agent settings the chart derives from other values or from the pod, and the live part (ConfigMap).
AGENT_CHART_MANAGED = {"node", "namespace", "cgroup_root", "metrics_port", "config_map", "live"}


def test_agent_settings_and_live_config_cover_every_field_with_its_default() -> None:
    config = pytest.importorskip("mbcas.agent.config", reason="the agent's config has not landed")
    values = yaml.safe_load((PATHS.chart / "values.yaml").read_text())["agent"]
    fields = config.AgentConfig.model_fields
    assert set(values["settings"]) | AGENT_CHART_MANAGED == set(fields), "values.yaml must list every setting"
    assert not set(values["settings"]) & AGENT_CHART_MANAGED
    for key, value in values["settings"].items():
        assert value == fields[key].default, (
            f"agent.settings.{key} = {value!r} != default {fields[key].default!r}"
        )
    # The shared live settings (top-level config): every key of every section, at its default.
    shared = yaml.safe_load((PATHS.chart / "values.yaml").read_text())["config"]
    defaults = config.LiveConfig()
    dumped = defaults.model_dump(mode="json")
    assert set(shared) == set(dumped), "values.yaml must list every live setting"
    for key, value in shared.items():
        if isinstance(dumped[key], dict):
            assert set(value) == set(dumped[key]), f"values.yaml config.{key} must list every setting"
    assert config.LiveConfig.model_validate(shared) == defaults, "config in values.yaml != the defaults"
    for key, value in shared.items():
        assert config.LiveConfig.model_validate({key: value}) == defaults, f"config.{key} != default"


def test_agent_env_and_configmap_from_the_chart_are_read_by_its_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = pytest.importorskip("mbcas.agent.config", reason="the agent's config has not landed")
    docs = render(
        "agent.settings.tick_s=2.5",
        "agent.settings.reserve_cpu=1500m",
        "agent.settings.cgroup_prefix=nested",
        "config.mode=recommend",
        "config.planner.max_cpu=3",
        "config.namespace_modes.batch=observe",
        "config.contract.staleness_s=300",
        namespace="platform",
        release="edge",
    )
    env = container_env(docs, "DaemonSet", "edge-mbcas-agent-x", "platform")
    for name in [
        n for n in os.environ if n.startswith("MBCAS_AGENT_") or n in ("NODE_NAME", "POD_NAMESPACE")
    ]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = config.AgentConfig()
    assert (cfg.node, cfg.cgroup_root, cfg.metrics_port) == ("node-x", "/host/sys/fs/cgroup", 9100)
    assert (cfg.tick_s, cfg.reserve_cpu, cfg.cgroup_prefix) == (2.5, "1500m", "nested")
    assert cfg.config_map_ref() == ("platform", "edge-mbcas-config")
    configmap = find(docs, "ConfigMap", "edge-mbcas-config")
    live = cfg.live.merged(yaml.safe_load(configmap["data"]["config.yaml"]))
    assert live.mode == "recommend" and live.planner.max_cpu == 3.0
    assert live.mode_for("batch") == "observe"
    assert "platform" in live.exclude_namespaces, "the release namespace is never managed"
    assert cfg.namespace == "platform" and {"platform", "kube-system"} <= cfg.protected_namespaces
    assert set(config.SYSTEM_NAMESPACES) <= set(live.exclude_namespaces)
    assert live.contract.staleness_s == 300.0
    # The controller reads the same ConfigMap's contract section.
    shared = pytest.importorskip("mbcas.controller.shared")
    controller_env = container_env(docs, "Deployment", "edge-mbcas-controller-x", "platform")
    assert controller_env["MBCAS_CONTROLLER_CONFIG_MAP"] == "platform/edge-mbcas-config"
    settings = shared.SharedSettings(_OneConfigMap(configmap), ("platform", "edge-mbcas-config"), poll_s=10)
    assert settings.reload() == live.contract


def test_agent_may_be_allowed_to_post_events() -> None:
    assert not grants(rules_of(render(), "ClusterRole", "mbcas-agent"), "", "events", "create")
    rules = rules_of(render("agent.rbac.events=true"), "ClusterRole", "mbcas-agent")
    assert grants(rules, "", "events", "create")
    assert not grants(rules, "", "events", "delete")


def test_check_finds_stale_files_and_manifests_refreshes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    shutil.copytree(ROOT / "crds", tmp_path / "crds")
    copy = helm.repo_paths(tmp_path)
    assert helm.main(["--root", str(tmp_path), "check"]) == 0
    copy.crd.write_text(copy.crd.read_text().replace("shortNames: [pa]", "shortNames: [pa, palloc]"))
    copy.manifests.write_text(copy.manifests.read_text() + "# hand edit\n")
    assert helm.main(["--root", str(tmp_path), "check"]) == 1
    err = capsys.readouterr().err
    assert (
        "deploy/helm/mbcas/crds/podallocations.mbcas.io.yaml" in err and "deploy/manifests/mbcas.yaml" in err
    )
    assert helm.main(["--root", str(tmp_path), "manifests"]) == 0
    assert helm.stale_files(paths=copy) == []
    assert "palloc" in copy.chart_crd.read_text() and "palloc" in copy.manifests.read_text()
    assert "# hand edit" not in copy.manifests.read_text()
    out = tmp_path / "out.yaml"
    assert (
        helm.main(["--root", str(tmp_path), "template", "--namespace", "x", "--no-crds", "-o", str(out)]) == 0
    )
    kinds = {d["kind"] for d in yaml.safe_load_all(out.read_text()) if d}
    assert "CustomResourceDefinition" not in kinds and "DaemonSet" in kinds
    assert helm.main(["--root", str(tmp_path / "nowhere"), "lint"]) == 1


def test_local_network_values_are_off_by_default_and_reach_every_mbcas_pod(docs: Docs) -> None:
    """network.* (make deploy-local): host network, probes on loopback, apiserver on loopback."""

    def probes(container: dict[str, Any]) -> list[dict[str, Any]]:
        return [container[p]["httpGet"] for p in ("livenessProbe", "readinessProbe")]

    for name, spec in pod_specs(docs):
        assert "hostNetwork" not in spec, name
        container = spec["containers"][0]
        assert all("host" not in p for p in probes(container)), name
        assert not {e["name"] for e in container["env"]} & {
            "KUBERNETES_SERVICE_HOST",
            "KUBERNETES_SERVICE_PORT",
        }
    local = render(
        "network.hostNetwork=true",
        "network.probeHost=127.0.0.1",
        "network.apiServerHost=127.0.0.1",
        "network.apiServerPort=6443",
    )
    specs = dict(pod_specs(local))
    assert set(specs) == {"mbcas-agent", "mbcas-controller"}
    for name, spec in specs.items():
        assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet", name
        container = spec["containers"][0]
        assert all(p["host"] == "127.0.0.1" for p in probes(container)), name
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1" and env["KUBERNETES_SERVICE_PORT"] == "6443"


class _OneConfigMap:
    """A Kube stand-in that serves one rendered ConfigMap (what the controller GETs)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def request_json(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        assert (method, path.rsplit("/", 1)[-1]) == ("GET", self.body["metadata"]["name"])
        return self.body
