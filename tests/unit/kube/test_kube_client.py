"""The raw request path of :class:`mbcas.kube.client.Kube`: what it asks the API server for."""

from __future__ import annotations

from typing import Any

from mbcas.kube.client import Kube


class _Response:
    status = 200
    data = b'{"items": []}'

    def read(self) -> None:
        return None


class _ApiClient:
    """Records the headers of each request, answers every one with an empty list."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    def param_serialize(self, **kw: Any) -> tuple[Any, ...]:
        self.headers.append(dict(kw["header_params"]))
        return (kw["method"], kw["resource_path"])

    def call_api(self, *_: Any, **__: Any) -> _Response:
        return _Response()


def test_request_json_sends_the_accept_header_it_is_given() -> None:
    """A metadata-only list (the controller's re-list) must ask for PartialObjectMetadataList;
    the header used to be replaced by plain JSON, so the API server sent whole objects."""
    api = _ApiClient()
    kube = Kube(api)  # type: ignore[arg-type]
    metadata = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
    assert kube.request_json("GET", "/apis/x", what="list", accept=metadata) == {"items": []}
    kube.request_json("GET", "/apis/x", what="list")
    assert [h["Accept"] for h in api.headers] == [metadata, "application/json"]
