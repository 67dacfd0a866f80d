"""Typed errors for everything that can go wrong when MBCAS talks to the Kubernetes API.

The kubernetes client raises one ``ApiException`` for every HTTP status and lets urllib3 errors
escape for network trouble. Callers need to decide differently on each case — a pod that is gone
is dropped, a resourceVersion conflict is retried at once, an invalid (422) resize is final, an
unreachable apiserver is retried with backoff — so :func:`translate` maps each to its own class.
Every class carries a stable ``code`` (used as the Event reason, the metric label and the status
condition reason) and the CLI exit code, and says whether a retry can help.

Use :func:`api_call` around a block of client calls::

    with api_call("patch pod default/web", gone=PodGoneError):
        core.patch_namespaced_pod_resize(...)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

__all__ = [
    "ApiUnavailableError",
    "ConflictError",
    "CrdNotInstalledError",
    "ForbiddenError",
    "InvalidError",
    "KubeError",
    "NotFoundError",
    "PodGoneError",
    "RefusedError",
    "ResizeInfeasibleError",
    "ResizeUnsupportedError",
    "UnauthorizedError",
    "api_call",
    "translate",
]


class KubeError(Exception):
    """Base of all typed API errors. ``status`` is the HTTP status when there was a response."""

    code: ClassVar[str] = "ApiError"
    exit_code: ClassVar[int] = 1
    retryable: ClassVar[bool] = True

    def __init_subclass__(
        cls, *, code: str | None = None, exit_code: int | None = None, retryable: bool | None = None
    ) -> None:
        """Subclasses set their ``code``, ``exit_code`` and ``retryable`` as class keywords."""
        super().__init_subclass__()
        if code is not None:
            cls.code = code
        if exit_code is not None:
            cls.exit_code = exit_code
        if retryable is not None:
            cls.retryable = retryable

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.details: dict[str, Any] = details or {}
        #: the server's ``Retry-After`` (header, else ``details.retryAfterSeconds``), in seconds
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return self.message


class NotFoundError(KubeError, code="NotFound", exit_code=3, retryable=False):
    """The object (or the API resource itself) does not exist (404)."""


class PodGoneError(NotFoundError, code="PodGone"):
    """The pod was deleted, or the live pod under that name is a different pod (other UID)."""


class ConflictError(KubeError, code="Conflict", exit_code=4, retryable=True):
    """The object changed since it was read (409, stale resourceVersion): re-read and retry."""


class UnauthorizedError(KubeError, code="Unauthorized", exit_code=5, retryable=False):
    """The credentials were rejected (401)."""


class ForbiddenError(KubeError, code="Forbidden", exit_code=5, retryable=False):
    """RBAC or an admission plugin denied the request (403)."""


class InvalidError(KubeError, code="Invalid", exit_code=6, retryable=False):
    """The apiserver rejected the object as invalid (422, or 400 BadRequest). Final: never retried."""


class RefusedError(KubeError, code="Refused", exit_code=7, retryable=False):
    """MBCAS itself refuses the change for safety (QoS class, limit < request, UID mismatch ...).

    ``reason`` is a short CamelCase cause (``GuaranteedPod``, ``BestEffortPod``, ``UIDMismatch``,
    ...), used as the Event reason and the metric label.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class ResizeInfeasibleError(KubeError, code="Infeasible", exit_code=8, retryable=False):
    """The kubelet reported ``PodResizePending`` with reason ``Infeasible``: the node can never fit it."""


class ApiUnavailableError(KubeError, code="ApiUnavailable", exit_code=9, retryable=True):
    """The apiserver could not be reached, timed out, throttled us (429) or failed (5xx)."""


class ResizeUnsupportedError(KubeError, code="ResizeUnsupported", exit_code=10, retryable=False):
    """The server has no ``pods/resize`` subresource (Kubernetes < 1.32 or the feature is off)."""


class CrdNotInstalledError(KubeError, code="CRDNotInstalled", exit_code=10, retryable=False):
    """The ``podallocations.mbcas.io`` CRD is not installed (or not yet established)."""


_BY_STATUS: dict[int, type[KubeError]] = {
    409: ConflictError,
    401: UnauthorizedError,
    403: ForbiddenError,
    400: InvalidError,
    422: InvalidError,
    429: ApiUnavailableError,
}


def _status_message(body: Any) -> tuple[str | None, str | None, dict[str, Any]]:
    """Parse a metav1.Status body into (reason, message, details); tolerate anything."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.strip().startswith("{"):
        return None, (body.strip()[:500] if isinstance(body, str) and body.strip() else None), {}
    try:
        data = json.loads(body)
    except ValueError:
        return None, body[:500], {}
    if not isinstance(data, dict):
        return None, None, {}
    details = data.get("details")
    return data.get("reason"), data.get("message"), details if isinstance(details, dict) else {}


def _seconds(value: Any) -> float | None:
    """A non-negative number of seconds, or None (HTTP dates and garbage are ignored)."""
    try:
        seconds = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _retry_after(headers: Any, details: dict[str, Any]) -> float | None:
    value = None
    if headers is not None:
        try:
            value = headers.get("Retry-After") or headers.get("retry-after")
        except AttributeError:
            value = None
    seconds = _seconds(value) if value is not None else None
    if seconds is None and details.get("retryAfterSeconds") is not None:
        seconds = _seconds(details.get("retryAfterSeconds"))
    return seconds


def _from_status(
    status: int,
    body: Any,
    what: str,
    *,
    gone: type[NotFoundError],
    fallback_reason: str | None,
    headers: Any = None,
) -> KubeError:
    api_reason, api_message, details = _status_message(body)
    text = f"{what}: {api_message or api_reason or fallback_reason or f'HTTP {status}'}"
    cls: type[KubeError] = gone if status in {404, 410} else _BY_STATUS.get(status, KubeError)
    if status >= 500:
        cls = ApiUnavailableError
    # Throttling and server trouble may say when to come back (kube.backoff honours it).
    retry_after = _retry_after(headers, details) if cls is ApiUnavailableError else None
    return cls(text, status=status, details=details, retry_after_s=retry_after)


def translate(
    exc: BaseException, what: str, *, gone: type[NotFoundError] = NotFoundError
) -> KubeError | None:
    """The typed error for ``exc``, or ``None`` if it is not an API or network error.

    ``what`` names the operation for the message ("resize pod ns/name"); ``gone`` is the class
    used for 404/410 (e.g. :class:`PodGoneError` for pod operations).
    """
    if isinstance(exc, KubeError):
        return exc
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3HTTPError

    if isinstance(exc, ApiException):
        if not exc.status:  # the client raises status 0 for transport problems
            return ApiUnavailableError(f"{what}: {exc.reason or 'no response from the apiserver'}")
        return _from_status(
            int(exc.status), exc.body, what, gone=gone, fallback_reason=exc.reason, headers=exc.headers
        )
    if isinstance(exc, Urllib3HTTPError | ConnectionError | TimeoutError):
        return ApiUnavailableError(f"{what}: apiserver unreachable ({type(exc).__name__}: {exc})")
    return None


@contextmanager
def api_call(what: str, *, gone: type[NotFoundError] = NotFoundError) -> Iterator[None]:
    """Run a block of client calls, re-raising API and network errors as :class:`KubeError`."""
    try:
        yield
    except KubeError:
        raise
    except Exception as exc:
        typed = translate(exc, what, gone=gone)
        if typed is None:
            raise
        raise typed from exc
