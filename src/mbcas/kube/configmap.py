"""Reading the shared ConfigMap (:mod:`mbcas.api.settings`): its ``config.yaml`` text, or None.

Both the agent and the controller poll it; each validates what it reads and keeps the last good
copy itself. A missing ConfigMap (404) is None; any other failure is a typed
:class:`~mbcas.kube.errors.KubeError` for the caller to log and ride out.
"""

from __future__ import annotations

from mbcas.api.settings import CONFIG_KEY
from mbcas.kube.client import Kube
from mbcas.kube.errors import NotFoundError

__all__ = ["read_config_text"]


def read_config_text(kube: Kube, namespace: str, name: str) -> str | None:
    """The ``config.yaml`` of ConfigMap ``namespace/name`` ("" when the key is absent), or None
    when the ConfigMap does not exist."""
    try:
        body = kube.request_json(
            "GET",
            f"/api/v1/namespaces/{namespace}/configmaps/{name}",
            what=f"read configmap {namespace}/{name}",
        )
    except NotFoundError:
        return None
    return str((body.get("data") or {}).get(CONFIG_KEY, ""))
