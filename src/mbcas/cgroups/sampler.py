"""Per-pod deltas of the CPU counters between two reads: the kernel signals MBCAS decides on.

A :class:`Sampler` remembers each pod's last counters (:data:`~mbcas.cgroups.reader.Counters`),
keyed by pod UID (a pod recreated under the same name has a new UID and starts fresh). Each call
to :meth:`Sampler.sample` reads every pod given, computes all the deltas and their checks at once
(numpy, one pass for the node), and returns a :class:`SampleRound`: for each pod either a
:class:`SignalDelta` (rates and fractions over the wall time measured between the pod's two reads)
or a :class:`SenseError` saying why there is none this round:

* ``BASELINE``: first read of the pod; the delta comes next round.
* ``NOT_FOUND``/``VANISHED``/``PARSE``/``IO``: the read failed; the previous snapshot is kept, so
  next round's delta spans both intervals and nothing is lost.
* ``RESET``: a counter went backwards (the cgroup was recreated, e.g. a container restart in the
  cgroup read): rebaselined, never a negative or huge rate.
* ``INCONSISTENT``: the delta is impossible (PSI total grew faster than wall time, ``full`` grew
  more than ``some``, usage above ``max_cores``): the sample is dropped and rebaselined.

Pods not passed to :meth:`Sampler.sample` are forgotten. :func:`signal_arrays` turns one round's
results into the :class:`mbcas.demand.Signals` bundle the planner takes (NaN = unknown or no
delta; from a :class:`SampleRound` it takes the arrays directly); :func:`limit_array` gives the
CFS limits the kernel holds (``inf`` = unlimited).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mbcas.cgroups.errors import CgroupError, ErrorKind
from mbcas.cgroups.reader import CgroupReader, Counters
from mbcas.demand.signals import Signals

__all__ = [
    "SampleResult",
    "SampleRound",
    "Sampler",
    "SenseError",
    "SignalDelta",
    "limit_array",
    "signal_arrays",
]

FloatArray = npt.NDArray[np.float64]


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
        return None if self.throttled_s is None else self.throttled_s / self.interval_s


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


# Columns of the counters (mbcas.cgroups.reader.Counters) in the round's matrices.
_T, _USAGE, _PERIODS, _THROTTLED, _THROTTLED_US, _SOME, _FULL = range(7)
_RESETS = {
    _USAGE: "usage",
    _PERIODS: "nr_periods",
    _THROTTLED: "nr_throttled",
    _THROTTLED_US: "throttled time",
    _SOME: "PSI some total",
    _FULL: "PSI full total",
}


@dataclass(frozen=True, slots=True)
class _Deltas:
    """The deltas of every pod read twice, one array per signal (NaN = unknown), and for each pod
    the reason it has none (``None`` when it has one)."""

    interval_s: FloatArray
    usage: FloatArray
    throttled_ratio: FloatArray
    throttled_s: FloatArray
    psi_some: FloatArray
    psi_full: FloatArray
    rejected: list[tuple[ErrorKind, str] | None]


class SampleRound(Mapping[str, SampleResult]):
    """One :meth:`Sampler.sample` round: a read-only mapping ``uid -> SignalDelta | SenseError`` in
    the order the pods were given. The signals are held as arrays (one vectorised computation for
    all pods); a :class:`SignalDelta` is built only when a pod's entry is looked up, and
    :func:`signal_arrays` reads the arrays directly."""

    __slots__ = ("_deltas", "_errors", "_limits", "_order", "_rows")

    def __init__(
        self,
        order: list[str],
        errors: dict[str, SenseError],
        rows: dict[str, int],
        deltas: _Deltas,
        limits: list[float | None],
    ) -> None:
        self._order = order
        self._errors = errors
        self._rows = rows
        self._deltas = deltas
        self._limits = limits

    @property
    def errors(self) -> Mapping[str, SenseError]:
        """The pods without a delta this round, with the reason."""
        return self._errors

    def __getitem__(self, uid: str) -> SampleResult:
        error = self._errors.get(uid)
        if error is not None:
            return error
        i = self._rows[uid]
        d = self._deltas
        return SignalDelta(
            interval_s=float(d.interval_s[i]),
            usage_cores=float(d.usage[i]),
            throttled_ratio=_none(d.throttled_ratio[i]),
            throttled_s=_none(d.throttled_s[i]),
            psi_some=_none(d.psi_some[i]),
            psi_full=_none(d.psi_full[i]),
            limit_cores=self._limits[i],
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, uid: object) -> bool:
        return uid in self._errors or uid in self._rows

    def signals(self, uids: Sequence[str]) -> Signals:
        """The signals aligned to ``uids`` (NaN for pods without a delta)."""
        d = self._deltas
        with np.errstate(invalid="ignore", divide="ignore"):  # rejected pods' rows are not taken
            throttled_cores = d.throttled_s / d.interval_s
        if not self._errors and uids == self._order:  # every pod has a delta, in this order
            return Signals(
                usage=d.usage,
                throttled_ratio=d.throttled_ratio,
                throttled_cores=throttled_cores,
                psi_some=d.psi_some,
                psi_full=d.psi_full,
            )
        rows = self._rows
        index = np.fromiter((rows.get(uid, -1) for uid in uids), dtype=np.intp, count=len(uids))
        have = index >= 0

        def take(values: FloatArray) -> FloatArray:
            out = np.full(len(uids), np.nan)
            out[have] = values[index[have]]
            return out

        return Signals(
            usage=take(d.usage),
            throttled_ratio=take(d.throttled_ratio),
            throttled_cores=take(throttled_cores),
            psi_some=take(d.psi_some),
            psi_full=take(d.psi_full),
        )


def _none(value: np.float64) -> float | None:
    return None if math.isnan(value) else float(value)


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
        self._state: dict[str, tuple[str, Counters]] = {}  # uid -> (relpath, last counters)
        self._last: dict[str, SampleRound] = {}

    def last_delta(self, uid: str) -> SignalDelta | None:
        """The last good delta of ``uid`` (kept while the pod is skipped for errors)."""
        last = self._last.get(uid)
        result = None if last is None else last[uid]
        return result if isinstance(result, SignalDelta) else None

    def forget(self, uid: str) -> None:
        """Drop all state of ``uid`` (its next read is a baseline)."""
        prev = self._state.pop(uid, None)
        self._last.pop(uid, None)
        if prev is not None:
            self.reader.release(prev[0])

    def sample(self, pods: Mapping[str, str]) -> SampleRound:
        """Read every pod (``uid -> relpath``) and return its delta since its previous read."""
        errors: dict[str, SenseError] = {}
        state: dict[str, tuple[str, Counters]] = {}
        kept: list[str] = []  # read failed: the previous counters (and last good delta) are kept
        paired: list[str] = []
        prev_rows: list[Counters] = []
        cur_rows: list[Counters] = []
        limits: list[float | None] = []
        reader, with_limit, old_state = self.reader, self.limits, self._state
        for uid, relpath in pods.items():
            prev = old_state.get(uid)
            if prev is not None and prev[0] != relpath:
                reader.release(prev[0])
                prev = None
            try:
                if with_limit:
                    snap = reader.read(relpath)
                    row, limit = snap.counters(), snap.limit_cores
                else:
                    row, limit = reader.read_counters(relpath), None
            except CgroupError as exc:
                if prev is not None:
                    state[uid] = prev
                    kept.append(uid)
                errors[uid] = SenseError(uid, relpath, exc.kind, str(exc))
                continue
            state[uid] = (relpath, row)
            if prev is None:
                errors[uid] = SenseError(uid, relpath, ErrorKind.BASELINE, "first read; delta next round")
                continue
            paired.append(uid)
            prev_rows.append(prev[1])
            cur_rows.append(row)
            limits.append(limit)
        deltas = self._deltas(prev_rows, cur_rows)
        if any(deltas.rejected):
            rows = {uid: i for i, uid in enumerate(paired) if deltas.rejected[i] is None}
            for uid, rejected in zip(paired, deltas.rejected, strict=True):
                if rejected is not None:
                    errors[uid] = SenseError(uid, pods[uid], *rejected)
        else:
            rows = dict(zip(paired, range(len(paired)), strict=True))
        for uid in old_state.keys() - state.keys():  # not read this round: forgotten
            reader.release(old_state[uid][0])
        self._state = state
        result = SampleRound(list(pods), errors, rows, deltas, limits)
        old_last = self._last
        last = {uid: old_last[uid] for uid in kept if uid in old_last}
        last.update(dict.fromkeys(rows, result))
        self._last = last
        return result

    def _deltas(self, prev_rows: list[Counters], cur_rows: list[Counters]) -> _Deltas:
        """Every pod's delta at once; the checks run in a fixed order and a pod's first failing
        check is its reason (RESET for a counter that went backwards, INCONSISTENT for the rest)."""
        n = len(cur_rows)
        prev = np.array(prev_rows, dtype=np.int64).reshape(n, 7)
        cur = np.array(cur_rows, dtype=np.int64).reshape(n, 7)
        known = (prev >= 0) & (cur >= 0)
        delta = cur - prev
        interval_us = delta[:, _T] / 1000.0
        positive = np.where(interval_us > 0, interval_us, np.nan)  # no division by zero below
        usage_cores = delta[:, _USAGE] / positive
        bound = interval_us * (1 + self.psi_tolerance) + self.psi_slack_us
        backwards = known & (delta < 0)
        checks: list[tuple[npt.NDArray[np.bool_], ErrorKind, Callable[[int], str]]] = [
            (interval_us <= 0, ErrorKind.INCONSISTENT, lambda i: "no wall time elapsed between reads"),
            _reset(backwards, prev, cur, _USAGE),
            (
                usage_cores > self.max_cores * (1 + self.psi_tolerance) + self.psi_slack_us / positive,
                ErrorKind.INCONSISTENT,
                lambda i: f"usage {usage_cores[i]:.2f} cores exceeds the {self.max_cores:g} CPUs of the node",
            ),
            _reset(backwards, prev, cur, _PERIODS),
            _reset(backwards, prev, cur, _THROTTLED),
            _reset(backwards, prev, cur, _THROTTLED_US),
            (
                known[:, _PERIODS] & known[:, _THROTTLED] & (delta[:, _THROTTLED] > delta[:, _PERIODS]),
                ErrorKind.INCONSISTENT,
                lambda i: f"{delta[i, _THROTTLED]} throttled of {delta[i, _PERIODS]} periods",
            ),
            _reset(backwards, prev, cur, _SOME),
            _reset(backwards, prev, cur, _FULL),
            *(
                (
                    known[:, col] & (delta[:, col] > bound),
                    ErrorKind.INCONSISTENT,
                    lambda i, col=col, name=name: (
                        f"PSI {name} grew {delta[i, col] / 1e6:.3f}s "
                        f"in {interval_us[i] / 1e6:.3f}s of wall time"
                    ),
                )
                for col, name in ((_SOME, "some"), (_FULL, "full"))
            ),
            (
                known[:, _SOME] & known[:, _FULL] & (delta[:, _FULL] > delta[:, _SOME] + self.psi_slack_us),
                ErrorKind.INCONSISTENT,
                lambda i: f"PSI full grew more than some ({delta[i, _FULL]} > {delta[i, _SOME]} µs)",
            ),
        ]
        rejected: list[tuple[ErrorKind, str] | None] = [None] * n
        if n and np.logical_or.reduce([failed for failed, _, _ in checks]).any():
            for failed, kind, message in checks:
                for i in np.flatnonzero(failed).tolist():
                    if rejected[i] is None:
                        rejected[i] = (kind, message(i))
        periods = delta[:, _PERIODS]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(periods > 0, delta[:, _THROTTLED] / np.where(periods > 0, periods, 1), 0.0)
        deltas = _Deltas(
            interval_s=interval_us / 1e6,
            usage=usage_cores,
            throttled_ratio=np.where(known[:, _PERIODS] & known[:, _THROTTLED], ratio, np.nan),
            throttled_s=np.where(known[:, _THROTTLED_US], delta[:, _THROTTLED_US] / 1e6, np.nan),
            psi_some=np.where(known[:, _SOME], np.minimum(delta[:, _SOME] / positive, 1.0), np.nan),
            psi_full=np.where(known[:, _FULL], np.minimum(delta[:, _FULL] / positive, 1.0), np.nan),
            rejected=rejected,
        )
        for values in (
            deltas.interval_s,
            deltas.usage,
            deltas.throttled_ratio,
            deltas.throttled_s,
            deltas.psi_some,
            deltas.psi_full,
        ):
            values.setflags(write=False)  # the planner gets them as they are (SampleRound.signals)
        return deltas


def _reset(
    backwards: npt.NDArray[np.bool_], prev: npt.NDArray[np.int64], cur: npt.NDArray[np.int64], col: int
) -> tuple[npt.NDArray[np.bool_], ErrorKind, Callable[[int], str]]:
    return (
        backwards[:, col],
        ErrorKind.RESET,
        lambda i: f"{_RESETS[col]} went backwards ({prev[i, col]} -> {cur[i, col]}): counters reset",
    )


def _f(value: float | None) -> float:
    return math.nan if value is None else value


def signal_arrays(uids: Sequence[str], results: Mapping[str, SampleResult]) -> Signals:
    """Align ``results`` to ``uids``; pods without a :class:`SignalDelta` are NaN throughout
    (``Signals.sampled`` is False for them)."""
    if isinstance(results, SampleRound):
        return results.signals(uids)
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
