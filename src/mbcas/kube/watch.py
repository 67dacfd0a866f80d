"""A raw watch of pods: one HTTP stream of JSON events, parsed without the client's models.

Both the agent's node pod cache and the node emulator keep plain-dict pods, so they read the
watch stream directly (``_preload_content=False``) instead of through ``kubernetes.watch``, which
would deserialise every object into generated models. :class:`PodWatch` opens the stream, yields
``(type, object)`` for ``ADDED``/``MODIFIED``/``DELETED``/``ERROR`` events (bookmarks and blank
keep-alive lines are skipped), and can be closed from another thread to stop a blocked reader.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

__all__ = ["PodWatch"]

Json = dict[str, Any]


class PodWatch:
    """One watch request on pods across namespaces, from ``resource_version``."""

    def __init__(self, core: Any, field_selector: str, resource_version: str, timeout_seconds: int):
        self._resp = core.list_pod_for_all_namespaces(
            field_selector=field_selector,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
        )

    def __iter__(self) -> Iterator[tuple[str, Json]]:
        """Events until the server ends the watch (its timeout) or :meth:`close` is called.

        ``ERROR`` events (e.g. 410 Gone: the resource version is too old) are yielded for the
        caller to decide: typically relist. Objects without metadata are skipped.
        """
        # Imported here: kubernetes.watch pulls in the generated client models (~8 MiB of RSS),
        # which the agent otherwise never loads.
        from kubernetes.watch.watch import iter_resp_lines

        try:
            for line in iter_resp_lines(self._resp):  # type: ignore[no-untyped-call]
                if not line:
                    continue
                event = json.loads(line)
                etype, obj = str(event.get("type")), event.get("object") or {}
                if etype == "BOOKMARK" or (etype != "ERROR" and "metadata" not in obj):
                    continue
                yield etype, obj
        finally:
            with contextlib.suppress(Exception):
                self._resp.release_conn()

    def close(self) -> None:
        """Stop the stream from another thread (the reader's loop ends)."""
        with contextlib.suppress(Exception):
            self._resp.shutdown()
        with contextlib.suppress(Exception):
            self._resp.close()
