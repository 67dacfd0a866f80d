"""Safety rules for applying CPU-limit changes: pure decisions, time passed in, no I/O.

The controller asks :class:`ResizeGate` before every in-place resize. The gate remembers, per pod
UID, when the pod was last resized, how many resizes in a row failed, and the smallest value the
kubelet called ``Infeasible``; and it holds one global token bucket. For a current limit and a
target it answers with a :class:`GateDecision`:

- **deadband** — ``|target - current|`` within the contract's :class:`Deadband`,
  ``max(deadband_mcpu, deadband_ratio * current)``, is not worth a resize (``SKIP``);
- **infeasible** — a value the node already refused for this pod, or any larger one, is never
  retried (``BLOCKED``); a smaller value is;
- **cooldown** — after a failure the pod waits ``failure_cooldown_s * backoff_factor**(n-1)``
  (capped at ``failure_cooldown_max_s``) before the next attempt (``WAIT``);
- **minimum interval** — at most one resize per pod every ``min_interval_s`` (``WAIT``);
- **global rate** — a token bucket of ``max_resizes_per_second`` with ``burst`` tokens shared by
  all pods (``WAIT``);
- **step cap** — one resize lowers the limit by at most
  ``max(min_step_mcpu, min(max_step_ratio * current, max_step_mcpu))`` and raises it by at most
  ``max_step_mcpu``; the rest follows on later resizes (``APPLY`` with ``value`` short of the
  target and ``capped=True``). A pod without a limit can use the whole node, so its first limit
  steps down from the node's allocatable CPU (``unlimited_mcpu``) like any other decrease. Raises
  have no relative cap: a limit is a burst cap (requests keep
  every neighbour's share), so a larger one only lets the pod use idle CPU, while a relative cap
  would make a pod with a small limit double once per ``min_interval_s`` through a spike.

Every ``WAIT`` carries ``retry_after_s`` so the caller sleeps exactly as long as needed and never
spins. Callers must call :meth:`ResizeGate.record_applied` after a successful patch and
:meth:`ResizeGate.record_failure` / :meth:`ResizeGate.record_infeasible` when it goes wrong.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Deadband",
    "GateAction",
    "GateDecision",
    "PodHistory",
    "ResizeGate",
    "ResizeRules",
    "TokenBucket",
    "step_limit",
]


@dataclass(frozen=True, slots=True)
class Deadband:
    """A change from ``current`` to ``target`` (millicores) is too small to make when
    ``|target - current| <= max(mcpu, ratio * current)``.

    The controller's value comes from the agent/controller contract
    (:class:`mbcas.api.contract.ContractSettings`), which both processes read from one ConfigMap,
    so the agent judges "applied" with exactly the band the controller skips changes within.
    """

    ratio: float = 0.05
    mcpu: int = 10

    def band_mcpu(self, current_mcpu: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The band around ``current_mcpu`` (element-wise), in whole millicores."""
        current = np.asarray(current_mcpu, dtype=np.int64)
        return np.maximum(self.mcpu, (self.ratio * current).astype(np.int64))

    def within(self, current_mcpu: npt.ArrayLike, target_mcpu: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """True where moving from ``current_mcpu`` to ``target_mcpu`` is within the band.

        Element-wise on arrays of pods (the simulator); ``bool()`` of the result for one pod."""
        current = np.asarray(current_mcpu, dtype=np.int64)
        target = np.asarray(target_mcpu, dtype=np.int64)
        return np.asarray(np.abs(target - current) <= self.band_mcpu(current))


class ResizeRules(BaseModel):
    """Tunables of the gate (see the module docstring); the controller's ``rules`` settings."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    min_interval_s: float = Field(10.0, ge=0, allow_inf_nan=False)
    """Least seconds between two resizes of one pod."""
    max_step_ratio: float = Field(1.0, gt=0, allow_inf_nan=False)
    """Largest step of one resize, as a ratio of the current limit."""
    max_step_mcpu: int = Field(2000, gt=0)
    """Largest step of one resize, in millicores."""
    min_step_mcpu: int = Field(10, gt=0)
    """Smallest step a capped resize still makes (keeps progress on tiny limits)."""
    failure_cooldown_s: float = Field(5.0, ge=0, allow_inf_nan=False)
    """Wait after a failed resize before the next attempt."""
    failure_backoff_factor: float = Field(2.0, ge=1)
    """The cooldown grows by this factor with each failure in a row."""
    failure_cooldown_max_s: float = Field(300.0, ge=0)
    """Longest cooldown after failures."""
    max_resizes_per_second: float = Field(10.0, gt=0)
    """Global rate of resizes (a token bucket shared by all pods)."""
    burst: int = Field(10, ge=1)
    """Resizes the global rate lets through at once."""

    @model_validator(mode="after")
    def _cooldowns(self) -> ResizeRules:
        if self.failure_cooldown_max_s < self.failure_cooldown_s:
            raise ValueError(
                f"failure_cooldown_max_s = {self.failure_cooldown_max_s:g} must be >= "
                f"failure_cooldown_s = {self.failure_cooldown_s:g}"
            )
        return self

    def cooldown_after(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (0 for none)."""
        if failures <= 0:
            return 0.0
        delay = self.failure_cooldown_s * self.failure_backoff_factor ** min(failures - 1, 64)
        return float(min(delay, self.failure_cooldown_max_s))


def step_limit(current_mcpu: int, rules: ResizeRules, *, up: bool = False) -> int:
    """The largest change, in millicores, one resize may make from ``current_mcpu`` (downwards, or
    upwards with ``up``: only the absolute cap applies to raises)."""
    if up:
        return max(rules.min_step_mcpu, rules.max_step_mcpu)
    relative = int(rules.max_step_ratio * max(current_mcpu, 0))
    return max(rules.min_step_mcpu, min(relative, rules.max_step_mcpu))


class GateAction(enum.StrEnum):
    """What the caller should do."""

    APPLY = "Apply"
    SKIP = "Skip"  # within the deadband: nothing to do
    WAIT = "Wait"  # come back after retry_after_s
    BLOCKED = "Blocked"  # infeasible before: not retried at this value or above


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer. ``value`` is the limit to apply now (only for ``APPLY``)."""

    action: GateAction
    reason: str
    message: str
    value: int | None = None
    capped: bool = False
    retry_after_s: float = 0.0


@dataclass
class PodHistory:
    """What the gate remembers about one pod UID."""

    last_resize_s: float | None = None
    failures: int = 0
    last_failure_s: float | None = None
    infeasible_mcpu: int | None = None


@dataclass
class TokenBucket:
    """A token bucket (``rate`` tokens per second, ``burst`` at most), time passed in."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    stamp: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def _refill(self, now: float) -> None:
        if self.stamp is not None and now > self.stamp:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        if self.stamp is None or now > self.stamp:
            self.stamp = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 if one is available now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> bool:
        """Take one token if available."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ResizeGate:
    """Per-pod and global resize rules with their memory. Not thread-safe: guard it with a lock."""

    def __init__(self, rules: ResizeRules, deadband: Deadband | None = None) -> None:
        self.rules = rules
        self.deadband = deadband or Deadband()
        """The contract's deadband; the controller replaces it when the shared settings change."""
        self._pods: dict[str, PodHistory] = {}
        self._bucket = TokenBucket(rules.max_resizes_per_second, rules.burst)

    def history(self, uid: str) -> PodHistory:
        """The (possibly fresh) history of pod ``uid``."""
        return self._pods.setdefault(uid, PodHistory())

    def forget(self, uid: str) -> None:
        """Drop everything remembered about a pod (it is gone)."""
        self._pods.pop(uid, None)

    def known(self) -> list[str]:
        """UIDs with a history."""
        return list(self._pods)

    def in_deadband(self, current_mcpu: int, target_mcpu: int, deadband: Deadband | None = None) -> bool:
        """True when moving from ``current_mcpu`` to ``target_mcpu`` is too small to bother."""
        return bool((deadband or self.deadband).within(current_mcpu, target_mcpu))

    def evaluate(
        self,
        uid: str,
        current_mcpu: int | None,
        target_mcpu: int,
        now: float,
        *,
        deadband: Deadband | None = None,
        unlimited_mcpu: int | None = None,
    ) -> GateDecision:
        """Decide about moving pod ``uid`` from ``current_mcpu`` to ``target_mcpu`` at time ``now``.

        ``current_mcpu=None`` means "no limit yet": the pod can use ``unlimited_mcpu`` (the node's
        allocatable CPU), and its first limit steps down from there; without ``unlimited_mcpu``
        it is set at the target directly. ``deadband`` overrides the gate's own (the
        controller passes the contract's current one). ``APPLY`` consumes a token of the global
        bucket: call it only when you will patch.
        """
        if target_mcpu <= 0:
            raise ValueError(f"target must be > 0 millicores, got {target_mcpu}")
        rules = self.rules
        hist = self._pods.get(uid, PodHistory())
        if current_mcpu is not None and (
            target_mcpu == current_mcpu or self.in_deadband(current_mcpu, target_mcpu, deadband)
        ):
            return GateDecision(
                GateAction.SKIP,
                "Deadband",
                f"change {current_mcpu}m -> {target_mcpu}m is within the deadband",
            )
        if current_mcpu is None:
            value = target_mcpu
            if unlimited_mcpu is not None and target_mcpu < unlimited_mcpu:
                value = max(target_mcpu, unlimited_mcpu - step_limit(unlimited_mcpu, rules))
        else:
            up = target_mcpu > current_mcpu
            step = step_limit(current_mcpu, rules, up=up)
            change = min(step, target_mcpu - current_mcpu) if up else max(-step, target_mcpu - current_mcpu)
            value = current_mcpu + change
        if hist.infeasible_mcpu is not None and value >= hist.infeasible_mcpu:
            return GateDecision(
                GateAction.BLOCKED,
                "Infeasible",
                f"the node refused {hist.infeasible_mcpu}m for this pod as infeasible;"
                f" {value}m is not retried",
            )
        if hist.failures and hist.last_failure_s is not None:
            until = hist.last_failure_s + rules.cooldown_after(hist.failures)
            if now < until:
                return GateDecision(
                    GateAction.WAIT,
                    "Cooldown",
                    f"cooling down after {hist.failures} failed resize(s)",
                    retry_after_s=until - now,
                )
        if hist.last_resize_s is not None:
            until = hist.last_resize_s + rules.min_interval_s
            if now < until:
                return GateDecision(
                    GateAction.WAIT,
                    "MinInterval",
                    f"last resize {now - hist.last_resize_s:.1f}s ago (minimum {rules.min_interval_s:g}s)",
                    retry_after_s=until - now,
                )
        if not self._bucket.take(now):
            wait = self._bucket.wait_time(now)
            return GateDecision(
                GateAction.WAIT,
                "RateLimited",
                f"global limit of {rules.max_resizes_per_second:g} resizes/s reached",
                retry_after_s=max(wait, 1e-3),
            )
        capped = value != target_mcpu
        before = "unlimited" if current_mcpu is None else f"{current_mcpu}m"
        message = f"{before} -> {value}m" + (f" (step-capped, target {target_mcpu}m)" if capped else "")
        return GateDecision(GateAction.APPLY, "Resize", message, value=value, capped=capped)

    def record_applied(self, uid: str, now: float) -> None:
        """A resize of ``uid`` was accepted by the apiserver at ``now``."""
        hist = self.history(uid)
        hist.last_resize_s = now
        hist.failures = 0
        hist.last_failure_s = None

    def record_failure(self, uid: str, now: float) -> float:
        """A resize attempt failed; returns the cooldown before the next attempt."""
        hist = self.history(uid)
        hist.failures += 1
        hist.last_failure_s = now
        return self.rules.cooldown_after(hist.failures)

    def clear_infeasible(self, uid: str) -> None:
        """Forget the infeasible value of ``uid`` (the kubelet's condition cleared, or the node's
        allocatable CPU changed)."""
        hist = self._pods.get(uid)
        if hist is not None:
            hist.infeasible_mcpu = None

    def record_infeasible(self, uid: str, value_mcpu: int) -> None:
        """The kubelet called ``value_mcpu`` infeasible for ``uid``: never retry it or anything larger."""
        hist = self.history(uid)
        hist.infeasible_mcpu = (
            value_mcpu if hist.infeasible_mcpu is None else min(hist.infeasible_mcpu, value_mcpu)
        )
