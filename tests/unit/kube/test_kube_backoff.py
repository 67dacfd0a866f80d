"""The shared retry policy: exponential, capped, jittered, Retry-After honoured, reset on success."""

from __future__ import annotations

import pytest

from mbcas.kube.backoff import Backoff, BackoffPolicy, is_overload
from mbcas.kube.errors import ApiUnavailableError, ConflictError


def test_delays_grow_exponentially_up_to_the_cap() -> None:
    b = Backoff(BackoffPolicy(base_s=0.5, factor=2.0, max_s=4.0, jitter=0.0))
    assert [b.failure("k") for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.success("k")
    assert b.failure("k") == 0.5 and len(b) == 1
    b.forget("k")
    assert len(b) == 0


def test_keys_back_off_independently() -> None:
    b = Backoff(BackoffPolicy(base_s=1.0, jitter=0.0))
    b.failure("a")
    b.failure("a")
    assert b.failure("b") == 1.0 and b.attempts("a") == 2


@pytest.mark.parametrize("draw", [0.0, 0.3, 0.999])
def test_jitter_stays_within_its_fraction(draw: float) -> None:
    b = Backoff(BackoffPolicy(base_s=2.0, jitter=0.5), rng=lambda: draw)
    delay = b.failure("k")
    assert 1.0 < delay <= 2.0 and delay == pytest.approx(2.0 * (1 - 0.5 * draw))


def test_retry_after_is_a_floor_capped_at_the_maximum() -> None:
    b = Backoff(BackoffPolicy(base_s=0.5, max_s=30.0, jitter=0.5))
    assert b.failure("k", retry_after_s=7.0) >= 7.0
    assert b.failed("k", ApiUnavailableError("x", status=429, retry_after_s=3600.0)) == 30.0


def test_overload_means_the_api_as_a_whole() -> None:
    assert is_overload(ApiUnavailableError("unreachable"))
    assert is_overload(ApiUnavailableError("x", status=429))
    assert is_overload(ApiUnavailableError("x", status=503))
    assert not is_overload(ApiUnavailableError("webhook failed", status=500))
    assert not is_overload(ConflictError("x", status=409))


@pytest.mark.parametrize(
    "kwargs", [{"base_s": 0.0}, {"factor": 0.5}, {"max_s": 0.1, "base_s": 1.0}, {"jitter": 1.0}]
)
def test_a_bad_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid backoff policy"):
        BackoffPolicy(**kwargs)
