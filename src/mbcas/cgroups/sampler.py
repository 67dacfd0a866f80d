"""Per-pod deltas of the CPU counters between two reads: the kernel signals MBCAS decides on.

A :class:`Sampler` remembers each pod's last :class:`~mbcas.cgroups.reader.CpuSnapshot`, keyed by
pod UID (a pod recreated under the same name has a new UID and starts fresh). Each call to
:meth:`Sampler.sample` reads every pod given, and returns for each either a :class:`SignalDelta`
(rates and fractions over the wall time measured between the pod's two reads) or a
:class:`SenseError` saying why there is none this round:

* ``BASELINE``: first read of the pod; the delta comes next round.
* ``NOT_FOUND``/``VANISHED``/``PARSE``/``IO``: the read failed; the previous snapshot is kept, so
  next round's delta spans both intervals and nothing is lost.
* ``RESET``: a counter went backwards (the cgroup was recreated, e.g. a container restart in the
  cgroup read): rebaselined, never a negative or huge rate.
* ``INCONSISTENT``: the delta is impossible (PSI total grew faster than wall time, ``full`` grew
  more than ``some``, usage above ``max_cores``): the sample is dropped and rebaselined.

Pods not passed to :meth:`Sampler.sample` are forgotten. :func:`signal_arrays` turns one round's
results into the :class:`mbcas.demand.Signals` bundle the planner takes (NaN = unknown or no
delta); :func:`limit_array` gives the CFS limits the kernel holds (``inf`` = unlimited).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mbcas.cgroups.errors import CgroupError, ErrorKind
from mbcas.cgroups.reader import CgroupReader, CpuSnapshot
from mbcas.demand.signals import Signals

__all__ = ["SampleResult", "Sampler", "SenseError", "SignalDelta", "limit_array", "signal_arrays"]


@dataclass(frozen=True, slots=True)
class SignalDelta:
    """One pod's CPU signals over one interval. ``None`` means unknown (never silently 0)."""

    interval_s: float
    usage_cores: float
    """CPU time used per second of wall time."""
    throttled_ratio: float | None
    """Share of the interval's CFS periods in which the pod was throttled (0 when no periods ran)."""
    throttled_s: float | None
    """CPU-runqueue time spent throttled (summed over CPUs, so it can exceed ``interval_s``)."""
    psi_some: float | None
    """Share of the interval in which some of the pod's tasks waited for CPU (PSI ``some``)."""
    psi_full: float | None
    """Share of the interval in which all of the pod's runnable tasks waited (PSI ``full``)."""
    limit_cores: float | None
    """The CFS limit at the end of the interval; ``None`` when unlimited or not read."""

    @property
    def throttled_cores(self) -> float | None:
        """Throttled time per second of wall time: the CPU the quota withheld, in cores."""
        if self.throttled_s is None:
            return None
        return self.throttled_s / self.interval_s


@dataclass(frozen=True, slots=True)
class SenseError:
    """Why a pod has no :class:`SignalDelta` this round."""

    uid: str
    relpath: str
    kind: ErrorKind
    message: str

    def __str__(self) -> str:
        return f"pod {self.uid} ({self.relpath}): {self.kind.value}: {self.message}"


SampleResult = SignalDelta | SenseError


@dataclass(frozen=True, slots=True)
class _Baseline:
    relpath: str
    snap: CpuSnapshot


class _RejectedError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _counter(prev: int | None, cur: int | None, name: str) -> int | None:
    if prev is None or cur is None:
        return None
    delta = cur - prev
    if delta < 0:
        raise _RejectedError(ErrorKind.RESET, f"{name} went backwards ({prev} -> {cur}): counters reset")
    return delta


