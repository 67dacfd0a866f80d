"""Build the Kubernetes API client once, from a kubeconfig (and context) or in-cluster credentials.

Everything in MBCAS that talks to the API receives a :class:`Kube` built here at start-up — the
agent, the controller's handlers and the CLI — instead of loading global configuration on its
own. Nothing touches the kubernetes package's global default ``Configuration``, so several
clients (for several test clusters, say) live side by side in one process.

Resolution order, as kubectl does it: an explicit ``kubeconfig`` path, else ``$KUBECONFIG`` (first
existing file of the list; when it is set but names no existing file that is an error, never a
fall-back to ``~/.kube/config``), else ``~/.kube/config``, else the in-cluster service account
(only inside a pod: ``KUBERNETES_SERVICE_HOST`` set). Every failure is a one-line
:class:`ClientConfigError` naming the file or the variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mbcas.kube.errors import KubeError, NotFoundError, api_call

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration

__all__ = [
    "DEFAULT_TIMEOUT",
    "ClientConfigError",
    "Kube",
    "build_api_client",
    "build_kube",
    "kubeconfig_namespace",
    "resolve_kubeconfig",
]

#: (connect, read) timeout in seconds for every single request MBCAS makes.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

_SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ClientConfigError(KubeError):
    """No usable kubeconfig or in-cluster credentials (or the named context does not exist)."""

    code = "ClientConfig"
    exit_code = 2
    retryable = False


def _config_module() -> Any:
    """``kubernetes.config`` (untyped; returned as ``Any`` so strict mypy accepts its calls)."""
    from kubernetes import config

    return config


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def resolve_kubeconfig(kubeconfig: str | os.PathLike[str] | None = None) -> Path | None:
    """The kubeconfig file to use, or ``None`` for in-cluster credentials.

    An explicit path must exist; otherwise ``$KUBECONFIG`` (first existing entry; an error when
    it is set and none exists) and ``~/.kube/config`` are tried.
    """
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise ClientConfigError(f"kubeconfig {str(path)!r} does not exist")
        return path
    env = os.environ.get("KUBECONFIG", "")
    entries = [e for e in env.split(os.pathsep) if e]
    for entry in entries:
        if Path(entry).expanduser().is_file():
            return Path(entry).expanduser()
    if entries:
        raise ClientConfigError(f"KUBECONFIG={env!r} names no existing file")
    home = Path("~/.kube/config").expanduser()
    if home.is_file():
        return home
    return None


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def build_api_client(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    *,
    in_cluster: bool | None = None,
) -> ApiClient:
    """A fresh ``ApiClient`` with its own ``Configuration``.

    ``in_cluster=True`` forces the service-account credentials, ``False`` forbids them, ``None``
    uses them only when no kubeconfig is found.
    """
    from kubernetes import client as k8s

    k8s_config = _config_module()

    cfg: Configuration = k8s.Configuration()
    path = None if in_cluster else resolve_kubeconfig(kubeconfig)
    if path is None and (in_cluster is False or (in_cluster is None and not _in_cluster())):
        raise ClientConfigError(
            "no kubeconfig found: pass --kubeconfig or set KUBECONFIG (~/.kube/config does not exist)"
        )
    try:
        if path is not None:
            k8s_config.load_kube_config(config_file=str(path), context=context, client_configuration=cfg)
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)
    except Exception as exc:  # ConfigException, but also YAML and type errors of a file that is no kubeconfig
        where = f"kubeconfig {str(path)!r}" if path is not None else "the in-cluster service account"
        detail = str(exc) if isinstance(exc, k8s_config.ConfigException) else f"not a kubeconfig ({exc})"
        raise ClientConfigError(_one_line(f"cannot load {where}: {detail}")) from exc
    # Fail fast on a dead apiserver; callers decide about retries with typed errors.
    cfg.retries = 1
    return k8s.ApiClient(configuration=cfg)


def kubeconfig_namespace(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> str:
    """The namespace of the (current or named) context, as kubectl uses it; ``default`` if unset.

    In-cluster it is the pod's own namespace.
    """
    k8s_config = _config_module()
    path = resolve_kubeconfig(kubeconfig)
    if path is None:
        ns_file = _SA_DIR / "namespace"
        return ns_file.read_text().strip() if ns_file.is_file() else "default"
    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=str(path))
    except Exception:  # unreadable: build_kube, called first, says why
        return "default"
    chosen: dict[str, Any] | None = current
    if context is not None:
        chosen = next((c for c in contexts if c.get("name") == context), None)
        if chosen is None:
            raise ClientConfigError(f"context {context!r} not found in {str(path)!r}")
    ns = ((chosen or {}).get("context") or {}).get("namespace")
    return str(ns) if ns else "default"


@dataclass(frozen=True)
class Kube:
    """The API client and the typed API groups MBCAS uses, built once and passed around."""

    api_client: ApiClient

    @property
    def core(self) -> Any:
        """``CoreV1Api`` on the shared client."""
        from kubernetes.client import CoreV1Api

        return CoreV1Api(self.api_client)

    @property
    def custom(self) -> Any:
        """``CustomObjectsApi`` on the shared client."""
        from kubernetes.client import CustomObjectsApi

        return CustomObjectsApi(self.api_client)

    @property
    def host(self) -> str:
        """The apiserver URL."""
        return str(self.api_client.configuration.host)

    def request_json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Any = None,
        query: Mapping[str, str | int | bool] | None = None,
        content_type: str | None = None,
        gone: type[NotFoundError] = NotFoundError,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        accept: str = "application/json",
    ) -> Any:
        """One raw API request returning the decoded JSON body (plain dicts, no client models).

        Errors are raised as typed :class:`~mbcas.kube.errors.KubeError`; ``what`` names the
        operation in their message and ``gone`` is the class for 404/410. ``accept`` can ask for
        another representation (e.g. ``PartialObjectMetadataList`` for a metadata-only list).
        """
        data = self._request(
            method,
            path,
            what=what,
            accept=accept,
            body=body,
            query=query,
            content_type=content_type,
            gone=gone,
            timeout=timeout,
        )
        return json.loads(data) if data else None

    def request_text(
        self,
        path: str,
        *,
        what: str,
        query: Mapping[str, str | int | bool] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> str:
        """``GET path`` returning the body as text (e.g. an agent's ``/metrics`` through the
        apiserver's pod proxy); errors as in :meth:`request_json`."""
        data = self._request("GET", path, what=what, accept="text/plain, */*", query=query, timeout=timeout)
        return data.decode("utf-8", errors="replace")

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        accept: str,
        body: Any = None,
        query: Mapping[str, str | int | bool] | None = None,
        content_type: str | None = None,
        gone: type[NotFoundError] = NotFoundError,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> bytes:
        from kubernetes.client.exceptions import ApiException

        client: Any = self.api_client
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items()]
        with api_call(what, gone=gone):
            request = client.param_serialize(
                method=method,
                resource_path=path,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            resp = client.call_api(*request, _request_timeout=timeout)
            resp.read()
            if not 200 <= resp.status <= 299:
                raise ApiException.from_response(http_resp=resp, body=None, data=None)
            return bytes(resp.data or b"")

    def close(self) -> None:
        """Release the connection pool."""
        client: Any = self.api_client
        client.close()


def build_kube(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    *,
    in_cluster: bool | None = None,
) -> Kube:
    """:func:`build_api_client` wrapped in a :class:`Kube`."""
    return Kube(build_api_client(kubeconfig, context, in_cluster=in_cluster))
