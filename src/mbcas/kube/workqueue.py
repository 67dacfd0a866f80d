"""A delaying, de-duplicating work queue of keys (the controller-runtime pattern), thread-safe.

Watch events and requeues only *add keys*; workers take a key when it is due and reconcile the
latest state. A key is in the queue at most once (the earliest due time wins) and is never
processed by two workers at once: adding a key that is being processed marks it dirty, and
:meth:`WorkQueue.done` puts it back. Bursts of events for one object thus collapse into one
reconcile, and a worker never spins: it sleeps until the next key is due.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable

__all__ = ["WorkQueue"]


class WorkQueue:
    """Keys with due times; ``get`` blocks until one is due (or the queue shuts down)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._processing: set[str] = set()
        self._dirty: dict[str, float] = {}
        self._seq = 0
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._due) + len(self._dirty)

    def add(self, key: str, delay: float = 0.0) -> None:
        """Schedule ``key`` in ``delay`` seconds (earlier schedules win)."""
        due = self._clock() + max(0.0, delay)
        with self._cond:
            if self._closed:
                return
            if key in self._processing:
                self._dirty[key] = min(due, self._dirty.get(key, due))
                return
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, key))
            self._cond.notify()

    def get(self, timeout: float | None = None) -> str | None:
        """The next due key (now marked processing), or None on timeout or shutdown."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._closed:
                while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # superseded entry
                now = self._clock()
                if self._heap and self._heap[0][0] <= now:
                    _, _, key = heapq.heappop(self._heap)
                    del self._due[key]
                    self._processing.add(key)
                    return key
                wait = self._heap[0][0] - now if self._heap else None
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)
            return None

    def done(self, key: str, requeue_after: float | None = None) -> None:
        """Finish processing ``key``; re-add it if it got dirty or ``requeue_after`` is given."""
        with self._cond:
            self._processing.discard(key)
            dirty = self._dirty.pop(key, None)
        if dirty is not None:
            self.add(key, max(0.0, dirty - self._clock()))
        if requeue_after is not None:
            self.add(key, requeue_after)

    def shutdown(self) -> None:
        """Wake every waiting worker; further adds are ignored."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
