"""Helpers of the end-to-end tests: the cluster handle, burner pods, and the kernel's view of them.

The kernel's CFS quota of a container is read here straight from the cgroup files the kubelet
wrote (``cpu/kubepods/<qos>/pod<uid>/<container id>/cpu.cfs_quota_us`` on cgroup v1 and hybrid
hosts, ``kubepods/<qos>/pod<uid>/<container id>/cpu.max`` on cgroup v2), independently of MBCAS's
own cgroup reader, so the tests check what the kernel enforces.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

CGROUP_ROOT = Path("/sys/fs/cgroup")
MBCAS_NAMESPACE = "mbcas-system"
T = TypeVar("T")


@dataclass
class E2ECluster:
    """The running end-to-end cluster."""

    cp: Any
    node: Any
    images: Any
    workdir: Path

    def kubectl(
        self, *args: str, check: bool = False, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc: subprocess.CompletedProcess[str] = self.cp.kubectl(*args, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def get_json(self, *args: str) -> dict[str, Any] | None:
        proc = self.kubectl("get", *args, "-o", "json")
        if proc.returncode != 0:
            return None
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(obj), check=True)

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get_json("pod", name, "-n", namespace)

    def allocation(self, namespace: str, uid: str) -> dict[str, Any] | None:
        return self.get_json("podallocations.mbcas.io", uid, "-n", namespace)

    def mbcas_pods(self, component: str) -> list[dict[str, Any]]:
        data = self.get_json("pods", "-n", MBCAS_NAMESPACE, "-l", f"app.kubernetes.io/component={component}")
        return list((data or {}).get("items", []))

    def pod_logs(self, namespace: str, name: str) -> str:
        """The container logs the kubelet wrote (read from disk: the apiserver never calls the kubelet)."""
        text = []
        for path in sorted(self.node.kubelet.logs_dir.glob(f"{namespace}_{name}_*/*/*.log")):
            text.append(path.read_text(errors="replace"))
        return "\n".join(text)


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def burner_pod(
    name: str,
    image: str,
    pattern_dir: Path,
    *,
    request: str | None = "100m",
    limit: str | None = "200m",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod running ``python -m mbcas.local.burner`` on the pattern file in ``pattern_dir``."""
    resources: dict[str, dict[str, str]] = {}
    if request:
        resources["requests"] = {"cpu": request, "memory": "64Mi"}
    if limit:
        resources["limits"] = {"cpu": limit, "memory": "64Mi" if request else "128Mi"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "burner", **(labels or {})}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                {
                    "name": "burner",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": ["--pattern-file", "/pattern/pattern", "--workers", "2"],
                    "resources": resources,
                    "volumeMounts": [{"name": "pattern", "mountPath": "/pattern", "readOnly": True}],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
            "volumes": [{"name": "pattern", "hostPath": {"path": str(pattern_dir), "type": "Directory"}}],
        },
    }


def set_demand(pattern_dir: Path, cores: float) -> float:
    """Write the burners' demand (cores); returns the monotonic time of the write."""
    tmp = pattern_dir / ".pattern.tmp"
    tmp.write_text(f"{cores}\n")
    tmp.chmod(0o644)
    tmp.replace(pattern_dir / "pattern")
    return time.monotonic()


def running(cluster: E2ECluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = cluster.pod(namespace, name)
    if pod is None:
        return None
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return pod if statuses and all("running" in s.get("state", {}) for s in statuses) else None


def container_cgroup(pod: dict[str, Any], controller: str = "cpu") -> Path:
    """The kubelet-made cgroup of the pod's first container in ``controller`` (v1/hybrid) or v2."""
    uid = pod["metadata"]["uid"]
    qos = pod["status"]["qosClass"]
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    levels = ["kubepods"] + ([] if qos == "Guaranteed" else [qos.lower()]) + [f"pod{uid}", cid]
    v2 = CGROUP_ROOT / "cgroup.controllers"
    base = CGROUP_ROOT if v2.exists() else CGROUP_ROOT / controller
    return base.joinpath(*levels)


def pod_cgroup(uid: str, qos: str, controller: str) -> Path:
    """The kubelet-made pod cgroup in ``controller`` (``cpu``/``cpuacct`` on v1 and hybrid hosts)."""
    levels = ["kubepods"] + ([] if qos == "Guaranteed" else [qos.lower()]) + [f"pod{uid}"]
    base = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").exists() else CGROUP_ROOT / controller
    return base.joinpath(*levels)


def usage_usec(directory: Path) -> int:
    """CPU time used by a cgroup (v1 ``cpuacct.usage`` or v2 ``cpu.stat``), 0 if it is not there yet."""
    try:
        if (directory / "cpuacct.usage").exists():
            return int((directory / "cpuacct.usage").read_text()) // 1000
        stat = dict(line.split() for line in (directory / "cpu.stat").read_text().splitlines())
        return int(stat["usage_usec"])
    except (OSError, KeyError, ValueError):
        return 0


def child_quotas_mcpu(directory: Path) -> list[int]:
    """CFS quotas (millicores) of the container cgroups below a pod cgroup (unlimited ones left out)."""
    quotas: list[int] = []
    try:
        children = [c for c in directory.iterdir() if c.is_dir()]
    except OSError:
        return quotas
    for child in children:
        try:
            if (child / "cpu.max").exists():
                quota, period = (child / "cpu.max").read_text().split()
                if quota != "max":
                    quotas.append(int(quota) * 1000 // int(period))
                continue
            quota_us = int((child / "cpu.cfs_quota_us").read_text())
            if quota_us > 0:
                quotas.append(quota_us * 1000 // int((child / "cpu.cfs_period_us").read_text()))
        except (OSError, ValueError):
            continue
    return quotas


def kernel_quota_mcpu(pod: dict[str, Any]) -> int | None:
    """The CFS quota the kernel enforces on the pod's first container, in millicores (None: none)."""
    path = container_cgroup(pod)
    if (path / "cpu.max").exists():
        quota, period = (path / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) * 1000 // int(period)
    quota_us = int((path / "cpu.cfs_quota_us").read_text())
    period_us = int((path / "cpu.cfs_period_us").read_text())
    return None if quota_us < 0 else quota_us * 1000 // period_us


def spec_limit_mcpu(pod: dict[str, Any]) -> int | None:
    """The first container's CPU limit in the pod spec, in millicores."""
    limit = pod["spec"]["containers"][0].get("resources", {}).get("limits", {}).get("cpu")
    if limit is None:
        return None
    return int(limit[:-1]) if limit.endswith("m") else int(float(limit) * 1000)


def restart_counts(pods: list[dict[str, Any]]) -> dict[str, int]:
    return {
        p["metadata"]["name"]: sum(
            s.get("restartCount", 0) for s in p.get("status", {}).get("containerStatuses") or []
        )
        for p in pods
    }
