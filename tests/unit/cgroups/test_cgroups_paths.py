"""Pod and container cgroup paths for both drivers, every QoS class and runtime; discovery."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_cgroupfs import FakeCgroupFS

from mbcas.cgroups import (
    CgroupDriver,
    CgroupError,
    ContainerRuntime,
    ErrorKind,
    LayoutKind,
    PodCgroup,
    PodCgroupResolver,
    container_relpath,
    detect_layout,
    parse_pod_dirname,
    pod_relpath,
    split_container_id,
)
from mbcas.core.qos import QoSClass

UID = "0f3c5e2a-1b2c-4d5e-8f90-123456789abc"
ESC = UID.replace("-", "_")
CID = "4b825dc642cb6eb9a060e54bf8d69288fbee4904aabbccddeeff001122334455"

EXPECTED_POD = {
    (CgroupDriver.SYSTEMD, QoSClass.GUARANTEED): f"kubepods.slice/kubepods-pod{ESC}.slice",
    (CgroupDriver.SYSTEMD, QoSClass.BURSTABLE): (
        f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{ESC}.slice"
    ),
    (CgroupDriver.SYSTEMD, QoSClass.BEST_EFFORT): (
        f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{ESC}.slice"
    ),
    (CgroupDriver.CGROUPFS, QoSClass.GUARANTEED): f"kubepods/pod{UID}",
    (CgroupDriver.CGROUPFS, QoSClass.BURSTABLE): f"kubepods/burstable/pod{UID}",
    (CgroupDriver.CGROUPFS, QoSClass.BEST_EFFORT): f"kubepods/besteffort/pod{UID}",
}


@pytest.mark.parametrize(("key", "expected"), EXPECTED_POD.items(), ids=str)
def test_pod_relpath(key: tuple[CgroupDriver, QoSClass], expected: str) -> None:
    driver, qos = key
    assert pod_relpath(UID, qos, driver) == expected
    assert pod_relpath(UID, qos, driver, prefix="/node-a/") == f"node-a/{expected}"
    assert parse_pod_dirname(expected.rsplit("/", 1)[1])[0:3:2] == (UID, driver)  # type: ignore[index]


@pytest.mark.parametrize(
    ("container_id", "runtime", "driver", "leaf"),
    [
        (f"containerd://{CID}", None, CgroupDriver.SYSTEMD, f"cri-containerd-{CID}.scope"),
        (f"cri-o://{CID}", None, CgroupDriver.SYSTEMD, f"crio-{CID}.scope"),
        (f"docker://{CID}", None, CgroupDriver.SYSTEMD, f"docker-{CID}.scope"),
        (CID, ContainerRuntime.CRIO, CgroupDriver.SYSTEMD, f"crio-{CID}.scope"),
        (f"containerd://{CID}", None, CgroupDriver.CGROUPFS, CID),
        (f"cri-o://{CID}", None, CgroupDriver.CGROUPFS, CID),
    ],
)
def test_container_relpath(
    container_id: str, runtime: ContainerRuntime | None, driver: CgroupDriver, leaf: str
) -> None:
    for qos in QoSClass:
        pod = PodCgroup(UID, qos, driver, pod_relpath(UID, qos, driver))
        assert container_relpath(pod, container_id, runtime) == f"{pod.relpath}/{leaf}"


def test_systemd_container_needs_a_runtime() -> None:
    pod = PodCgroup(UID, QoSClass.BURSTABLE, CgroupDriver.SYSTEMD, "x")
    with pytest.raises(CgroupError, match="needs the container runtime"):
        container_relpath(pod, CID)


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "rkt://abc"])
def test_bad_container_ids(bad: str) -> None:
    pod = PodCgroup(UID, QoSClass.BURSTABLE, CgroupDriver.CGROUPFS, "x")
    with pytest.raises(CgroupError) as info:
        container_relpath(pod, bad, ContainerRuntime.CONTAINERD)
    assert info.value.kind is ErrorKind.BAD_PATH


def test_split_container_id() -> None:
    assert split_container_id(f"containerd://{CID}") == (ContainerRuntime.CONTAINERD, CID)
    assert split_container_id(CID) == (None, CID)


@pytest.mark.parametrize("bad", ["", "a/b", "..", "with space"])
def test_bad_uids(bad: str) -> None:
    with pytest.raises(CgroupError, match="not a usable pod UID"):
        pod_relpath(bad, QoSClass.BURSTABLE, CgroupDriver.SYSTEMD)


@pytest.mark.parametrize(
    "name", ["kubepods-burstable.slice", "kubepods-besteffort.slice", "kubepods.slice", "pod", "burstable",
             "cri-containerd-abc.scope", "kubepods-pod.slice", "podx.scope"]
)  # fmt: skip
def test_parse_pod_dirname_rejects_non_pods(name: str) -> None:
    assert parse_pod_dirname(name) is None


def test_qos_parse() -> None:
    assert QoSClass.parse("burstable") is QoSClass.BURSTABLE
    assert QoSClass.parse("Best-Effort") is QoSClass.BEST_EFFORT
    with pytest.raises(ValueError, match="unknown QoS"):
        QoSClass.parse("gold")


def _node(tmp_path: Path, kind: LayoutKind, driver: CgroupDriver, prefix: str = "") -> FakeCgroupFS:
    fs = FakeCgroupFS(tmp_path / "cg", kind)
    for i, qos in enumerate(QoSClass):
        uid = f"{UID[:-1]}{i}"
        fs.write(pod_relpath(uid, qos, driver, prefix))
        fs.mkdir(pod_relpath(uid, qos, driver, prefix) + f"/cri-containerd-{CID}.scope")
    return fs


@pytest.mark.parametrize("driver", list(CgroupDriver))
@pytest.mark.parametrize("kind", list(LayoutKind))
def test_resolve_with_and_without_qos(tmp_path: Path, kind: LayoutKind, driver: CgroupDriver) -> None:
    fs = _node(tmp_path, kind, driver, prefix="emu/node-1")
    resolver = PodCgroupResolver(detect_layout(fs.root), prefix="emu/node-1")
    for i, qos in enumerate(QoSClass):
        uid = f"{UID[:-1]}{i}"
        expected = PodCgroup(uid, qos, driver, pod_relpath(uid, qos, driver, "emu/node-1"))
        assert resolver.resolve(uid, qos) == expected
        assert resolver.resolve(uid, qos.value.lower()) == expected
        assert resolver.resolve(uid) == expected  # discovery by walking kubepods
    assert set(resolver.discover()) == {f"{UID[:-1]}{i}" for i in range(3)}


def test_resolve_with_wrong_qos_falls_back_to_discovery(tmp_path: Path) -> None:
    fs = _node(tmp_path, LayoutKind.V2, CgroupDriver.SYSTEMD)
    resolver = PodCgroupResolver(detect_layout(fs.root), driver=CgroupDriver.SYSTEMD)
    found = resolver.resolve(f"{UID[:-1]}1", QoSClass.BEST_EFFORT)
    assert found.qos is QoSClass.BURSTABLE


def test_resolve_missing_pod_is_not_found(tmp_path: Path) -> None:
    fs = _node(tmp_path, LayoutKind.HYBRID, CgroupDriver.CGROUPFS)
    resolver = PodCgroupResolver(detect_layout(fs.root))
    with pytest.raises(CgroupError, match="no cgroup for pod") as info:
        resolver.resolve("ffffffff-0000-0000-0000-000000000000", QoSClass.BURSTABLE)
    assert info.value.kind is ErrorKind.NOT_FOUND


def test_container_lookup(tmp_path: Path) -> None:
    fs = _node(tmp_path, LayoutKind.V2, CgroupDriver.SYSTEMD)
    resolver = PodCgroupResolver(detect_layout(fs.root), runtime=ContainerRuntime.CONTAINERD)
    pod = resolver.resolve(f"{UID[:-1]}1")
    assert resolver.container(pod, CID).endswith(f"/cri-containerd-{CID}.scope")
    with pytest.raises(CgroupError, match="container cgroup does not exist"):
        resolver.container(pod, "cri-o://" + CID)


def test_prefix_with_dotdot_is_rejected(tmp_path: Path) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
    with pytest.raises(CgroupError, match=r"'\.\.'"):
        PodCgroupResolver(detect_layout(fs.root), prefix="../etc")


def test_hybrid_pod_is_found_before_runc_adds_its_cgroup2_directory(tmp_path: Path) -> None:
    """The kubelet creates v1 pod cgroups first; runc adds unified/... once a container runs."""
    fs = FakeCgroupFS(tmp_path / "cg", LayoutKind.HYBRID)
    uid = f"{UID[:-1]}7"
    rel = pod_relpath(uid, QoSClass.BURSTABLE, CgroupDriver.CGROUPFS)
    for controller in ("cpu", "cpuacct"):
        (fs.root / controller / rel / CID).mkdir(parents=True)
    resolver = PodCgroupResolver(detect_layout(fs.root))
    found = resolver.resolve(uid, QoSClass.BURSTABLE)
    assert found == PodCgroup(uid, QoSClass.BURSTABLE, CgroupDriver.CGROUPFS, rel)
    assert resolver.resolve(uid) == found  # discovery walks the v1 hierarchies too
    assert resolver.container(found, f"containerd://{CID}") == f"{rel}/{CID}"
    # Once runc joined the pod to the cgroup2 hierarchy the same relative path serves both.
    (fs.root / "unified" / rel / CID).mkdir(parents=True)
    assert resolver.resolve(uid, QoSClass.BURSTABLE) == found
    assert set(resolver.discover()) == {uid}
