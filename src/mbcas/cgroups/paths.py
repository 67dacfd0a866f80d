"""Where the kubelet puts a pod's cgroup, for both cgroup drivers and the common runtimes.

The kubelet names pod cgroups from the pod UID and QoS class:

================  =====================================================================================
driver            pod cgroup (relative to the cgroup root) / container cgroup below it
================  =====================================================================================
systemd           ``kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID_>.slice``
                  (``<UID_>`` is the UID with ``-`` replaced by ``_``; ``besteffort`` likewise;
                  Guaranteed: ``kubepods.slice/kubepods-pod<UID_>.slice``); containers are
                  ``cri-containerd-<id>.scope``, ``crio-<id>.scope`` or ``docker-<id>.scope``
cgroupfs          ``kubepods/burstable/pod<UID>`` (``besteffort`` likewise; Guaranteed:
                  ``kubepods/pod<UID>``); containers are ``<id>``
================  =====================================================================================

:class:`PodCgroupResolver` formats these paths under an optional prefix (the node emulator nests a
whole node under one), checks which exists, and when the driver is unknown falls back to walking
``kubepods`` for a directory that names the UID in either form. Everything here works on relative
paths; only existence checks touch the filesystem.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from mbcas.cgroups.errors import CgroupError, ErrorKind
from mbcas.cgroups.layout import Layout
from mbcas.core.qos import QoSClass

__all__ = [
    "CgroupDriver",
    "ContainerRuntime",
    "PodCgroup",
    "PodCgroupResolver",
    "container_relpath",
    "parse_pod_dirname",
    "pod_relpath",
    "split_container_id",
]


class CgroupDriver(StrEnum):
    """The kubelet's cgroup driver."""

    SYSTEMD = "systemd"
    CGROUPFS = "cgroupfs"


class ContainerRuntime(StrEnum):
    """Container runtimes, by the scheme of ``status.containerStatuses[].containerID``."""

    CONTAINERD = "containerd"
    CRIO = "cri-o"
    DOCKER = "docker"


_SYSTEMD_SCOPE_PREFIX = {
    ContainerRuntime.CONTAINERD: "cri-containerd-",
    ContainerRuntime.CRIO: "crio-",
    ContainerRuntime.DOCKER: "docker-",
}
_QOS_SEGMENT = {QoSClass.BURSTABLE: "burstable", QoSClass.BEST_EFFORT: "besteffort"}


@dataclass(frozen=True, slots=True)
class PodCgroup:
    """A pod's cgroup as found on the node."""

    uid: str
    qos: QoSClass
    driver: CgroupDriver
    relpath: str
    """Relative to the cgroup root (the prefix included), without a leading slash."""


def _check_uid(uid: str) -> None:
    if not uid or "/" in uid or uid in (".", "..") or any(c.isspace() for c in uid):
        raise CgroupError(ErrorKind.BAD_PATH, f"not a usable pod UID: {uid!r}")


def _join(prefix: str, *parts: str) -> str:
    head = prefix.strip("/")
    return "/".join([head, *parts] if head else parts)


def pod_relpath(uid: str, qos: QoSClass, driver: CgroupDriver, prefix: str = "") -> str:
    """The pod cgroup's path relative to the cgroup root."""
    _check_uid(uid)
    if driver is CgroupDriver.SYSTEMD:
        escaped = uid.replace("-", "_")
        if qos is QoSClass.GUARANTEED:
            return _join(prefix, "kubepods.slice", f"kubepods-pod{escaped}.slice")
        seg = _QOS_SEGMENT[qos]
        return _join(prefix, "kubepods.slice", f"kubepods-{seg}.slice", f"kubepods-{seg}-pod{escaped}.slice")
    if qos is QoSClass.GUARANTEED:
        return _join(prefix, "kubepods", f"pod{uid}")
    return _join(prefix, "kubepods", _QOS_SEGMENT[qos], f"pod{uid}")


def split_container_id(container_id: str) -> tuple[ContainerRuntime | None, str]:
    """Split ``containerd://abc`` into ``(CONTAINERD, "abc")``; a bare id gives ``(None, id)``."""
    scheme, sep, rest = container_id.partition("://")
    if not sep:
        return None, container_id
    try:
        return ContainerRuntime(scheme), rest
    except ValueError:
        raise CgroupError(ErrorKind.BAD_PATH, f"unknown container runtime in {container_id!r}") from None


def container_relpath(pod: PodCgroup, container_id: str, runtime: ContainerRuntime | None = None) -> str:
    """The container cgroup below ``pod``; ``container_id`` may carry its ``runtime://`` scheme."""
    scheme_runtime, cid = split_container_id(container_id)
    runtime = scheme_runtime or runtime
    if not cid or "/" in cid or cid in (".", ".."):
        raise CgroupError(ErrorKind.BAD_PATH, f"not a usable container id: {container_id!r}")
    if pod.driver is CgroupDriver.CGROUPFS:
        return f"{pod.relpath}/{cid}"
    if runtime is None:
        raise CgroupError(ErrorKind.BAD_PATH, "the systemd driver needs the container runtime", cid)
    return f"{pod.relpath}/{_SYSTEMD_SCOPE_PREFIX[runtime]}{cid}.scope"


