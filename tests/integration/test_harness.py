"""The local control plane is a real Kubernetes control plane, and the node emulator acts like a
kubelet where MBCAS depends on it (pod start, in-place resize, deletion, binding)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from helpers import (
    DEFAULT_NODE,
    condition,
    make_pod,
    pod_bound_token,
    resize_pod,
    wait_for,
    wait_for_pod,
    wait_running,
)

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------ the control plane is real


def test_server_is_kubernetes_1_35_or_newer(control_plane: Any) -> None:
    proc = control_plane.kubectl("get", "--raw", "/version", check=True)
    version = json.loads(proc.stdout)
    assert (int(version["major"]), int(version["minor"].rstrip("+"))) >= (1, 35)
    assert version["gitVersion"].startswith("v1.")


def test_readyz_and_resize_subresource_are_served(control_plane: Any) -> None:
    status, body = control_plane.get("/readyz")
    assert (status, body) == (200, "ok")
    status, body = control_plane.get("/api/v1")
    assert status == 200
    names = {r["name"] for r in json.loads(body)["resources"]}
    assert {"pods/resize", "pods/binding", "pods/status"} <= names


def test_crd_is_created_and_served(api_client: Any, namespace: str) -> None:
    group = f"t{uuid.uuid4().hex[:6]}.mbcas.io"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"cpu": {"type": "integer", "minimum": 0}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(crd)
    try:
        wait_for(
            lambda: any(
                c.type == "Established" and c.status == "True"
                for c in (ext.read_custom_resource_definition(f"widgets.{group}").status.conditions or [])
            ),
            message="CRD Established",
        )
        custom = client.CustomObjectsApi(api_client)
        body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"cpu": 3}}
        created = wait_for(
            lambda: custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", body)
        )
        assert created["spec"]["cpu"] == 3
        with pytest.raises(ApiException) as err:  # the schema is enforced by the apiserver
            bad = {**body, "metadata": {"name": "bad"}, "spec": {"cpu": -1}}
            custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", bad)
        assert err.value.status == 422
    finally:
        ext.delete_custom_resource_definition(f"widgets.{group}")


def _can(api_client: Any, namespace: str, user: str, verb: str, resource: str) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource},
        },
    }
    result = client.AuthorizationV1Api(api_client).create_subject_access_review(review)
    return bool(result.status.allowed)


def test_rbac_denies_a_service_account_without_a_role_and_allows_it_with_one(
    control_plane: Any, api_client: Any, core_v1: Any, namespace: str
) -> None:
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    user = f"system:serviceaccount:{namespace}:reader"
    assert not _can(api_client, namespace, user, "list", "pods")
    denied = control_plane.kubectl("auth", "can-i", "list", "pods", "-n", namespace, f"--as={user}")
    assert denied.stdout.strip() == "no"

    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    wait_for(lambda: _can(api_client, namespace, user, "list", "pods"), message="RBAC allows after binding")
    assert not _can(api_client, namespace, user, "delete", "pods")
    # Impersonation goes through real authentication/authorization of the request too.
    listed = control_plane.kubectl("get", "pods", "-n", namespace, f"--as={user}")
    assert listed.returncode == 0, listed.stderr
    forbidden = control_plane.kubectl("get", "secrets", "-n", namespace, f"--as={user}")
    assert forbidden.returncode != 0 and "forbidden" in forbidden.stderr.lower()


def test_service_account_tokens_are_issued(core_v1: Any, namespace: str) -> None:
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "agent"}})
    token = core_v1.create_namespaced_service_account_token(
        "agent", namespace, {"spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"]}}
    )
    assert token.status.token.count(".") == 2  # a signed JWT


def test_garbage_collector_deletes_a_pod_whose_owner_is_gone(
    core_v1: Any, namespace: str, node_emulator: Any
) -> None:
    owner = core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core_v1.create_namespaced_pod(namespace, make_pod("owned", "100m", "200m", owner=ref))
    wait_running(core_v1, namespace, "owned")
    core_v1.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        try:
            core_v1.read_namespaced_pod("owned", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=60, message="garbage collection of the owned pod")


# ------------------------------------------------------------------ the emulator acts as a kubelet


def test_node_looks_real(core_v1: Any, node_emulator: Any) -> None:
    node = core_v1.read_node(DEFAULT_NODE)
    assert node.metadata.labels["kubernetes.io/os"] == "linux"
    assert node.metadata.labels["kubernetes.io/hostname"] == DEFAULT_NODE
    assert node.status.allocatable["cpu"] == "4"
    assert node.status.allocatable["memory"] == "8Gi"
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "True"


def test_pod_runs_with_container_resources_in_status(
    core_v1: Any, namespace: str, node_emulator: Any
) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("web", "250m", "500m", memory_request="64Mi"))
    pod = wait_running(core_v1, namespace, "web")
    status = pod.status.container_statuses[0]
    assert status.ready and status.started
    assert status.container_id.startswith("containerd://")
    assert status.resources.requests == {"cpu": "250m", "memory": "64Mi"}
    assert status.resources.limits == {"cpu": "500m"}
    assert status.allocated_resources == {"cpu": "250m", "memory": "64Mi"}
    assert pod.status.qos_class == "Burstable"
    assert pod.status.pod_ip
    assert pod.status.observed_generation == pod.metadata.generation
    assert condition(pod, "Ready").status == "True"


def test_unscheduled_pod_is_bound_by_the_emulator(core_v1: Any, namespace: str, node_emulator: Any) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("floating", "100m", "100m", node=None))
    pod = wait_running(core_v1, namespace, "floating")
    assert pod.spec.node_name == DEFAULT_NODE
    assert condition(pod, "PodScheduled").status == "True"


def test_resize_is_accepted_and_reported_in_status(core_v1: Any, namespace: str, node_emulator: Any) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("grow", "100m", "200m"))
    before = wait_running(core_v1, namespace, "grow")
    resized = resize_pod(core_v1, namespace, "grow", cpu_request="300m", cpu_limit="1")
    assert resized.metadata.generation == before.metadata.generation + 1
    assert resized.spec.containers[0].resources.limits["cpu"] == "1"

    def settled(pod: Any) -> bool:
        c = pod.status.container_statuses[0]
        return (
            c.resources.limits.get("cpu") == "1"
            and c.resources.requests.get("cpu") == "300m"
            and c.allocated_resources.get("cpu") == "300m"
            and pod.status.observed_generation == resized.metadata.generation
            and condition(pod, "PodResizeInProgress") is None
            and condition(pod, "PodResizePending") is None
        )

    wait_for_pod(core_v1, namespace, "grow", settled, timeout=15, message="resize reported in status")


def test_resize_beyond_node_allocatable_is_infeasible(
    core_v1: Any, namespace: str, node_emulator: Any
) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("huge", "100m", "200m"))
    wait_running(core_v1, namespace, "huge")
    resized = resize_pod(core_v1, namespace, "huge", cpu_request="64", cpu_limit="64")

    def pending(pod: Any) -> Any:
        cond = condition(pod, "PodResizePending")
        return (
            cond is not None
            and cond.reason == "Infeasible"
            and cond.observed_generation == resized.metadata.generation
        )

    pod = wait_for_pod(core_v1, namespace, "huge", pending, timeout=15, message="PodResizePending/Infeasible")
    status = pod.status.container_statuses[0]
    assert status.resources.limits["cpu"] == "200m"  # nothing was actuated
    assert status.allocated_resources["cpu"] == "100m"

    # Asking for something that fits again clears the pending condition.
    resize_pod(core_v1, namespace, "huge", cpu_request="150m", cpu_limit="300m")
    wait_for_pod(
        core_v1,
        namespace,
        "huge",
        lambda p: (
            condition(p, "PodResizePending") is None
            and p.status.container_statuses[0].resources.limits["cpu"] == "300m"
        ),
        timeout=15,
        message="pending cleared after a feasible resize",
    )


def test_resize_that_fits_allocatable_but_not_free_room_is_deferred_then_done(
    core_v1: Any, namespace: str, make_emulator: Any
) -> None:
    from mbcas.local.emulator import NodeSpec

    node = f"small-{uuid.uuid4().hex[:6]}"
    make_emulator(nodes=[NodeSpec(node, "2", "4Gi")], resize_delay=0.1)
    core_v1.create_namespaced_pod(namespace, make_pod("a", "1", "1", node=node))
    core_v1.create_namespaced_pod(namespace, make_pod("b", "500m", "1", node=node))
    wait_running(core_v1, namespace, "a")
    wait_running(core_v1, namespace, "b")
    resize_pod(core_v1, namespace, "b", cpu_request="1500m", cpu_limit="2")
    wait_for_pod(
        core_v1,
        namespace,
        "b",
        lambda p: (c := condition(p, "PodResizePending")) is not None and c.reason == "Deferred",
        timeout=15,
        message="PodResizePending/Deferred",
    )
    # Freeing room on the node lets the deferred resize go through, as the kubelet retries it.
    core_v1.delete_namespaced_pod("a", namespace)
    wait_for_pod(
        core_v1,
        namespace,
        "b",
        lambda p: (
            condition(p, "PodResizePending") is None
            and p.status.container_statuses[0].resources.requests["cpu"] == "1500m"
        ),
        timeout=20,
        message="deferred resize completed after room was freed",
    )


def test_pod_that_does_not_fit_is_rejected_like_the_kubelet_does(
    core_v1: Any, namespace: str, node_emulator: Any
) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("too-big", "16", "16"))
    pod = wait_for_pod(
        core_v1, namespace, "too-big", lambda p: p.status.phase == "Failed", message="OutOfcpu"
    )
    assert pod.status.reason == "OutOfcpu"


def test_deleted_pod_is_finalised(core_v1: Any, namespace: str, node_emulator: Any) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("short", "100m", "100m"))
    wait_running(core_v1, namespace, "short")
    core_v1.delete_namespaced_pod("short", namespace)  # graceful: a kubelet must confirm

    def gone() -> bool:
        try:
            core_v1.read_namespaced_pod("short", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=15, message="pod deletion confirmed by the emulator")


def test_emulator_survives_an_apiserver_restart(
    control_plane: Any, core_v1: Any, namespace: str, node_emulator: Any
) -> None:
    core_v1.create_namespaced_pod(namespace, make_pod("before", "100m", "200m"))
    wait_running(core_v1, namespace, "before")
    control_plane.restart_apiserver()
    core_v1.create_namespaced_pod(namespace, make_pod("after", "100m", "200m"))
    wait_running(core_v1, namespace, "after", timeout=30)
    resize_pod(core_v1, namespace, "before", cpu_limit="400m")
    wait_for_pod(
        core_v1,
        namespace,
        "before",
        lambda p: p.status.container_statuses[0].resources.limits["cpu"] == "400m",
        timeout=30,
        message="resize handled after the restart",
    )


def test_pod_bound_token_carries_the_node_name(
    core_v1: Any, api_client: Any, namespace: str, node_emulator: Any
) -> None:
    """A token bound to a pod on an emulated node authenticates with the node-name extra (as the
    agent's own token will on a real node), so node-scoped authorization can be tested here."""
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "agent"}})
    body = make_pod("agent-pod", "10m", "10m")
    body["spec"]["serviceAccountName"] = "agent"
    pod = core_v1.create_namespaced_pod(namespace, body)
    wait_running(core_v1, namespace, "agent-pod")
    token = pod_bound_token(core_v1, namespace, "agent", pod)
    review = client.AuthenticationV1Api(api_client).create_token_review({"spec": {"token": token}})
    assert review.status.authenticated
    assert review.status.user.username == f"system:serviceaccount:{namespace}:agent"
    assert review.status.user.extra["authentication.kubernetes.io/node-name"] == [DEFAULT_NODE]
    assert review.status.user.extra["authentication.kubernetes.io/pod-name"] == ["agent-pod"]


