"""What the cluster supports: the ``pods/resize`` subresource and the PodAllocation CRD.

Both answers come from API discovery (``GET /api/v1`` and ``GET /apis/mbcas.io/v1alpha1``),
which every authenticated user may read, so the checks need no extra RBAC. ``pods/resize``
exists from Kubernetes 1.32 (beta and on by default 1.33, GA 1.35); without it the controller
cannot do anything and says so at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from mbcas.api.models import GROUP, PLURAL, VERSION
from mbcas.kube.client import Kube
from mbcas.kube.errors import CrdNotInstalledError, NotFoundError, ResizeUnsupportedError

__all__ = [
    "ClusterSupport",
    "check_crd_installed",
    "check_resize_support",
    "cluster_support",
    "require_support",
]


@dataclass(frozen=True)
class ClusterSupport:
    """Result of the discovery checks."""

    server_version: str
    resize_subresource: bool
    crd_installed: bool

    @property
    def ok(self) -> bool:
        return self.resize_subresource and self.crd_installed


def server_version(kube: Kube) -> str:
    """The apiserver's ``gitVersion`` (e.g. ``v1.35.8``)."""
    info = kube.request_json("GET", "/version", what="read server version")
    return str((info or {}).get("gitVersion", "unknown"))


def check_resize_support(kube: Kube) -> bool:
    """True when the server serves ``pods/resize`` (in-place pod resize through the subresource)."""
    doc = kube.request_json("GET", "/api/v1", what="discover core/v1 resources")
    return any(r.get("name") == "pods/resize" for r in (doc or {}).get("resources", []))


def check_crd_installed(kube: Kube) -> bool:
    """True when ``podallocations.mbcas.io/v1alpha1`` is served (CRD installed and established)."""
    try:
        doc = kube.request_json("GET", f"/apis/{GROUP}/{VERSION}", what=f"discover {GROUP}/{VERSION}")
    except NotFoundError:
        return False
    return any(r.get("name") == PLURAL for r in (doc or {}).get("resources", []))


def cluster_support(kube: Kube) -> ClusterSupport:
    """All discovery checks at once."""
    return ClusterSupport(server_version(kube), check_resize_support(kube), check_crd_installed(kube))


def require_support(kube: Kube) -> ClusterSupport:
    """:func:`cluster_support`, raising the typed error for the first thing that is missing."""
    support = cluster_support(kube)
    if not support.resize_subresource:
        raise ResizeUnsupportedError(
            f"the apiserver ({support.server_version}) has no pods/resize subresource: "
            "in-place pod resize needs Kubernetes >= 1.32 (GA in 1.35)"
        )
    if not support.crd_installed:
        raise CrdNotInstalledError(
            f"the {PLURAL}.{GROUP} CRD is not installed: kubectl apply -f crds/{PLURAL}.{GROUP}.yaml"
        )
    return support
