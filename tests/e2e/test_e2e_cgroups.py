"""MBCAS's cgroup reader on cgroups made by a real kubelet and runc.

On this machine's hybrid kernel the kubelet (cgroupfs driver) puts each pod's quota and
throttling in the v1 ``cpu`` hierarchy (``cpu/kubepods/burstable/pod<uid>``) while runc also
places the pod in the cgroup2 hierarchy (``unified/kubepods/burstable/pod<uid>/<container>``),
where usage (``cpu.stat``) and pressure (``cpu.pressure``) live. Behaviour: the resolver finds the
pod from its UID and QoS class, and one read gives usage, PSI, throttling and the limit together,
for the pod and for its container; a pod throttled under a small limit shows real CPU pressure.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from e2e_support import E2ECluster, burner_pod, running, set_demand, wait_for

from mbcas.cgroups.layout import LayoutKind, detect_layout
from mbcas.cgroups.paths import CgroupDriver, PodCgroupResolver
from mbcas.cgroups.reader import CgroupReader

pytestmark = pytest.mark.timeout(900)


def test_reader_finds_both_hierarchies_of_a_kubelet_made_pod(
    real_cluster: E2ECluster, e2e_namespace: str, pattern_dir: Path
) -> None:
    set_demand(pattern_dir, 1.0)
    pod = burner_pod(
        "sensed", real_cluster.images.burner.ref, pattern_dir, labels={"mbcas.io/opt-out": "true"}
    )
    real_cluster.kubectl("apply", "-n", e2e_namespace, "-f", "-", input=json.dumps(pod), check=True)
    live = wait_for("the burner Running", lambda: running(real_cluster, e2e_namespace, "sensed"), 90)
    uid, qos = live["metadata"]["uid"], live["status"]["qosClass"]
    cid = live["status"]["containerStatuses"][0]["containerID"]
    reader = CgroupReader()
    resolver = PodCgroupResolver(reader.layout)
    found = resolver.resolve(uid, qos)
    assert found.driver is CgroupDriver.CGROUPFS and found.relpath == f"kubepods/burstable/pod{uid}"
    container = resolver.container(found, cid)
    first = {path: reader.read(path) for path in (found.relpath, container)}
    time.sleep(3.0)
    for path, before in first.items():
        after = reader.read(path)
        assert after.limit_cores == pytest.approx(0.2), f"{path}: the kubelet's 200m quota"
        assert after.usage_usec > before.usage_usec, f"{path}: usage grows"
        assert after.nr_throttled is not None and after.nr_throttled > before.nr_throttled, path
        if reader.layout.kind is LayoutKind.HYBRID or reader.layout.v2_dir is not None:
            assert after.psi_full_usec is not None and before.psi_full_usec is not None, f"{path}: PSI"
            stalled = (after.psi_full_usec - before.psi_full_usec) / ((after.mono_ns - before.mono_ns) / 1000)
            assert stalled > 0.2, (
                f"{path}: a pod throttled at 200m while wanting 1 core stalls ({stalled:.2f})"
            )
    if detect_layout().kind is LayoutKind.HYBRID:
        unified = Path(reader.layout.v2_dir or "") / found.relpath
        assert (unified / "cpu.pressure").is_file() and (unified / "cpu.stat").is_file()
