"""The one place where the local control plane's component versions are pinned.

Kubernetes 1.35 is the first release with in-place pod resize GA. etcd follows the version that
the Kubernetes release itself pins in its go.mod (3.6.5 for 1.35.x), built in a separate module
so its gRPC/otel versions are not raised under the apiserver.
"""

__all__ = ["ETCD_VERSION", "HELM_VERSION", "KUBERNETES_VERSION", "STAGING_VERSION"]

KUBERNETES_VERSION = "1.35.8"
# Staging modules (k8s.io/api, k8s.io/client-go, ...) are published as v0.<minor>.<patch>.
STAGING_VERSION = "0." + KUBERNETES_VERSION.split(".", 1)[1]
ETCD_VERSION = "3.6.5"
HELM_VERSION = "3.19.0"
