"""Per-pod deltas: rates over measured wall time, resets, impossible samples, skipped pods."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import numpy as np
import pytest
from fake_cgroupfs import FakeCgroupFS, FakeClock

from mbcas.cgroups import (
    CgroupReader,
    ErrorKind,
    LayoutKind,
    Sampler,
    SenseError,
    SignalDelta,
    limit_array,
    read_file_raw,
    signal_arrays,
)

A, B = "kubepods/burstable/poda", "kubepods/burstable/podb"


def _sampler(fs: FakeCgroupFS, clock: FakeClock, **kwargs: float) -> Sampler:
    return Sampler(CgroupReader(fs.root, clock_ns=clock), max_cores=8, **kwargs)


def test_first_read_is_a_baseline_then_deltas(fakefs: FakeCgroupFS, clock: FakeClock) -> None:
    fakefs.write(A, usage_usec=1_000_000, nr_periods=100, nr_throttled=0, some_usec=0, full_usec=0,
                 quota_usec=20_000)  # fmt: skip
    sampler = _sampler(fakefs, clock)
    first = sampler.sample({"a": A})["a"]
    assert isinstance(first, SenseError) and first.kind is ErrorKind.BASELINE
    clock.advance(2.0)
    fakefs.write(A, usage_usec=1_400_000, nr_periods=120, nr_throttled=15, throttled_usec=1_600_000,
                 some_usec=1_700_000, full_usec=1_600_000, quota_usec=20_000)  # fmt: skip
    delta = sampler.sample({"a": A})["a"]
    assert isinstance(delta, SignalDelta)
    assert delta.interval_s == pytest.approx(2.0)
    assert delta.usage_cores == pytest.approx(0.2)
    assert delta.throttled_ratio == pytest.approx(15 / 20)
    assert delta.throttled_s == pytest.approx(1.6) and delta.throttled_cores == pytest.approx(0.8)
    assert delta.limit_cores == pytest.approx(0.2)
    if fakefs.kind is LayoutKind.V1:
        assert delta.psi_some is None and delta.psi_full is None
    else:
        assert delta.psi_some == pytest.approx(0.85) and delta.psi_full == pytest.approx(0.8)
    assert sampler.last_delta("a") == delta


def test_no_periods_means_zero_throttling(fakefs: FakeCgroupFS, clock: FakeClock) -> None:
    fakefs.write(A, usage_usec=0)
    sampler = _sampler(fakefs, clock)
    sampler.sample({"a": A})
    clock.advance(1)
    fakefs.write(A, usage_usec=500_000)
    delta = sampler.sample({"a": A})["a"]
    assert isinstance(delta, SignalDelta)
    assert delta.throttled_ratio == 0.0 and delta.usage_cores == pytest.approx(0.5)


def test_counter_reset_rebaselines_without_negative_or_huge_rates(
    fakefs: FakeCgroupFS, clock: FakeClock
) -> None:
    fakefs.write(A, usage_usec=50_000_000, nr_periods=1000, some_usec=9_000_000, full_usec=1_000)
    sampler = _sampler(fakefs, clock)
    sampler.sample({"a": A})
    clock.advance(1)
    fakefs.write(A, usage_usec=100_000, nr_periods=10, some_usec=1_000, full_usec=0)  # new cgroup
    reset = sampler.sample({"a": A})["a"]
    assert isinstance(reset, SenseError) and reset.kind is ErrorKind.RESET
    assert sampler.last_delta("a") is None
    clock.advance(1)
    fakefs.write(A, usage_usec=400_000, nr_periods=20, some_usec=2_000, full_usec=0)
    delta = sampler.sample({"a": A})["a"]
    assert isinstance(delta, SignalDelta) and delta.usage_cores == pytest.approx(0.3)


@pytest.mark.parametrize("kind", [LayoutKind.V2, LayoutKind.HYBRID])
@pytest.mark.parametrize(
    "case",
    [(2_500_000, 0, "PSI some grew"), (900_000, 950_000, "PSI full grew more than some"),
     (3_000_000, 3_000_000, "PSI some grew")],
)  # fmt: skip
def test_impossible_psi_drops_the_sample(
    tmp_path: Path, clock: FakeClock, kind: LayoutKind, case: tuple[int, int, str]
) -> None:
    some, full, reason = case
    fs = FakeCgroupFS(tmp_path, kind)
    fs.write(A, usage_usec=0, some_usec=0, full_usec=0)
    fs.write(B, usage_usec=0, some_usec=0, full_usec=0)
    sampler = _sampler(fs, clock)
    sampler.sample({"a": A, "b": B})
    clock.advance(1.0)
    fs.write(A, usage_usec=100_000, some_usec=some, full_usec=full)
    fs.write(B, usage_usec=100_000, some_usec=500_000, full_usec=400_000)
    results = sampler.sample({"a": A, "b": B})
    bad = results["a"]
    assert isinstance(bad, SenseError) and bad.kind is ErrorKind.INCONSISTENT and reason in bad.message
    assert isinstance(results["b"], SignalDelta)  # the other pod is unaffected
    clock.advance(1.0)
    fs.write(A, usage_usec=200_000, some_usec=some + 100_000, full_usec=full)
    after = sampler.sample({"a": A})["a"]
    assert isinstance(after, SignalDelta) and after.psi_some == pytest.approx(0.1)  # rebaselined


def test_psi_within_tolerance_is_kept_and_clipped(tmp_path: Path, clock: FakeClock) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
    fs.write(A, some_usec=0, full_usec=0)
    sampler = _sampler(fs, clock)
    sampler.sample({"a": A})
    clock.advance(1.0)
    fs.write(A, some_usec=1_001_000, full_usec=1_000_500)
    delta = sampler.sample({"a": A})["a"]
    assert isinstance(delta, SignalDelta) and delta.psi_some == 1.0 and delta.psi_full == 1.0


def test_usage_above_the_node_is_dropped(fakefs: FakeCgroupFS, clock: FakeClock) -> None:
    fakefs.write(A, usage_usec=0)
    sampler = _sampler(fakefs, clock)
    sampler.sample({"a": A})
    clock.advance(1.0)
    fakefs.write(A, usage_usec=50_000_000)
    bad = sampler.sample({"a": A})["a"]
    assert isinstance(bad, SenseError) and bad.kind is ErrorKind.INCONSISTENT and "exceeds" in bad.message


def test_no_elapsed_time_is_inconsistent(fakefs: FakeCgroupFS, clock: FakeClock) -> None:
    fakefs.write(A)
    sampler = _sampler(fakefs, clock)
    sampler.sample({"a": A})
    result = sampler.sample({"a": A})["a"]
    assert isinstance(result, SenseError) and result.kind is ErrorKind.INCONSISTENT


def test_vanished_pod_is_skipped_and_keeps_its_baseline(fakefs: FakeCgroupFS, clock: FakeClock) -> None:
    fakefs.write(A, usage_usec=0)
    fakefs.write(B, usage_usec=0)
    failing: set[str] = set()

    def read_file(path: str) -> bytes:
        if any(p in path for p in failing):
            raise OSError(errno.ENODEV, "No such device")
        return read_file_raw(path)

    sampler = Sampler(CgroupReader(fakefs.root, read_file=read_file, clock_ns=clock), max_cores=8)
    sampler.sample({"a": A, "b": B})
    clock.advance(1.0)
    fakefs.write(A, usage_usec=300_000)
    fakefs.write(B, usage_usec=300_000)
    assert isinstance(sampler.sample({"a": A, "b": B})["a"], SignalDelta)
    failing.add(A)
    clock.advance(1.0)
    fakefs.write(A, usage_usec=500_000)
    fakefs.write(B, usage_usec=500_000)
    results = sampler.sample({"a": A, "b": B})
    assert isinstance(results["a"], SenseError) and results["a"].kind is ErrorKind.VANISHED
    assert isinstance(results["b"], SignalDelta) and results["b"].usage_cores == pytest.approx(0.2)
    assert sampler.last_delta("a") is not None  # last good sample kept
    failing.clear()
    clock.advance(1.0)
    fakefs.write(A, usage_usec=700_000)
    delta = sampler.sample({"a": A})["a"]
    assert isinstance(delta, SignalDelta)
    assert delta.interval_s == pytest.approx(2.0) and delta.usage_cores == pytest.approx(0.2)


def test_malformed_pod_does_not_stop_the_others(fakefs: FakeCgroupFS, clock: FakeClock) -> None:
    fakefs.write(A)
    fakefs.write(B)
    sampler = _sampler(fakefs, clock)
    target = (fakefs.v2_dir or fakefs.root / "cpuacct") / A
    name = "cpu.stat" if fakefs.v2_dir else "cpuacct.usage"
    (target / name).write_text("garbage\n")
    results = sampler.sample({"a": A, "b": B, "c": "kubepods/missing"})
    assert results["a"].kind is ErrorKind.PARSE  # type: ignore[union-attr]
    assert results["b"].kind is ErrorKind.BASELINE  # type: ignore[union-attr]
    assert results["c"].kind is ErrorKind.NOT_FOUND  # type: ignore[union-attr]
    assert "pod c" in str(results["c"])


def test_state_is_keyed_by_uid_and_unseen_uids_are_forgotten(fakefs: FakeCgroupFS, clock: FakeClock) -> None:
    fakefs.write(A, usage_usec=0)
    sampler = _sampler(fakefs, clock)
    sampler.sample({"uid-1": A})
    clock.advance(1)
    assert isinstance(sampler.sample({"uid-1": A})["uid-1"], SignalDelta)
    # The pod is recreated under the same name: a new UID starts fresh even at the same path.
    clock.advance(1)
    fresh = sampler.sample({"uid-2": A})["uid-2"]
    assert isinstance(fresh, SenseError) and fresh.kind is ErrorKind.BASELINE
    assert sampler.last_delta("uid-1") is None
    clock.advance(1)
    again = sampler.sample({"uid-1": A})["uid-1"]  # forgotten while unseen
    assert isinstance(again, SenseError) and again.kind is ErrorKind.BASELINE
    clock.advance(1)
    fakefs.write(B, usage_usec=10_000_000)
    moved = sampler.sample({"uid-1": B})["uid-1"]  # a new path for the same UID is a new baseline
    assert isinstance(moved, SenseError) and moved.kind is ErrorKind.BASELINE
    sampler.forget("uid-1")
    assert sampler.last_delta("uid-1") is None


def test_signal_arrays_align_and_mark_unknowns() -> None:
    d = SignalDelta(1.0, 0.5, 0.25, 0.3, None, None, None)
    e = SignalDelta(2.0, 1.0, None, None, 0.4, 0.2, 2.0)
    err = SenseError("c", "x", ErrorKind.BASELINE, "first")
    results = {"a": d, "b": e, "c": err}
    arr = signal_arrays(["b", "a", "c", "d"], results)
    assert len(arr) == 4
    np.testing.assert_array_equal(arr.sampled, [True, True, False, False])
    np.testing.assert_allclose(arr.usage[:2], [1.0, 0.5])
    assert math.isnan(arr.throttled_ratio[0]) and arr.throttled_ratio[1] == 0.25
    assert arr.throttled_cores[1] == pytest.approx(0.3)
    assert math.isnan(arr.psi_full[1]) and arr.psi_full[0] == 0.2
    limits = limit_array(["b", "a", "c", "d"], results)
    assert limits[0] == 2.0 and math.isinf(limits[1])
    assert np.isnan(arr.usage[2:]).all() and np.isnan(limits[2:]).all()


def test_a_round_is_a_mapping_whose_arrays_match_its_deltas(tmp_path: Path, clock: FakeClock) -> None:
    """The round's vectorised arrays are what the per-pod deltas say, pod by pod, and the round
    behaves as the ``uid -> result`` mapping callers iterate (order given, errors listed)."""
    fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
    paths = {f"p{i}": f"kubepods/burstable/pod{i}" for i in range(6)}
    for i, rel in enumerate(paths.values()):
        fs.write(rel, usage_usec=10**9 if i == 5 else 0, some_usec=0, full_usec=None if i == 2 else 0)
    sampler = _sampler(fs, clock)
    sampler.sample(paths)
    clock.advance(1.5)
    for i, rel in enumerate(paths.values()):
        fs.write(rel, usage_usec=100_000 * (i + 1), nr_periods=10 * i, nr_throttled=i,
                 throttled_usec=5_000 * i, some_usec=0 if i == 4 else 30_000 * i,
                 full_usec=None if i == 2 else 0 if i == 4 else 10_000 * i)  # fmt: skip
    fs.write(paths["p5"], usage_usec=1)  # counters went backwards
    asked = {**paths, "gone": "kubepods/missing"}
    results = sampler.sample(asked)
    assert list(results) == list(asked) and len(results) == 7
    assert set(results.errors) == {"p5", "gone"} and "p0" in results and "nobody" not in results
    assert results["p5"].kind is ErrorKind.RESET  # type: ignore[union-attr]
    assert results["gone"].kind is ErrorKind.NOT_FOUND  # type: ignore[union-attr]
    assert results["p2"].psi_full is None  # type: ignore[union-attr]
    uids = ["gone", *reversed(paths)]
    from_round = signal_arrays(uids, results)
    from_deltas = signal_arrays(uids, dict(results.items()))  # the per-delta path
    for name in ("usage", "throttled_ratio", "throttled_cores", "psi_some", "psi_full"):
        np.testing.assert_array_equal(getattr(from_round, name), getattr(from_deltas, name), err_msg=name)
    assert np.isnan(from_round.usage[0]) and from_round.usage[-1] == pytest.approx(100_000 / 1.5e6)
