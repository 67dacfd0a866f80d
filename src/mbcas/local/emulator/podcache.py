"""The emulator's view of the pods: one watch per emulated node (and one for unscheduled pods).

A real kubelet watches the pods bound to its node; the emulator does the same for each emulated
node (``spec.nodeName=<node>``) and, when it also plays the scheduler, for pods bound to none
(``spec.nodeName=``, the :data:`UNSCHEDULED` scope). :class:`PodCache` keeps the latest object of
each pod per scope: each watch lists, then streams from the list's resourceVersion and relists on
an error (with backoff) or when the server ends the stream. Every pod that was added, changed or
removed is handed to ``enqueue`` by its key (``namespace/name``, :func:`pod_key`): the worker then
reconciles the pod's latest state. :meth:`PodCache.remember` stores a pod the emulator has just
written, so its next reconcile does not act on an older copy.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from mbcas.kube.watch import PodWatch
from mbcas.local.podres import Json

__all__ = ["UNSCHEDULED", "PodCache", "pod_key"]

UNSCHEDULED = ""


def pod_key(pod: Json) -> str:
    """``namespace/name`` of a pod object."""
    meta = pod["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


@dataclass
class PodCache:
    """The latest pods of each watched scope (a node name, or :data:`UNSCHEDULED`)."""

    node_names: Sequence[str]
    new_core: Callable[[], Any]
    enqueue: Callable[[str], None]
    _: KW_ONLY
    stop: threading.Event
    note_error: Callable[[str, BaseException], None]
    resync: float
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _cache: dict[str, dict[str, Json]] = field(default_factory=dict, init=False, repr=False)
    _responses: list[Any] = field(default_factory=list, init=False, repr=False)

    def add_scope(self, scope: str) -> None:
        """Start caching ``scope`` (before its :meth:`watch_loop` runs)."""
        with self._lock:
            self._cache[scope] = {}

    def close(self) -> None:
        """End every open watch stream (their loops see ``stop`` and return)."""
        for watch in list(self._responses):
            watch.close()

    def watch_loop(self, scope: str) -> None:
        """List and watch the pods of ``scope`` until ``stop`` (a thread's target)."""
        core = self.new_core()
        selector = f"spec.nodeName={scope}"
        backoff = 0.2
        while not self.stop.is_set():
            try:
                listing = json.loads(
                    core.list_pod_for_all_namespaces(field_selector=selector, _preload_content=False).data
                )
                fresh = {pod_key(p): p for p in listing.get("items") or []}
                with self._lock:
                    gone = set(self._cache[scope]) - set(fresh)
                    self._cache[scope] = fresh
                for key in [*fresh, *gone]:
                    self.enqueue(key)
                rv = listing["metadata"]["resourceVersion"]
                self._stream(core, scope, selector, rv)
                backoff = 0.2
            except Exception as exc:
                if self.stop.is_set():
                    return
                self.note_error(f"watch {selector}", exc)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _stream(self, core: Any, scope: str, selector: str, rv: str) -> None:
        watch = PodWatch(core, selector, rv, max(1, int(self.resync)))
        self._responses.append(watch)
        try:
            for etype, obj in watch:
                if self.stop.is_set():
                    return
                if etype == "ERROR":
                    return  # e.g. 410 Gone: relist
                key = pod_key(obj)
                with self._lock:
                    if etype == "DELETED":
                        self._cache[scope].pop(key, None)
                    else:
                        self._cache[scope][key] = obj
                self.enqueue(key)
        finally:
            with contextlib.suppress(ValueError):
                self._responses.remove(watch)

    def lookup(self, key: str) -> Json | None:
        """The cached pod ``key`` (on one of our nodes first, else unscheduled), or None."""
        with self._lock:
            for scope in self.node_names:
                pod = self._cache.get(scope, {}).get(key)
                if pod is not None:
                    return pod
            return self._cache.get(UNSCHEDULED, {}).get(key)

    def remember(self, pod: Json) -> None:
        """Store a pod we just wrote, so the next reconcile sees our own write."""
        scope = (pod.get("spec") or {}).get("nodeName") or UNSCHEDULED
        with self._lock:
            cached = self._cache.get(scope, {}).get(pod_key(pod))
            if cached is None or int(cached["metadata"]["resourceVersion"]) <= int(
                pod["metadata"]["resourceVersion"]
            ):
                self._cache.setdefault(scope, {})[pod_key(pod)] = pod
