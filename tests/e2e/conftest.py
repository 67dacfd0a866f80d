"""The end-to-end cluster: a real node (kubelet + containerd + runc) with MBCAS installed by Helm.

One session fixture, ``real_cluster``, starts a local control plane with what a chart install
needs (scheduler, workload controllers, ServiceAccount tokens), a real node on this machine, the
agent/controller/burner images built here (:mod:`mbcas.local.images`), and ``helm install``s the
chart exactly as ``make deploy-local`` does. Everything is torn down at the end of the session,
also when a test fails, and the host is checked to be as it was (no kubepods cgroups, no bridge,
no leftover mounts).

Every test here is marked ``e2e`` (and ``integration``). They skip, with the reason, only where the
machine cannot run a node at all: not root, or the cgroup hierarchies are read-only. A real node
that another session runs is waited for (up to 20 minutes: one real node per machine), then they
fail with a message saying how to stop it.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_support import E2ECluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.slow)


_CLOSERS: list[Any] = []


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the real node right after the last e2e test, not at the end of the whole session: its
    kubelet, containerd and MBCAS pods would otherwise load the 2-core machine under the other
    tests."""
    if _CLOSERS and (nextitem is None or "tests/e2e/" not in str(nextitem.path).replace("\\", "/")):
        while _CLOSERS:
            _CLOSERS.pop()()


@pytest.fixture(scope="session")
def real_cluster(request: pytest.FixtureRequest) -> Iterator[E2ECluster]:
    """The control plane, the real node and MBCAS (agent DaemonSet + controller Deployment)."""
    from mbcas.local.build import ensure_node_binaries
    from mbcas.local.controlplane import ControlPlane
    from mbcas.local.deploylocal import LocalCluster, deploy
    from mbcas.local.images import ensure_images
    from mbcas.local.realnode import RealNode, prerequisites

    problems = prerequisites()
    if problems:
        pytest.skip("no real node on this machine: " + "; ".join(problems))
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def ctx() -> contextlib.AbstractContextManager[None]:
        return capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()

    workdir = Path(tempfile.mkdtemp(prefix="mbcas-e2e-"))
    cp = ControlPlane(workloads=True)
    node: RealNode | None = None

    def close() -> None:
        with ctx():
            try:
                if node is not None:
                    node.stop()
            finally:
                cp.stop()
                shutil.rmtree(workdir, ignore_errors=True)

    _CLOSERS.append(close)
    try:
        with ctx():  # show build progress and start-up lines
            begin = time.monotonic()
            images = ensure_images()
            binaries = ensure_node_binaries()
            cp.start()
            node = RealNode(
                workdir / "node", cp, binaries.kubelet, images.pause.archive, images.pause.ref, wait_s=1200.0
            )
            node.start()
            cluster = LocalCluster(cp.kubeconfig, cp.url, node.containerd.socket)
            deployed = time.monotonic()
            deploy(cluster, cp.kubectl, images=images)
            _MEASUREMENTS["node_ready_s"] = round(node.ready_in, 2)
            _MEASUREMENTS["deploy_to_mbcas_ready_s"] = round(time.monotonic() - deployed, 1)
            _MEASUREMENTS["cluster_setup_s"] = round(time.monotonic() - begin, 1)
            print(f"[e2e] cluster with MBCAS ready in {time.monotonic() - begin:.0f}s", file=sys.stderr)
        yield E2ECluster(cp=cp, node=node, images=images, workdir=workdir)
    finally:
        if close in _CLOSERS:  # not yet closed after the last e2e test (e.g. a setup failure)
            _CLOSERS.remove(close)
            close()


@pytest.fixture
def e2e_namespace(real_cluster: E2ECluster) -> Iterator[str]:
    """A namespace for one test; deleted afterwards, its pods force-deleted so nothing lingers."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    real_cluster.kubectl("create", "namespace", name, check=True)
    try:
        yield name
    finally:
        real_cluster.kubectl(
            "delete", "pods", "--all", "-n", name, "--grace-period=0", "--force", "--wait=false"
        )
        real_cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def pattern_dir(real_cluster: E2ECluster) -> Iterator[Path]:
    """A host directory mounted into burner pods; its ``pattern`` file steers their CPU demand."""
    path = Path(tempfile.mkdtemp(prefix="pattern-", dir=real_cluster.workdir))
    path.chmod(0o755)
    yield path


_MEASUREMENTS: dict[str, object] = {}


@pytest.fixture(scope="session")
def e2e_measurements() -> dict[str, object]:
    """Numbers the e2e tests measure (reaction times, start-up); printed and saved at the end."""
    return _MEASUREMENTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _MEASUREMENTS:
        return
    import json

    from mbcas.local.build import cache_dir

    out = cache_dir() / "e2e" / "measurements.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_MEASUREMENTS, indent=2))
    terminalreporter.write_sep("-", "e2e measurements (real node)")
    for key, value in _MEASUREMENTS.items():
        terminalreporter.write_line(f"{key}: {value}")
    terminalreporter.write_line(f"saved to {out}")
