"""One retry policy for MBCAS's API writes: jittered exponential backoff that honours Retry-After.

The controller (resize patches, status writes, conflicts) and the agent (PodAllocation writes)
retry through :class:`Backoff`, so every retry in the product follows the same rule::

    delay(n) = min(max_s, base_s * factor ** (n - 1)) * (1 - jitter * U[0, 1))
    delay    = max(delay, Retry-After)        when the server sent one (capped at max_s)

``n`` counts consecutive failures of one key (an allocation, or ``"api"`` for the API as a
whole); a success resets it. Jitter spreads the retries of many keys and many replicas so they do
not hit a recovering apiserver in lockstep. :func:`is_overload` tells errors that concern the API
as a whole (no response, 429, 503, 504) from those of one object: callers hold *all* their writes
for the former and only that key's for the latter. Thread-safe; time is never read here.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mbcas.kube.errors import ApiUnavailableError, KubeError

__all__ = ["Backoff", "BackoffPolicy", "is_overload"]

_OVERLOAD_STATUSES = frozenset({429, 503, 504})


@dataclass(frozen=True)
class BackoffPolicy:
    """``base_s * factor ** (n - 1)`` capped at ``max_s``, minus up to ``jitter`` of it."""

    base_s: float = 0.5
    factor: float = 2.0
    max_s: float = 60.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        bad = [
            name
            for name, ok in (
                ("base_s", math.isfinite(self.base_s) and self.base_s > 0),
                ("factor", math.isfinite(self.factor) and self.factor >= 1),
                ("max_s", math.isfinite(self.max_s) and self.max_s >= self.base_s),
                ("jitter", 0 <= self.jitter < 1),
            )
            if not ok
        ]
        if bad:
            raise ValueError(f"invalid backoff policy: {', '.join(bad)} out of range")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay after ``attempt`` consecutive failures (``attempt >= 1``)."""
        return float(min(self.max_s, self.base_s * self.factor ** min(max(attempt, 1) - 1, 64)))


def is_overload(exc: KubeError) -> bool:
    """True for errors about the API as a whole: unreachable (no status), 429, 503, 504."""
    return isinstance(exc, ApiUnavailableError) and (exc.status is None or exc.status in _OVERLOAD_STATUSES)


class Backoff:
    """Consecutive-failure counts per key under one :class:`BackoffPolicy` (see module docs)."""

    def __init__(
        self, policy: BackoffPolicy | None = None, *, rng: Callable[[], float] | None = None
    ) -> None:
        self.policy = policy or BackoffPolicy()
        self._rng = rng or random.random
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Keys currently backing off."""
        with self._lock:
            return len(self._attempts)

    def attempts(self, key: str) -> int:
        with self._lock:
            return self._attempts.get(key, 0)

    def failure(self, key: str, retry_after_s: float | None = None) -> float:
        """Count one more failure of ``key``; the seconds to wait before its next attempt."""
        with self._lock:
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
            jitter = self.policy.jitter * self._rng()
        delay = self.policy.ceiling(attempt) * (1.0 - jitter)
        if retry_after_s is not None and math.isfinite(retry_after_s):
            delay = max(delay, min(retry_after_s, self.policy.max_s))
        return delay

    def failed(self, key: str, exc: KubeError) -> float:
        """:meth:`failure` with the error's ``Retry-After``."""
        return self.failure(key, exc.retry_after_s)

    def success(self, key: str) -> None:
        """``key`` succeeded: its next failure starts from ``base_s`` again."""
        with self._lock:
            self._attempts.pop(key, None)

    forget = success