def parse_pod_dirname(name: str) -> tuple[str, QoSClass, CgroupDriver] | None:
    """Recognise a pod cgroup directory name; return ``(uid, qos, driver)`` or ``None``."""
    if name.startswith("kubepods-") and name.endswith(".slice"):
        body = name[len("kubepods-") : -len(".slice")]
        qos = QoSClass.GUARANTEED
        for candidate, seg in _QOS_SEGMENT.items():
            if body.startswith(f"{seg}-"):
                qos, body = candidate, body[len(seg) + 1 :]
                break
        if body.startswith("pod") and len(body) > 3:
            return body[3:].replace("_", "-"), qos, CgroupDriver.SYSTEMD
        return None
    if name.startswith("pod") and len(name) > 3 and "." not in name:
        return name[3:], QoSClass.GUARANTEED, CgroupDriver.CGROUPFS
    return None


def _subdirs(path: str) -> Iterator[str]:
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    yield entry.name
    except OSError:
        return


class PodCgroupResolver:
    """Find pod cgroups under a cgroup root (through its :class:`Layout`) and an optional prefix.

    ``driver=None`` tries systemd first, then cgroupfs, then walks ``kubepods``. Existence is
    checked in the layout's base hierarchy (the cgroup2 one when present, else v1 ``cpu``) and,
    on a hybrid layout, in the v1 ``cpu``/``cpuacct`` hierarchies too: the kubelet creates a pod's
    cgroup there, while runc adds the cgroup2 directory only once a container of the pod runs
    (measured on a real kubelet + runc node: ``cpu/kubepods/burstable/pod<uid>`` holds quota and
    throttling, ``unified/kubepods/burstable/pod<uid>/<container>`` usage and PSI). The reader
    takes each signal from wherever it is.
    """

    def __init__(
        self,
        layout: Layout,
        *,
        prefix: str = "",
        driver: CgroupDriver | None = None,
        runtime: ContainerRuntime | None = None,
    ) -> None:
        if ".." in prefix.split("/"):
            raise CgroupError(ErrorKind.BAD_PATH, "prefix must not contain '..'", prefix)
        self.layout = layout
        self.prefix = prefix.strip("/")
        self.driver = driver
        self.runtime = runtime

    def _hierarchies(self) -> list[str]:
        dirs = (self.layout.base_dir, self.layout.cpu_dir, self.layout.cpuacct_dir)
        return list(dict.fromkeys(d for d in dirs if d is not None))

    def _exists(self, relpath: str) -> bool:
        return any(os.path.isdir(os.path.join(d, relpath)) for d in self._hierarchies())

    def candidates(self, uid: str, qos: QoSClass) -> list[PodCgroup]:
        """The formatted paths to try for ``uid``, in order (one per driver when unknown)."""
        drivers = [self.driver] if self.driver else [CgroupDriver.SYSTEMD, CgroupDriver.CGROUPFS]
        return [PodCgroup(uid, qos, d, pod_relpath(uid, qos, d, self.prefix)) for d in drivers]

    def resolve(self, uid: str, qos: QoSClass | str | None = None) -> PodCgroup:
        """The pod's cgroup; formatted from ``qos`` when given, found by walking otherwise.

        Raises :class:`CgroupError` (``NOT_FOUND``) when no cgroup names the UID.
        """
        _check_uid(uid)
        if qos is not None:
            qos = QoSClass.parse(qos) if isinstance(qos, str) else qos
            for pod in self.candidates(uid, qos):
                if self._exists(pod.relpath):
                    return pod
        found = self.discover().get(uid)
        if found is None:
            raise CgroupError(
                ErrorKind.NOT_FOUND,
                f"no cgroup for pod {uid} under {os.path.join(self.layout.base_dir, self.prefix)}",
            )
        return found

    def container(self, pod: PodCgroup, container_id: str) -> str:
        """The container cgroup's relative path (checked to exist)."""
        relpath = container_relpath(pod, container_id, self.runtime)
        if not self._exists(relpath):
            raise CgroupError(ErrorKind.NOT_FOUND, "container cgroup does not exist", relpath)
        return relpath

    def discover(self) -> dict[str, PodCgroup]:
        """Every pod cgroup under ``kubepods`` (both drivers, all QoS classes), keyed by UID."""
        pods: dict[str, PodCgroup] = {}
        for hierarchy in self._hierarchies():
            self._discover_in(os.path.join(hierarchy, self.prefix), pods)
        return pods

    def _discover_in(self, base: str, pods: dict[str, PodCgroup]) -> None:
        for top in ("kubepods.slice", "kubepods"):
            top_rel = _join(self.prefix, top)
            for name in _subdirs(os.path.join(base, top)):
                parsed = parse_pod_dirname(name)
                if parsed is not None:
                    uid, qos, driver = parsed
                    pods.setdefault(uid, PodCgroup(uid, qos, driver, f"{top_rel}/{name}"))
                    continue
                qos_dir = self._qos_dir(name)
                if qos_dir is None:
                    continue
                for pod_name in _subdirs(os.path.join(base, top, name)):
                    parsed = parse_pod_dirname(pod_name)
                    if parsed is not None:
                        uid, _, driver = parsed
                        pods.setdefault(uid, PodCgroup(uid, qos_dir, driver, f"{top_rel}/{name}/{pod_name}"))

    @staticmethod
    def _qos_dir(name: str) -> QoSClass | None:
        for qos, seg in _QOS_SEGMENT.items():
            if name in (seg, f"kubepods-{seg}.slice"):
                return qos
        return None
