"""Kubernetes Events (core/v1) about pods and PodAllocations: every resize and every refusal.

:class:`EventRecorder` posts an Event with a reason (``Resized``, ``GuaranteedPod``,
``UIDMismatch``, ...) on the object it concerns and never raises: a lost Event is logged, it
must not fail the resize it describes. The same (object UID, reason, message) is posted once per
``dedupe_s`` so a refusal re-evaluated on every resync does not flood the namespace.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from mbcas.kube.client import Kube
from mbcas.kube.errors import KubeError

__all__ = ["EventRecorder", "ObjectRef"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectRef:
    """The ``involvedObject`` of an Event."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    def to_body(self) -> dict[str, str]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


def _micro_now() -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ"), now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventRecorder:
    """Posts Events as ``component``; thread-safe."""

    def __init__(
        self, kube: Kube, component: str = "mbcas-controller", instance: str = "", dedupe_s: float = 60.0
    ) -> None:
        self.kube = kube
        self.component = component
        self.instance = instance or component
        self.dedupe_s = dedupe_s
        self._seen: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def _fresh(self, key: tuple[str, str, str]) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last < self.dedupe_s:
                return False
            self._seen[key] = now
            self._seen.move_to_end(key)
            while len(self._seen) > 4096:
                self._seen.popitem(last=False)
        return True

    def post(self, obj: ObjectRef, reason: str, message: str, *, warning: bool = False) -> bool:
        """Post one Event; returns False when deduplicated or when posting failed."""
        if not self._fresh((obj.uid, reason, message)):
            return False
        stamp, micro = _micro_now()
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{obj.name}.", "namespace": obj.namespace},
            "involvedObject": obj.to_body(),
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance[:128],
            "action": "Resize",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": micro,
            "count": 1,
        }
        try:
            self.kube.request_json(
                "POST",
                f"/api/v1/namespaces/{obj.namespace}/events",
                what=f"post event {reason} on {obj.kind} {obj.namespace}/{obj.name}",
                body=body,
            )
        except KubeError as exc:
            log.warning("could not post event %s on %s/%s: %s", reason, obj.namespace, obj.name, exc)
            return False
        return True
