"""Leader election with a ``coordination.k8s.io/v1`` Lease: several controller replicas, one acts.

A Lease is lighter than kopf peering (no extra CRDs, no cluster-wide peering objects, and kopf
peering is not leader election: it pauses operators of lower priority but never guarantees a
single actor) and is what kube-controller-manager itself uses. :class:`LeaderElector` follows
client-go's ``tools/leaderelection`` rules:

- **Timings**: ``duration_s`` (how long followers wait without seeing the Lease change before
  they take it) > ``renew_deadline_s`` (how long the leader keeps acting without a successful
  renewal) > ``retry_s`` x 1.2 (how often anyone tries). Every request has a timeout shorter than
  ``renew_deadline_s`` (:attr:`LeaderElector.request_timeout_s`), so one attempt cannot outlive
  the deadline.
- **Leadership follows time since the last successful renewal**: :attr:`is_leader` is computed
  on every read as "we hold the Lease and our last successful renewal was *sent* less than
  ``renew_deadline_s`` ago" (monotonic clock, read before the request left). A renewal that hangs
  or fails therefore ends leadership by itself at the deadline, even while the election thread
  is still blocked in the request; followers take over no earlier than ``duration_s`` after they
  saw that renewal, so the old leader has stopped ``duration_s - renew_deadline_s`` before.
- **Takeover**: someone else's Lease is taken only after it has not changed for its
  ``leaseDurationSeconds`` of *our* monotonic clock (immune to clock skew between replicas);
  a released Lease (no holder) at once. A 409 on create or update means another replica won.

:meth:`stop` releases the Lease so a standby takes over at once. There is no fencing (as in
client-go): work already started when leadership ends finishes, so callers check
:attr:`is_leader` right before each write that must not happen twice.
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

__all__ = ["JITTER_FACTOR", "LeaderElector", "check_lease_timings"]

log = logging.getLogger(__name__)

#: client-go's ``JitterFactor``: the renew deadline must exceed ``retry_s`` times this.
JITTER_FACTOR = 1.2


def _micro(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_lease_timings(duration_s: float, renew_deadline_s: float, retry_s: float) -> list[str]:
    """Violations of ``duration > renew deadline > retry x 1.2 > 0`` (empty when the timings are sound)."""
    problems = []
    if not retry_s > 0:
        problems.append(f"the retry period ({retry_s:g}s) must be > 0")
    if not renew_deadline_s > JITTER_FACTOR * retry_s:
        problems.append(
            f"the renew deadline ({renew_deadline_s:g}s) must be greater than {JITTER_FACTOR:g} x "
            f"the retry period ({retry_s:g}s)"
        )
    if not duration_s > renew_deadline_s:
        problems.append(
            f"the lease duration ({duration_s:g}s) must be greater than the renew deadline "
            f"({renew_deadline_s:g}s)"
        )
    return problems


class LeaderElector:
    """Holds (or waits for) the Lease ``namespace/name`` as ``identity`` (see the module docs)."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration_s: float = 15.0,
        renew_deadline_s: float | None = None,
        retry_s: float | None = None,
        renew_s: float | None = None,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        retry = retry_s if retry_s is not None else (renew_s if renew_s is not None else 2.0)
        deadline = renew_deadline_s if renew_deadline_s is not None else duration_s * 2.0 / 3.0
        problems = check_lease_timings(duration_s, deadline, retry)
        if problems:
            raise ValueError("invalid lease timings: " + "; ".join(problems))
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration_s = duration_s
        self.renew_deadline_s = deadline
        self.retry_s = retry
        self.on_change = on_change
        self._clock = clock
        self._reported = False  # what on_change was last told
        self._renewed_at: float | None = None  # monotonic time our last successful renewal was sent
        self._observed: tuple[Any, Any] | None = None
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    @property
    def request_timeout_s(self) -> float:
        """Timeout of each Lease request: a third of the renew deadline (an attempt is a GET and
        a PUT, so a whole attempt ends before the deadline)."""
        return self.renew_deadline_s / 3.0

    @property
    def is_leader(self) -> bool:
        """We hold the Lease and renewed it successfully less than ``renew_deadline_s`` ago."""
        renewed = self._renewed_at
        return renewed is not None and self._clock() - renewed < self.renew_deadline_s

    def _report(self) -> bool:
        leader = self.is_leader
        if leader != self._reported:
            self._reported = leader
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
        return leader

    def _spec(self, transitions: int, acquire: str | None) -> dict[str, Any]:
        now = _micro()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration_s)),
            "acquireTime": acquire or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _request(self, method: str, path: str, what: str, body: Any = None) -> Any:
        timeout = self.request_timeout_s
        return self.kube.request_json(
            method, path, what=what, body=body, timeout=(min(timeout, 5.0), timeout)
        )

    def step(self) -> bool:
        """One acquire-or-renew attempt; returns whether we are leader afterwards."""
        sent = self._clock()  # before the request: the Lease on the server is no older than this
        try:
            held = self._attempt(sent)
        except KubeError as exc:
            if self._reported and not self.is_leader:
                log.warning("lost leadership: cannot renew lease (%s)", exc)
            return self._report()
        if held:
            self._renewed_at = sent
        else:
            self._renewed_at = None
        return self._report()

    def _attempt(self, now: float) -> bool:
        try:
            lease = self._request("GET", self.path, f"read lease {self.namespace}/{self.name}")
        except NotFoundError:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(0, None),
            }
            try:
                self._request(
                    "POST",
                    f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases",
                    "create lease",
                    body,
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
            self._request("PUT", self.path, "update lease", lease)
        except ConflictError:
            return False
        return True

    def release(self) -> None:
        """Give the Lease up if we hold it (best effort)."""
        held = self._renewed_at is not None
        self._renewed_at = None
        self._report()
        if not held:
            return
        try:
            lease = self._request("GET", self.path, "read lease")
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["leaseDurationSeconds"] = 1
                self._request("PUT", self.path, "release lease", lease)
        except KubeError as exc:
            log.info("could not release lease: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.retry_s)

    def start(self) -> None:
        """Start the election thread (the first attempt happens at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"lease-{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and release the Lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.request_timeout_s * 2 + 1)
            self._thread = None
        self.release()