# ------------------------------------------------------------------ `mbcas cluster up/down`


@pytest.mark.slow
def test_cluster_cli_runs_in_the_background_and_down_removes_everything(control_plane: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from mbcas.local.detached import state_dir
    from mbcas.local.procs import pid_alive

    name = f"t-{uuid.uuid4().hex[:6]}"
    cli = [sys.executable, "-m", "mbcas.cli.main", "cluster"]
    try:
        up = subprocess.run(
            [*cli, "up", "--name", name], capture_output=True, text=True, timeout=120, check=False
        )
        assert up.returncode == 0, up.stderr
        last = up.stdout.strip().splitlines()[-1]
        assert last.startswith("export KUBECONFIG=")
        kubeconfig = last.split("=", 1)[1]
        state = json.loads((state_dir(name) / "state.json").read_text())
        assert set(state["pids"]) == {"etcd", "kube-apiserver", "kube-controller-manager", "node-emulator"}
        # The command has returned; the cluster still answers, with its emulated node.
        kubectl = [str(control_plane.kubectl_path), f"--kubeconfig={kubeconfig}"]
        version = subprocess.run(
            [*kubectl, "get", "--raw", "/version"], capture_output=True, text=True, check=True
        )
        assert json.loads(version.stdout)["minor"].startswith("35")
        wait_for(
            lambda: (
                "mbcas-node-1"
                in subprocess.run(
                    [*kubectl, "get", "nodes", "-o", "name"], capture_output=True, text=True, check=False
                ).stdout
            ),
            message="the emulated node registered",
        )
        status = subprocess.run([*cli, "status", "--name", name], capture_output=True, text=True, check=False)
        assert status.returncode == 0 and "healthy" in status.stdout, status.stdout
        again = subprocess.run(
            [*cli, "up", "--name", name], capture_output=True, text=True, timeout=60, check=False
        )
        assert again.stdout.strip().splitlines()[-1] == last  # idempotent
    finally:
        down = subprocess.run(
            [*cli, "down", "--name", name], capture_output=True, text=True, timeout=60, check=False
        )
    assert down.returncode == 0, down.stderr
    assert not state_dir(name).exists()
    assert not any(pid_alive(pid) for pid in state["pids"].values())
    assert not Path(kubeconfig).exists()