class Sampler:
    """Turns successive reads of pod cgroups into :class:`SignalDelta` per pod.

    ``max_cores`` (default: this machine's CPU count) bounds a plausible usage rate; with
    ``limits=False`` the CFS limit files are not read (:attr:`SignalDelta.limit_cores` is ``None``:
    for a caller that takes each pod's limit from its spec, as the agent does);
    ``psi_tolerance`` is the relative slack allowed for PSI totals against wall time (timestamps and
    kernel accounting are not taken at exactly the same instant), plus ``psi_slack_us`` absolute.
    """

    def __init__(
        self,
        reader: CgroupReader,
        *,
        max_cores: float | None = None,
        psi_tolerance: float = 0.02,
        psi_slack_us: float = 2000.0,
        limits: bool = True,
    ) -> None:
        self.reader = reader
        self.limits = limits
        self.max_cores = float(max_cores if max_cores is not None else (os.cpu_count() or 1))
        self.psi_tolerance = psi_tolerance
        self.psi_slack_us = psi_slack_us
        self._state: dict[str, _Baseline] = {}
        self._last: dict[str, SignalDelta] = {}

    def last_delta(self, uid: str) -> SignalDelta | None:
        """The last good delta of ``uid`` (kept while the pod is skipped for errors)."""
        return self._last.get(uid)

    def forget(self, uid: str) -> None:
        """Drop all state of ``uid`` (its next read is a baseline)."""
        prev = self._state.pop(uid, None)
        self._last.pop(uid, None)
        if prev is not None:
            self.reader.release(prev.relpath)

    def sample(self, pods: Mapping[str, str]) -> dict[str, SampleResult]:
        """Read every pod (``uid -> relpath``) and return its delta since its previous read."""
        results: dict[str, SampleResult] = {}
        state: dict[str, _Baseline] = {}
        last: dict[str, SignalDelta] = {}
        for uid, relpath in pods.items():
            prev = self._state.get(uid)
            if prev is not None and prev.relpath != relpath:
                self.reader.release(prev.relpath)
                prev = None
            if uid in self._last and prev is not None:
                last[uid] = self._last[uid]
            try:
                snap = self.reader.read(relpath, with_limit=self.limits)
            except CgroupError as exc:
                if prev is not None:
                    state[uid] = prev
                results[uid] = SenseError(uid, relpath, exc.kind, str(exc))
                continue
            state[uid] = _Baseline(relpath, snap)
            if prev is None:
                results[uid] = SenseError(uid, relpath, ErrorKind.BASELINE, "first read; delta next round")
                continue
            try:
                delta = self._delta(prev.snap, snap)
            except _RejectedError as rej:
                last.pop(uid, None)
                results[uid] = SenseError(uid, relpath, rej.kind, str(rej))
                continue
            last[uid] = delta
            results[uid] = delta
        for uid in self._state.keys() - state.keys():  # not read this round: forgotten
            self.reader.release(self._state[uid].relpath)
        self._state = state
        self._last = last
        return results

    def _delta(self, prev: CpuSnapshot, cur: CpuSnapshot) -> SignalDelta:
        interval_us = (cur.mono_ns - prev.mono_ns) / 1000.0
        if interval_us <= 0:
            raise _RejectedError(ErrorKind.INCONSISTENT, "no wall time elapsed between reads")
        usage = _counter(prev.usage_usec, cur.usage_usec, "usage")
        assert usage is not None
        usage_cores = usage / interval_us
        if usage_cores > self.max_cores * (1 + self.psi_tolerance) + self.psi_slack_us / interval_us:
            raise _RejectedError(
                ErrorKind.INCONSISTENT,
                f"usage {usage_cores:.2f} cores exceeds the {self.max_cores:g} CPUs of the node",
            )
        periods = _counter(prev.nr_periods, cur.nr_periods, "nr_periods")
        throttled = _counter(prev.nr_throttled, cur.nr_throttled, "nr_throttled")
        throttled_us = _counter(prev.throttled_usec, cur.throttled_usec, "throttled time")
        ratio: float | None = None
        if periods is not None and throttled is not None:
            if throttled > periods:
                raise _RejectedError(ErrorKind.INCONSISTENT, f"{throttled} throttled of {periods} periods")
            ratio = throttled / periods if periods else 0.0
        some_us = _counter(prev.psi_some_usec, cur.psi_some_usec, "PSI some total")
        full_us = _counter(prev.psi_full_usec, cur.psi_full_usec, "PSI full total")
        bound = interval_us * (1 + self.psi_tolerance) + self.psi_slack_us
        for name, value in (("some", some_us), ("full", full_us)):
            if value is not None and value > bound:
                raise _RejectedError(
                    ErrorKind.INCONSISTENT,
                    f"PSI {name} grew {value / 1e6:.3f}s in {interval_us / 1e6:.3f}s of wall time",
                )
        if some_us is not None and full_us is not None and full_us > some_us + self.psi_slack_us:
            raise _RejectedError(
                ErrorKind.INCONSISTENT, f"PSI full grew more than some ({full_us} > {some_us} µs)"
            )
        return SignalDelta(
            interval_s=interval_us / 1e6,
            usage_cores=usage_cores,
            throttled_ratio=ratio,
            throttled_s=None if throttled_us is None else throttled_us / 1e6,
            psi_some=None if some_us is None else min(some_us / interval_us, 1.0),
            psi_full=None if full_us is None else min(full_us / interval_us, 1.0),
            limit_cores=cur.limit_cores,
        )


def _f(value: float | None) -> float:
    return math.nan if value is None else value


def signal_arrays(uids: Sequence[str], results: Mapping[str, SampleResult]) -> Signals:
    """Align ``results`` to ``uids``; pods without a :class:`SignalDelta` are NaN throughout
    (``Signals.sampled`` is False for them)."""
    n = len(uids)
    out = np.full((5, n), np.nan)
    for i, uid in enumerate(uids):
        d = results.get(uid)
        if not isinstance(d, SignalDelta):
            continue
        out[0, i] = d.usage_cores
        out[1, i] = _f(d.throttled_ratio)
        out[2, i] = _f(d.throttled_cores)
        out[3, i] = _f(d.psi_some)
        out[4, i] = _f(d.psi_full)
    return Signals(
        usage=out[0], throttled_ratio=out[1], throttled_cores=out[2], psi_some=out[3], psi_full=out[4]
    )


def limit_array(uids: Sequence[str], results: Mapping[str, SampleResult]) -> npt.NDArray[np.float64]:
    """The CFS limit (cores) each pod's cgroup held at its last read, aligned to ``uids``: ``inf``
    when unlimited, NaN when the pod has no :class:`SignalDelta` this round."""
    out = np.full(len(uids), np.nan)
    for i, uid in enumerate(uids):
        d = results.get(uid)
        if isinstance(d, SignalDelta):
            out[i] = math.inf if d.limit_cores is None else d.limit_cores
    return out
