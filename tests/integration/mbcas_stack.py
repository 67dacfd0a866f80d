"""A running MBCAS on the local control plane for the observability tests: a kernel-mode emulated
node (real burners in real cgroups under real CFS quotas), the node agent and the controller
in-process, each serving ``/metrics`` over HTTP on loopback as in a pod.

Import the fixture into a test module (``from mbcas_stack import stack_fixture  # noqa: F401``),
then ask for ``stack``; it is module-scoped and stops everything it started, even when a test fails.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from helpers import make_pod, wait_for, wait_running

__all__ = ["MANAGED", "UNMANAGED", "Stack", "scrape", "stack_fixture", "wait_scrape"]

# Two managed (Burstable) pods that burn CPU, and one Guaranteed pod the agent never manages.
MANAGED = {"busy": ("100m", "300m", "0.5"), "calm": ("100m", "300m", "0.05")}
UNMANAGED = "fixed"


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        body: bytes = resp.read()
    return body.decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Stack:
    namespace: str
    node: str
    agent_url: str
    controller_url: str
    kubeconfig: str
    agent: Any
    controller: Any


@pytest.fixture(scope="module", name="stack")
def stack_fixture(
    core_v1: Any, api_client: Any, kubeconfig: str, crd: str, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    from mbcas.agent.config import AgentConfig
    from mbcas.agent.health import HealthServer
    from mbcas.agent.loop import NodeAgent
    from mbcas.agent.metrics import AgentMetrics
    from mbcas.cgroups.reader import CgroupReader
    from mbcas.controller.config import ControllerConfig
    from mbcas.controller.main import Controller
    from mbcas.kube.client import build_kube
    from mbcas.kube.pods import NodePods
    from mbcas.local.emulator import DEMAND_ANNOTATION, NodeEmulator, NodeSpec
    from mbcas.local.kernel import KernelMode

    suffix = uuid.uuid4().hex[:6]
    node, namespace = f"obs-{suffix}", f"t-obs-{suffix}"
    with contextlib.ExitStack() as stack:
        emulator = NodeEmulator(
            api_client=api_client,
            nodes=[NodeSpec(node, "1.5", "4Gi")],
            kernel=KernelMode(),
            resize_delay=0.2,
            bind_unscheduled=False,
        )
        emulator.start()
        stack.callback(emulator.stop)
        sandbox = emulator.sandbox
        if sandbox is None or not sandbox.available:
            pytest.skip(f"cannot create cgroups here: {sandbox.reason if sandbox else 'no sandbox'}")
        core_v1.create_namespace({"metadata": {"name": namespace, "labels": {"mbcas.io/test": "true"}}})
        stack.callback(_quietly, core_v1.delete_namespace, namespace)
        for name, (req, lim, demand) in MANAGED.items():
            body = make_pod(name, req, lim, node, annotations={DEMAND_ANNOTATION: demand})
            core_v1.create_namespaced_pod(namespace, body)
        core_v1.create_namespaced_pod(
            namespace,
            make_pod(UNMANAGED, "100m", "100m", node, memory_request="32Mi", memory_limit="32Mi"),
        )
        for name in [*MANAGED, UNMANAGED]:
            wait_running(core_v1, namespace, name)

        kube = build_kube(kubeconfig)
        stack.callback(kube.close)
        controller_port = _free_port()
        controller = Controller(
            ControllerConfig(
                kubeconfig=kubeconfig, namespace=namespace, metrics_port=controller_port, health_port=0,
                bind_address="127.0.0.1", leader_election=False, rules={"min_interval_s": 1.0}, resync_s=2.0,
            )
        )  # fmt: skip
        controller.start()
        stack.callback(controller.stop)

        config = AgentConfig(
            node=node,
            tick_s=1.0,
            cgroup_root=str(sandbox.root),
            cgroup_prefix=sandbox.prefix,
            config_map=None,
        )
        metrics = AgentMetrics()
        pods = NodePods(kube, node)
        pods.start()
        stack.callback(pods.stop)
        agent = NodeAgent(
            config, node=node, pods=pods, reader=CgroupReader(sandbox.root), kube=kube, metrics=metrics
        )
        server = HealthServer(metrics, agent.healthy, agent.ready, port=0, addr="127.0.0.1")
        server.start()
        stack.callback(server.stop)
        agent_stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(agent_stop,), name="obs-agent", daemon=True)
        thread.start()
        stack.callback(thread.join, 10)
        stack.callback(agent_stop.set)

        result = Stack(
            namespace=namespace,
            node=node,
            agent_url=f"http://127.0.0.1:{server.port}/metrics",
            controller_url=f"http://127.0.0.1:{controller_port}/metrics",
            kubeconfig=kubeconfig,
            agent=agent,
            controller=controller,
        )
        # Ready once every managed pod has a decision the controller applied.
        wait_for(
            lambda: _applied(api_client, namespace) >= set(MANAGED),
            timeout=60,
            message="both managed pods' allocations Applied",
        )
        yield result


def _quietly(func: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(Exception):
        func(*args)


def _applied(api_client: Any, namespace: str) -> set[str]:
    from kubernetes import client

    items = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        "mbcas.io", "v1alpha1", namespace, "podallocations"
    )
    return {
        i["spec"]["podName"]
        for i in items.get("items", [])
        if (i.get("status") or {}).get("phase") == "Applied"
    }


def wait_scrape(url: str, predicate: Callable[[str], bool], message: str, timeout: float = 30) -> str:
    """Scrape ``url`` until ``predicate(text)``; return the text."""

    def check() -> str | None:
        text = scrape(url)
        return text if predicate(text) else None

    return wait_for(check, timeout=timeout, interval=0.5, message=message)
