"""Typed errors: every HTTP status and network failure maps to its class, code and exit code."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from mbcas.kube import errors as e


def api_exc(status: int, message: str = "boom") -> ApiException:
    exc = ApiException(status=status, reason="R")
    exc.body = json.dumps({"kind": "Status", "message": message, "reason": "X"})
    return exc


@pytest.mark.parametrize(
    ("status", "cls", "exit_code", "retryable"),
    [
        (404, e.NotFoundError, 3, False),
        (409, e.ConflictError, 4, True),
        (401, e.UnauthorizedError, 5, False),
        (403, e.ForbiddenError, 5, False),
        (422, e.InvalidError, 6, False),
        (400, e.InvalidError, 6, False),
        (429, e.ApiUnavailableError, 9, True),
        (503, e.ApiUnavailableError, 9, True),
    ],
)
def test_status_mapping(status: int, cls: type[e.KubeError], exit_code: int, retryable: bool) -> None:
    typed = e.translate(api_exc(status, "the message"), "do thing")
    assert type(typed) is cls and typed.exit_code == exit_code and typed.retryable is retryable
    assert str(typed) == "do thing: the message" and typed.status == status


def test_pod_gone_class_and_network_errors() -> None:
    assert isinstance(e.translate(api_exc(404), "read pod", gone=e.PodGoneError), e.PodGoneError)
    net = MaxRetryError(None, "/", NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    assert isinstance(e.translate(net, "x"), e.ApiUnavailableError)
    assert isinstance(e.translate(ApiException(status=0, reason="SSL"), "x"), e.ApiUnavailableError)
    assert e.translate(ValueError("not ours"), "x") is None


def test_api_call_reraises_typed_and_keeps_others() -> None:
    with pytest.raises(e.ConflictError) as info, e.api_call("patch"):
        raise api_exc(409)
    assert isinstance(info.value.__cause__, ApiException)
    with pytest.raises(KeyError), e.api_call("patch"):
        raise KeyError("x")


def test_non_json_body_still_gives_a_message() -> None:
    exc = ApiException(status=502, reason="Bad Gateway")
    exc.body = "<html>proxy</html>"
    assert "proxy" in str(e.translate(exc, "list"))


@pytest.mark.parametrize(
    ("status", "headers", "details", "expected"),
    [
        (429, {"Retry-After": "7"}, None, 7.0),
        (503, {"Retry-After": "3"}, None, 3.0),
        (429, None, {"retryAfterSeconds": 4}, 4.0),
        (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None, None),
        (500, None, None, None),
    ],
)
def test_retry_after_is_kept(
    status: int, headers: dict[str, str] | None, details: dict[str, int] | None, expected: float | None
) -> None:
    exc = ApiException(status=status, reason="R")
    body: dict[str, object] = {"kind": "Status", "message": "slow down"}
    if details is not None:
        body["details"] = details
    exc.body = json.dumps(body)
    exc.headers = headers
    typed = e.translate(exc, "do thing")
    assert typed is not None and typed.retry_after_s == expected
