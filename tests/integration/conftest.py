"""Fixtures of the PodAllocation, controller and CLI integration tests.

``crd`` applies crds/podallocations.mbcas.io.yaml once per session (never deleted: other tests use
it); ``run_controller`` starts controllers in-process with fast test settings and stops them even
when the test fails. Its keyword arguments are ControllerConfig fields, resize rules (merged into
the fast ones) or ``contract`` (a dict: written as the ``contract:`` section of a shared ConfigMap
in the test's namespace, which the controller then reads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from pa_support import CRD_PATH, FAST


@pytest.fixture(scope="session")
def crd(control_plane: Any) -> str:
    """The PodAllocation CRD from crds/, applied and established (never deleted: others use it)."""
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH), check=True)
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/podallocations.mbcas.io", "--timeout=60s", check=True
    )
    return "podallocations.mbcas.io"


@pytest.fixture
def run_controller(kubeconfig: str, crd: str, namespace: str, core_v1: Any) -> Iterator[Callable[..., Any]]:
    """Factory: start a controller in a background thread with fast test settings; stopped after.

    It watches only the test's namespace: a controller of one test must not spend its global
    resize budget on allocations another test left behind in a namespace being deleted.
    """
    from mbcas.controller.config import ControllerConfig
    from mbcas.controller.main import Controller
    from mbcas.policy.resize import ResizeRules

    started: list[Any] = []

    def factory(*, contract: dict[str, Any] | None = None, **overrides: Any) -> Any:
        rules = {
            **FAST["rules"],
            **{k: overrides.pop(k) for k in list(overrides) if k in ResizeRules.model_fields},
        }
        settings = {**FAST, "kubeconfig": kubeconfig, "namespace": namespace, **overrides, "rules": rules}
        if contract is not None:
            text = yaml.safe_dump({"contract": contract})
            core_v1.create_namespaced_config_map(
                namespace, {"metadata": {"name": "mbcas-config"}, "data": {"config.yaml": text}}
            )
            settings["config_map"] = f"{namespace}/mbcas-config"
        ctl = Controller(ControllerConfig(**settings))
        started.append(ctl)
        ctl.start()
        return ctl

    try:
        yield factory
    finally:
        for ctl in reversed(started):
            ctl.stop()
