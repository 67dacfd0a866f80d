"""Sensing on this machine's real kernel: real processes, real quotas, real throttling and PSI.

Each test creates its own cgroups under a unique prefix (removed afterwards, even on failure)
and takes a few seconds. The machine is shared, so usage is also checked against the burner's own
CPU time from ``/proc`` (ground truth), which does not depend on how busy the machine is.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from cgroup_helpers import CgroupSandbox, TestCgroup, proc_cpu_seconds

from mbcas.cgroups import (
    CgroupDriver,
    CgroupReader,
    ErrorKind,
    LayoutKind,
    PodCgroupResolver,
    Sampler,
    SenseError,
    SignalDelta,
    limits_equal,
    pod_relpath,
    signal_arrays,
)
from mbcas.cli.main import main
from mbcas.core.qos import QoSClass
from mbcas.demand import demand_bounds

pytestmark = pytest.mark.kernel

WARMUP_S = 0.3
INTERVAL_S = 2.0


def _delta(sampler: Sampler, uid: str, relpath: str, interval_s: float = INTERVAL_S) -> SignalDelta:
    first = sampler.sample({uid: relpath})[uid]
    assert isinstance(first, SenseError) and first.kind is ErrorKind.BASELINE
    time.sleep(interval_s)
    delta = sampler.sample({uid: relpath})[uid]
    assert isinstance(delta, SignalDelta), delta
    return delta


def test_half_core_burner_reads_half_a_core(real_cgroup: TestCgroup) -> None:
    burner = real_cgroup.spawn_burner(0.5)
    time.sleep(WARMUP_S)
    sampler = Sampler(CgroupReader())
    sampler.sample({"pod": real_cgroup.relpath})
    cpu0 = proc_cpu_seconds(burner.pid)
    time.sleep(INTERVAL_S)
    delta = sampler.sample({"pod": real_cgroup.relpath})["pod"]
    truth = (proc_cpu_seconds(burner.pid) - cpu0) / INTERVAL_S
    assert isinstance(delta, SignalDelta), delta
    assert delta.usage_cores == pytest.approx(truth, rel=0.05, abs=0.02)  # the kernel's own count
    assert delta.usage_cores == pytest.approx(0.5, rel=0.10)
    assert delta.limit_cores is None
    assert delta.throttled_ratio in (None, 0.0)


def test_quota_throttles_raises_psi_full_and_demand_exceeds_the_limit(limited_cgroup: TestCgroup) -> None:
    limited_cgroup.set_quota(0.2)
    limited_cgroup.spawn_burner(1.0)
    time.sleep(WARMUP_S)
    reader = CgroupReader()
    before = reader.read(limited_cgroup.relpath)
    delta = _delta(Sampler(reader), "pod", limited_cgroup.relpath)
    after = reader.read(limited_cgroup.relpath)

    assert delta.usage_cores == pytest.approx(0.2, rel=0.15)
    assert limits_equal(delta.limit_cores, 0.2)
    assert delta.throttled_ratio is not None and delta.throttled_ratio > 0.5
    assert delta.throttled_cores is not None and delta.throttled_cores > 0.3
    if reader.layout.v2_dir is not None:
        assert before.psi_full_usec is not None and after.psi_full_usec is not None
        assert after.psi_full_usec > before.psi_full_usec  # PSI full rising
        assert delta.psi_full is not None and delta.psi_full > 0.4

    # The kernel's throttled time reads the runnable thread, not the CPU withheld: a busy loop
    # under 0.2 reads about 0.2 + 0.8 = 1 core, an upper bound of its demand, under pressure.
    sig = signal_arrays(["pod"], {"pod": delta})
    est = demand_bounds(sig.usage, sig.throttled_ratio, sig.throttled_cores, sig.psi_full)
    assert est.pressured[0] and est.lower[0] == pytest.approx(0.2, rel=0.15)
    assert est.upper[0] == pytest.approx(1.0, rel=0.2)


def test_raising_the_quota_is_seen_as_more_usage(limited_cgroup: TestCgroup) -> None:
    limited_cgroup.set_quota(0.1)
    limited_cgroup.spawn_burner(1.0)
    time.sleep(WARMUP_S)
    sampler = Sampler(CgroupReader())
    low = _delta(sampler, "pod", limited_cgroup.relpath, 1.0)
    limited_cgroup.set_quota(0.6, period_usec=50_000)  # a non-default period
    time.sleep(WARMUP_S)
    sampler.forget("pod")
    high = _delta(sampler, "pod", limited_cgroup.relpath, 1.0)
    assert limits_equal(low.limit_cores, 0.1) and limits_equal(high.limit_cores, 0.6)
    assert high.usage_cores > 3 * low.usage_cores


def test_recreated_cgroup_is_a_reset_not_a_negative_rate(cgroup_sandbox: CgroupSandbox) -> None:
    cg = cgroup_sandbox.create("pod")
    cg.spawn_burner(1.0)
    time.sleep(0.5)
    sampler = Sampler(CgroupReader())
    sampler.sample({"uid": cg.relpath})
    cgroup_sandbox.remove(cg)
    gone = sampler.sample({"uid": cg.relpath})["uid"]
    # NOT_FOUND, or VANISHED when the reader kept the file open (the kernel fails its read).
    assert isinstance(gone, SenseError) and gone.kind in (ErrorKind.NOT_FOUND, ErrorKind.VANISHED)
    again = cgroup_sandbox.create("pod")
    result = sampler.sample({"uid": again.relpath})["uid"]
    assert isinstance(result, SenseError) and result.kind is ErrorKind.RESET


def test_resolver_finds_pods_in_a_node_tree_under_a_prefix(cgroup_sandbox: CgroupSandbox) -> None:
    uid = str(uuid.uuid4())
    rel = pod_relpath(uid, QoSClass.BURSTABLE, CgroupDriver.SYSTEMD, prefix="node")
    cg = cgroup_sandbox.create(rel)
    cg.spawn_burner(0.2)
    reader = CgroupReader()
    resolver = PodCgroupResolver(reader.layout, prefix=f"{cgroup_sandbox.prefix}/node")
    pod = resolver.resolve(uid)
    assert pod.relpath == cg.relpath and pod.qos is QoSClass.BURSTABLE
    assert resolver.resolve(uid, QoSClass.BURSTABLE) == pod
    delta = _delta(Sampler(reader), uid, pod.relpath, 1.0)
    assert delta.usage_cores > 0.05


def test_mbcas_sense_prints_the_signals(
    limited_cgroup: TestCgroup, capsys: pytest.CaptureFixture[str]
) -> None:
    limited_cgroup.set_quota(0.2)
    limited_cgroup.spawn_burner(1.0)
    time.sleep(WARMUP_S)
    assert main(["sense", "--cgroup", limited_cgroup.relpath, "--interval", "1", "-o", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    signals = {"usage_cores", "throttled_ratio", "psi_some", "psi_full"}
    assert signals | {"demand_lower_cores", "demand_upper_cores"} <= report.keys()
    assert report["usage_cores"] == pytest.approx(0.2, rel=0.2)
    assert report["throttled_ratio"] > 0.5
    # Throttled most periods: the demand lies between the usage and usage + throttled time.
    assert report["demand_lower_cores"] == pytest.approx(report["usage_cores"])
    assert report["demand_upper_cores"] > 0.4
    layout = CgroupReader().layout
    if layout.kind is LayoutKind.V1:
        assert report["psi_full"] is None
    else:
        assert report["psi_full"] > 0.4
