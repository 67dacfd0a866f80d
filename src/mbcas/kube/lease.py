"""Leader election with a ``coordination.k8s.io/v1`` Lease: several controller replicas, one acts.

A Lease is lighter than kopf peering (no extra CRDs, no cluster-wide peering objects) and is what
kube-controller-manager itself uses. :class:`LeaderElector` runs :meth:`LeaderElector.step` every
``renew_s`` in a background thread:

- no Lease yet: create it with us as holder (a racing replica gets 409 and stays follower);
- we hold it: renew ``renewTime`` (a 409 means someone else took it: we are follower);
- someone else holds it: take it over only after it has not changed for ``duration_s`` of *our*
  monotonic clock (as client-go does, immune to clock skew between replicas).

Renewal failures (apiserver down) keep leadership until ``duration_s`` has passed since the last
successful renewal, then step down, so an apiserver restart shorter than the lease does not
flap leadership. :meth:`stop` releases the Lease so a standby takes over at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from mbcas.kube.client import Kube
from mbcas.kube.errors import ConflictError, KubeError, NotFoundError

__all__ = ["LeaderElector"]

log = logging.getLogger(__name__)


def _micro(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Holds (or waits for) the Lease ``namespace/name`` as ``identity``."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration_s: float = 15.0,
        renew_s: float = 5.0,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < renew_s < duration_s:
            raise ValueError("need 0 < renew_s < duration_s")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration_s = duration_s
        self.renew_s = renew_s
        self.on_change = on_change
        self._clock = clock
        self._leader = False
        self._last_renew: float | None = None
        self._observed: tuple[Any, Any] | None = None
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    @property
    def is_leader(self) -> bool:
        return self._leader

    def _set(self, leader: bool) -> None:
        if leader != self._leader:
            self._leader = leader
            log.info(
                "leader election %s/%s: %s is %s",
                self.namespace,
                self.name,
                self.identity,
                "leader" if leader else "follower",
            )
            if self.on_change is not None:
                try:
                    self.on_change(leader)
                except Exception:  # a callback bug must not kill the election thread
                    log.exception("leader-change callback failed")

    def _spec(self, transitions: int, acquire: str | None) -> dict[str, Any]:
        now = _micro()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration_s)),
            "acquireTime": acquire or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def step(self) -> bool:
        """One acquire-or-renew attempt; returns whether we are leader afterwards."""
        now = self._clock()
        try:
            leader = self._attempt(now)
        except KubeError as exc:
            still = self._leader and self._last_renew is not None and now - self._last_renew < self.duration_s
            if not still and self._leader:
                log.warning("lost leadership: cannot renew lease (%s)", exc)
            self._set(still)
            return still
        if leader:
            self._last_renew = now
        self._set(leader)
        return leader

    def _attempt(self, now: float) -> bool:
        try:
            lease = self.kube.request_json("GET", self.path, what=f"read lease {self.namespace}/{self.name}")
        except NotFoundError:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(0, None),
            }
            try:
                self.kube.request_json(
                    "POST",
                    f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases",
                    what="create lease",
                    body=body,
                )
            except ConflictError:
                return False
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        observed = (holder, spec.get("renewTime"))
        if observed != self._observed:
            self._observed = observed
            self._observed_at = now
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            new_spec = self._spec(transitions, spec.get("acquireTime"))
        elif holder and now - self._observed_at < float(spec.get("leaseDurationSeconds") or self.duration_s):
            return False
        else:
            new_spec = self._spec(transitions + 1, None)
        lease["spec"] = new_spec
        try:
            self.kube.request_json("PUT", self.path, what="update lease", body=lease)
        except ConflictError:
            return False
        return True

    def release(self) -> None:
        """Give the Lease up if we hold it (best effort)."""
        if not self._leader:
            return
        self._set(False)
        try:
            lease = self.kube.request_json("GET", self.path, what="read lease")
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["leaseDurationSeconds"] = 1
                self.kube.request_json("PUT", self.path, what="release lease", body=lease)
        except KubeError as exc:
            log.info("could not release lease: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.renew_s if self._leader else min(self.renew_s, 1.0))

    def start(self) -> None:
        """Start the election thread (the first attempt happens at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"lease-{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and release the Lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.release()
