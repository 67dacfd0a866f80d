"""WorkQueue: de-duplication, delays, no double processing, dirty re-adds, shutdown."""

from __future__ import annotations

import threading

from mbcas.kube.workqueue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_dedupes_and_earliest_due_wins() -> None:
    clock = Clock()
    q = WorkQueue(clock)
    q.add("a", 5)
    q.add("a", 1)
    q.add("a", 3)
    assert len(q) == 1
    assert q.get(timeout=0) is None
    clock.t = 1.0
    assert q.get(timeout=0) == "a"
    assert q.get(timeout=0) is None


def test_key_added_while_processing_comes_back_once_after_done() -> None:
    q = WorkQueue()
    q.add("a")
    assert q.get(timeout=1) == "a"
    q.add("a")
    q.add("a")
    assert q.get(timeout=0.05) is None  # never handed to a second worker while processing
    q.done("a")
    assert q.get(timeout=1) == "a"
    q.done("a")
    assert len(q) == 0


def test_requeue_after_and_shutdown_wakes_waiters() -> None:
    q = WorkQueue()
    q.add("a")
    key = q.get(timeout=1)
    assert key == "a"
    q.done("a", requeue_after=0.05)
    assert q.get(timeout=2) == "a"
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.shutdown()
    t.join(timeout=5)
    assert got == [None] and not t.is_alive()
