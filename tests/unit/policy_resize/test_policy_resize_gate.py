"""ResizeGate: deadband, step caps, per-pod interval, failure cooldown, infeasible memory, global rate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbcas.policy.resize import Deadband, GateAction, ResizeGate, ResizeRules, TokenBucket, step_limit

RULES = ResizeRules(
    min_interval_s=1.0,
    max_step_ratio=0.5,
    max_step_mcpu=1000,
    min_step_mcpu=10,
    failure_cooldown_s=2.0,
    failure_backoff_factor=2.0,
    failure_cooldown_max_s=10.0,
    max_resizes_per_second=2.0,
    burst=2,
)
DEADBAND = Deadband(ratio=0.05, mcpu=10)  # the contract's, handed to the gate by the controller


class TestDeadband:
    def test_tiny_change_is_skipped(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        d = gate.evaluate("u", 1000, 1040, now=0.0)
        assert d.action is GateAction.SKIP and d.reason == "Deadband"

    def test_change_just_outside_band_applies(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        d = gate.evaluate("u", 1000, 1051, now=0.0)
        assert d.action is GateAction.APPLY and d.value == 1051

    def test_absolute_band_for_small_limits(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        assert gate.evaluate("u", 100, 110, now=0.0).action is GateAction.SKIP
        assert gate.evaluate("u", 100, 111, now=0.0).action is GateAction.APPLY


class TestStepCap:
    def test_relative_cap_on_decreases(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        d = gate.evaluate("u", 1000, 100, now=0.0)
        assert d.action is GateAction.APPLY and d.value == 500 and d.capped

    def test_raises_have_only_the_absolute_cap(self) -> None:
        # A limit is a burst cap: 400m may grow by max_step_mcpu (1000m) at once, not by 50 %.
        gate = ResizeGate(RULES, DEADBAND)
        d = gate.evaluate("u", 400, 4000, now=0.0)
        assert d.action is GateAction.APPLY and d.value == 1400 and d.capped

    def test_absolute_cap(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        d = gate.evaluate("u", 3000, 100, now=0.0)
        assert d.value == 2000 and d.capped

    def test_minimum_step_keeps_progress(self) -> None:
        assert step_limit(4, RULES) == RULES.min_step_mcpu

    def test_no_current_limit_sets_target_directly(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        d = gate.evaluate("u", None, 3000, now=0.0)
        assert d.action is GateAction.APPLY and d.value == 3000 and not d.capped

    def test_no_current_limit_steps_down_from_what_the_pod_can_use(self) -> None:
        # Issue 14 item 6: without a limit the pod can use the whole node, so its first limit is a
        # step down from the node's allocatable CPU, not the target at once.
        gate = ResizeGate(RULES, DEADBAND)
        d = gate.evaluate("u", None, 60, now=0.0, unlimited_mcpu=8000)
        assert d.action is GateAction.APPLY and d.value == 8000 - RULES.max_step_mcpu and d.capped
        assert "unlimited" in d.message
        assert gate.evaluate("v", None, 7000, now=0.0, unlimited_mcpu=8000).value == 7000

    @given(
        current=st.integers(1, 64_000),
        target=st.integers(1, 64_000),
    )
    def test_step_never_exceeds_either_cap_and_moves_towards_target(self, current: int, target: int) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        d = gate.evaluate("u", current, target, now=0.0)
        if d.action is GateAction.SKIP:
            assert abs(target - current) <= max(10, int(0.05 * current))
            return
        assert d.action is GateAction.APPLY and d.value is not None
        assert abs(d.value - current) <= step_limit(current, RULES, up=target > current)
        assert min(current, target) <= d.value <= max(current, target)
        assert d.capped == (d.value != target)


class TestPerPodInterval:
    def test_second_resize_waits_for_the_interval(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        assert gate.evaluate("u", 1000, 1400, now=10.0).action is GateAction.APPLY
        gate.record_applied("u", 10.0)
        d = gate.evaluate("u", 1400, 1800, now=10.4)
        assert d.action is GateAction.WAIT and d.reason == "MinInterval"
        assert d.retry_after_s == pytest.approx(0.6)
        assert gate.evaluate("u", 1400, 1800, now=11.0).action is GateAction.APPLY

    def test_interval_is_per_pod(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        gate.record_applied("a", 10.0)
        assert gate.evaluate("b", 1000, 1400, now=10.1).action is GateAction.APPLY


class TestFailureCooldown:
    def test_backoff_doubles_and_is_capped(self) -> None:
        assert [RULES.cooldown_after(n) for n in range(6)] == [0.0, 2.0, 4.0, 8.0, 10.0, 10.0]

    def test_cooldown_blocks_until_it_expires_and_success_resets(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        assert gate.record_failure("u", 0.0) == 2.0
        assert gate.record_failure("u", 0.0) == 4.0
        d = gate.evaluate("u", 1000, 1400, now=3.0)
        assert d.action is GateAction.WAIT and d.reason == "Cooldown"
        assert d.retry_after_s == pytest.approx(1.0)
        assert gate.evaluate("u", 1000, 1400, now=4.0).action is GateAction.APPLY
        gate.record_applied("u", 4.0)
        assert gate.history("u").failures == 0


class TestInfeasible:
    def test_same_or_larger_never_retried_smaller_is(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        gate.record_infeasible("u", 1500)
        assert gate.evaluate("u", 1000, 1500, now=0.0).action is GateAction.BLOCKED
        assert gate.evaluate("u", 1000, 3000, now=0.0).action is GateAction.BLOCKED
        assert gate.evaluate("u", 1000, 1400, now=0.0).action is GateAction.APPLY

    def test_remembers_the_smallest_infeasible_value(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        gate.record_infeasible("u", 2000)
        gate.record_infeasible("u", 1500)
        gate.record_infeasible("u", 1800)
        assert gate.history("u").infeasible_mcpu == 1500

    def test_forget_clears_a_recreated_pod(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        gate.record_infeasible("u", 1500)
        gate.forget("u")
        assert gate.evaluate("u", 1000, 1500, now=0.0).action is GateAction.APPLY


class TestGlobalRate:
    def test_burst_then_rate(self) -> None:
        gate = ResizeGate(RULES, DEADBAND)
        actions = [gate.evaluate(f"p{i}", 1000, 1400, now=0.0).action for i in range(3)]
        assert actions == [GateAction.APPLY, GateAction.APPLY, GateAction.WAIT]
        d = gate.evaluate("p3", 1000, 1400, now=0.0)
        assert d.reason == "RateLimited" and d.retry_after_s == pytest.approx(0.5)
        assert gate.evaluate("p3", 1000, 1400, now=0.5).action is GateAction.APPLY

    @given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=200))
    def test_bucket_never_grants_more_than_burst_plus_rate_times_time(self, times: list[float]) -> None:
        bucket = TokenBucket(rate=2.0, burst=3)
        times.sort()
        granted = sum(bucket.take(t) for t in times)
        assert granted <= 3 + 2.0 * (times[-1] - times[0]) + 1e-9


class TestRulesValidation:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"max_step_ratio": 0},
            {"max_resizes_per_second": 0},
            {"failure_backoff_factor": 0.5},
            {"failure_cooldown_max_s": 1.0, "failure_cooldown_s": 5.0},
            {"min_interval_s": float("nan")},
            {"burst": 0},
        ],
    )
    def test_bad_values_are_rejected_with_the_field_name(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            ResizeRules(**kwargs)  # type: ignore[arg-type]

    def test_target_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="> 0"):
            ResizeGate(RULES, DEADBAND).evaluate("u", 100, 0, now=0.0)
