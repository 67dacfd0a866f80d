"""Shared pytest fixtures: one real local control plane per session, and node emulators.

Fixture names are contracts other tests rely on: ``control_plane``, ``kubeconfig``,
``api_client``, ``core_v1``, ``namespace``, ``node_emulator``, ``make_emulator``. Control-plane
fixtures are created lazily, so unit tests never start anything. Everything they start is
stopped in finalizers (and, as a last resort, at interpreter exit; the components also die with
this process through PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so tests can `import helpers`

SESSION_NODE = "mbcas-node-1"


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A real etcd + kube-apiserver + kube-controller-manager for the whole session."""
    from mbcas.local.build import ensure_binaries
    from mbcas.local.controlplane import ControlPlane

    capture = request.config.pluginmanager.getplugin("capturemanager")
    ctx = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
    with ctx:  # show build progress (a cold build takes minutes) and the start-up line
        binaries = ensure_binaries(build=True)
        cp = ControlPlane(binaries=binaries)
        cp.start()
    atexit.register(cp.stop)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: Any) -> str:
    """Path of the admin kubeconfig."""
    return str(control_plane.kubeconfig)


@pytest.fixture(scope="session")
def api_client(control_plane: Any) -> Any:
    """A kubernetes ``ApiClient`` for the admin user (system:masters)."""
    return control_plane.api_client()


@pytest.fixture(scope="session")
def core_v1(api_client: Any) -> Any:
    """``kubernetes.client.CoreV1Api`` for the admin user."""
    from kubernetes import client

    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(core_v1: Any) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace({"metadata": {"name": name, "labels": {"mbcas.io/test": "true"}}})
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            core_v1.delete_namespace(name)


@pytest.fixture(scope="session")
def node_emulator(api_client: Any) -> Iterator[Any]:
    """One emulated node ``mbcas-node-1`` (4 CPU, 8Gi), resizes settle after 0.2 s."""
    from mbcas.local.emulator import NodeEmulator, NodeSpec

    emulator = NodeEmulator(
        api_client=api_client, nodes=[NodeSpec(SESSION_NODE, "4", "8Gi")], resize_delay=0.2
    )
    emulator.start()
    atexit.register(emulator.stop)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def make_emulator(api_client: Any) -> Iterator[Callable[..., Any]]:
    """Factory for extra emulators (other nodes, kernel mode); all are stopped after the test.

    ``make_emulator(nodes=[NodeSpec("n2", "2", "4Gi")], kernel=KernelMode(), resize_delay=0.2)``;
    by default it does not bind unscheduled pods (the session emulator does).
    """
    from mbcas.local.emulator import NodeEmulator

    started: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("api_client", api_client)
        kwargs.setdefault("bind_unscheduled", False)
        emulator = NodeEmulator(**kwargs)
        started.append(emulator)
        emulator.start()
        return emulator

    try:
        yield factory
    finally:
        for emulator in reversed(started):
            emulator.stop()
