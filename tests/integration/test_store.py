"""The agent's PodAllocation store on the real apiserver: what it writes, it finds again."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from helpers import make_pod
from mbcas.api.models import PodAllocationSpec
from mbcas.kube.client import build_kube
from mbcas.kube.store import NODE_LABEL, AllocationStore, node_label_value

pytestmark = pytest.mark.integration

LONG_NODE = "ip-10-0-0-1." + "a" * 60 + ".compute.internal"  # a valid node name of 88 characters


@pytest.mark.parametrize("node", ["short-node", LONG_NODE])
def test_allocations_of_a_node_are_found_again_whatever_its_name_length(
    kubeconfig: str, core_v1: Any, namespace: str, crd: str, node: str
) -> None:
    pod = core_v1.create_namespaced_pod(namespace, make_pod("p", "100m", "500m", node))
    kube = build_kube(kubeconfig)
    try:
        spec = PodAllocationSpec(
            pod_name="p",
            pod_uid=pod.metadata.uid,
            node_name=node,
            cpu_limit_mcpu=700,
            reason="test",
            decided_at=dt.datetime.now(dt.UTC),
        )
        AllocationStore(kube, node).write(namespace, spec, exists=False)
        found = AllocationStore(kube, node).list()  # a restarted agent
        assert set(found) == {pod.metadata.uid}, "the node's own allocation is not found again"
        assert found[pod.metadata.uid].mcpu == 700
        body = kube.request_json(
            "GET",
            f"/apis/mbcas.io/v1alpha1/namespaces/{namespace}/podallocations/{pod.metadata.uid}",
            what="get",
        )
        label = body["metadata"]["labels"][NODE_LABEL]
        assert label == node_label_value(node) and len(label) <= 63
        assert AllocationStore(kube, "other-node").list() == {}
    finally:
        kube.close()
