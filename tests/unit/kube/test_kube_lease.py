"""Leader election: leadership follows the time since the last successful renewal (client-go rules).

A fake API holds one Lease; a fake monotonic clock is moved by hand; a renewal can be made to
hang (the request blocks until the test lets it go), as a dead apiserver connection does.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from mbcas.kube.errors import ApiUnavailableError, ConflictError, NotFoundError
from mbcas.kube.lease import LeaderElector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LeaseApi:
    """One Lease behind ``request_json``; ``hang`` blocks requests until ``release`` is set."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0
        self.hang = False
        self.fail = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.timeouts: list[Any] = []

    def request_json(self, method: str, path: str, *, what: str, body: Any = None, **kw: Any) -> Any:
        self.timeouts.append(kw.get("timeout"))
        if self.hang:
            self.entered.set()
            self.release.wait(10)
            raise ApiUnavailableError(f"{what}: timed out")
        if self.fail:
            raise ApiUnavailableError(f"{what}: unreachable")
        if method == "GET":
            if self.lease is None:
                raise NotFoundError(f"{what}: not found", status=404)
            return copy.deepcopy(self.lease)
        if method == "POST":
            if self.lease is not None:
                raise ConflictError(f"{what}: exists", status=409)
        elif method == "PUT":
            assert self.lease is not None
            if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
                raise ConflictError(f"{what}: conflict", status=409)
        self.rv += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.lease)


def elector(api: LeaseApi, clock: Clock, identity: str = "a", **kw: Any) -> LeaderElector:
    return LeaderElector(api, "ns", "lease", identity, clock=clock, **kw)  # type: ignore[arg-type]


def test_a_hanging_renewal_ends_leadership_before_a_follower_can_take_over() -> None:
    api, clock = LeaseApi(), Clock()
    a = elector(api, clock, duration_s=15.0, renew_s=2.0)
    assert a.step() and a.is_leader
    api.hang = True
    t = threading.Thread(target=a.step)
    t.start()
    try:
        assert api.entered.wait(5)
        # The renewal hangs. A follower that saw the last renewal may take over after 15 s of its
        # own clock; by then the old leader must already have stopped acting.
        clock.now += 15.0
        assert not a.is_leader, "the old leader still acts while a follower may take over"
    finally:
        api.release.set()
        t.join(10)
    assert not a.is_leader


def test_leadership_lasts_the_renew_deadline_after_the_last_successful_renewal() -> None:
    api, clock = LeaseApi(), Clock()
    a = elector(api, clock, duration_s=15.0, renew_deadline_s=10.0, retry_s=2.0)
    assert a.step()
    api.fail = True
    clock.now += 9.0
    assert a.step() and a.is_leader  # failures within the deadline keep leadership
    clock.now += 1.5
    assert not a.step() and not a.is_leader  # 10.5 s since the last good renewal
    api.fail = False
    assert a.step() and a.is_leader  # renewed again: still the holder


def test_a_slow_successful_renewal_counts_from_when_it_was_sent() -> None:
    api, clock = LeaseApi(), Clock()
    a = elector(api, clock, duration_s=15.0, renew_deadline_s=10.0, retry_s=2.0)
    assert a.step()
    original = api.request_json

    def slow(method: str, path: str, **kw: Any) -> Any:
        result = original(method, path, **kw)
        clock.now += 6.0  # each request takes 6 s
        return result

    api.request_json = slow  # type: ignore[method-assign]
    assert not a.step()  # GET + PUT took 12 s: the renewal is older than the deadline on arrival


def test_every_request_times_out_before_the_renew_deadline() -> None:
    api, clock = LeaseApi(), Clock()
    a = elector(api, clock, duration_s=15.0, renew_deadline_s=10.0, retry_s=2.0)
    a.step()
    a.step()
    assert api.timeouts and all(t is not None for t in api.timeouts)
    for connect, read in api.timeouts:
        assert connect <= read < 10.0 / 2


def test_a_follower_takes_over_only_after_the_lease_duration_of_its_own_clock() -> None:
    api, clock = LeaseApi(), Clock()
    a = elector(api, clock, "a", duration_s=15.0, renew_deadline_s=10.0, retry_s=2.0)
    b = elector(api, clock, "b", duration_s=15.0, renew_deadline_s=10.0, retry_s=2.0)
    assert a.step()
    assert not b.step()
    clock.now += 14.0
    assert not b.step() and not a.is_leader  # a stopped renewing 14 s ago: it no longer acts
    clock.now += 1.5
    assert b.step() and b.is_leader
    assert not a.step() and not a.is_leader  # a sees b's Lease and stays follower


def test_release_hands_over_at_once() -> None:
    api, clock = LeaseApi(), Clock()
    a = elector(api, clock, "a", duration_s=15.0, renew_deadline_s=10.0, retry_s=2.0)
    b = elector(api, clock, "b", duration_s=15.0, renew_deadline_s=10.0, retry_s=2.0)
    changes: list[bool] = []
    a.on_change = changes.append
    assert a.step() and not b.step()
    a.release()
    assert not a.is_leader and changes == [True, False]
    assert b.step()


@pytest.mark.parametrize(
    ("duration", "deadline", "retry", "words"),
    [
        (15.0, 15.0, 2.0, "lease duration"),
        (15.0, 10.0, 9.0, "retry period"),
        (5.0, None, 5.0, "retry period"),
    ],
)
def test_unsound_timings_are_refused(
    duration: float, deadline: float | None, retry: float, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        LeaderElector(
            LeaseApi(), "ns", "l", "a", duration_s=duration, renew_deadline_s=deadline, retry_s=retry
        )  # type: ignore[arg-type]
