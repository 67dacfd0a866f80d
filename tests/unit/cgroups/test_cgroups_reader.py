"""Reading counters on every layout, and each way the files go wrong on real nodes."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
from fake_cgroupfs import FakeCgroupFS, FakeClock

from mbcas.cgroups import CgroupError, CgroupParseError, CgroupReader, ErrorKind, LayoutKind, read_file_raw

POD = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podabc.slice"


def test_reads_every_signal_on_every_layout(fakefs: FakeCgroupFS) -> None:
    fakefs.write(
        POD, usage_usec=5_000_000, nr_periods=40, nr_throttled=10, throttled_usec=800_000,
        some_usec=900_000, full_usec=700_000, quota_usec=20_000, period_usec=100_000,
    )  # fmt: skip
    snap = CgroupReader(fakefs.root).read(POD)
    assert snap.usage_usec == 5_000_000
    assert (snap.nr_periods, snap.nr_throttled, snap.throttled_usec) == (40, 10, 800_000)
    assert snap.limit_cores == pytest.approx(0.2) and snap.period_usec == 100_000
    if fakefs.kind is LayoutKind.V1:
        assert (snap.psi_some_usec, snap.psi_full_usec) == (None, None)  # v1 has no PSI
    else:
        assert (snap.psi_some_usec, snap.psi_full_usec) == (900_000, 700_000)


def test_unlimited_is_none(fakefs: FakeCgroupFS) -> None:
    fakefs.write(POD, quota_usec=None)
    assert CgroupReader(fakefs.root).read(POD).limit_cores is None


def test_leading_slash_and_root_paths(fakefs: FakeCgroupFS) -> None:
    fakefs.write(POD, usage_usec=7)
    reader = CgroupReader(fakefs.root)
    assert reader.read("/" + POD + "/").usage_usec == 7
    assert reader.exists(POD) and not reader.exists("nope")


def test_dotdot_is_rejected(fakefs: FakeCgroupFS) -> None:
    with pytest.raises(CgroupError) as info:
        CgroupReader(fakefs.root).read("../../etc")
    assert info.value.kind is ErrorKind.BAD_PATH


def test_missing_cgroup_is_not_found(fakefs: FakeCgroupFS) -> None:
    with pytest.raises(CgroupError, match="no such cgroup") as info:
        CgroupReader(fakefs.root).read("kubepods/gone")
    assert info.value.kind is ErrorKind.NOT_FOUND


def test_v2_without_cpu_controller_has_no_throttling_or_limit(tmp_path: Path) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.V2, v2_cpu=False)
    fs.write(POD, usage_usec=10)
    snap = CgroupReader(fs.root).read(POD)
    assert snap.usage_usec == 10 and snap.nr_periods is None and snap.limit_cores is None


def test_hybrid_falls_back_to_cpuacct_when_the_pod_is_only_in_v1(tmp_path: Path) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.HYBRID)
    fs.write(POD, usage_usec=1234, quota_usec=50_000)
    for name in ("cpu.stat", "cpu.pressure"):
        (tmp_path / "unified" / POD / name).unlink()
    (tmp_path / "unified" / POD).rmdir()
    reader = CgroupReader(fs.root)
    snap = reader.read(POD)
    assert snap.usage_usec == 1234 and snap.limit_cores == pytest.approx(0.5) and snap.psi_some_usec is None
    assert reader.exists(POD)


def test_hybrid_without_v1_cpu_dir_gives_unknown_throttling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.HYBRID)
    (tmp_path / "unified" / POD).mkdir(parents=True)
    (tmp_path / "unified" / POD / "cpu.stat").write_text("usage_usec 99\n")
    reader = CgroupReader(fs.root)
    with caplog.at_level(logging.WARNING):
        snap = reader.read(POD)
        reader.read(POD)
    assert snap.usage_usec == 99 and snap.nr_periods is None and snap.limit_cores is None
    assert snap.psi_some_usec is None
    assert sum("throttling and limit unknown" in r.message for r in caplog.records) == 1


class TestPsiFailureModes:
    def test_absent_pressure_file_is_unknown_never_zero(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
        fs.write(POD, usage_usec=10, nr_periods=5, nr_throttled=1, throttled_usec=100, some_usec=None)
        reader = CgroupReader(fs.root)
        with caplog.at_level(logging.WARNING):
            snaps = [reader.read(POD) for _ in range(3)]
        assert all(s.psi_some_usec is None and s.psi_full_usec is None for s in snaps)
        assert snaps[0].usage_usec == 10 and snaps[0].nr_throttled == 1  # the rest still used
        assert sum("absent" in r.message for r in caplog.records) == 1

    def test_eopnotsupp_when_booted_without_psi(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
        fs.write(POD, usage_usec=10, nr_periods=5, nr_throttled=1, throttled_usec=100)

        def read_file(path: str) -> bytes:
            if path.endswith("cpu.pressure"):
                raise OSError(errno.EOPNOTSUPP, "Operation not supported")
            return read_file_raw(path)

        reader = CgroupReader(fs.root, read_file=read_file)
        with caplog.at_level(logging.WARNING):
            snaps = [reader.read(POD) for _ in range(3)]
        assert all(s.psi_some_usec is None for s in snaps)
        assert snaps[0].usage_usec == 10 and snaps[0].throttled_usec == 100
        assert sum("psi=1" in r.message for r in caplog.records) == 1

    def test_no_full_line_gives_unknown_full(self, tmp_path: Path) -> None:
        fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
        fs.write(POD, some_usec=500, full_usec=None)
        snap = CgroupReader(fs.root).read(POD)
        assert snap.psi_some_usec == 500 and snap.psi_full_usec is None


@pytest.mark.parametrize("errno_value", [errno.ENODEV, errno.ESTALE])
def test_file_vanishing_after_open_is_vanished(fakefs: FakeCgroupFS, errno_value: int) -> None:
    fakefs.write(POD)

    def read_file(path: str) -> bytes:
        raise OSError(errno_value, "No such device")

    with pytest.raises(CgroupError, match="removed while reading") as info:
        CgroupReader(fakefs.root, read_file=read_file).read(POD)
    assert info.value.kind is ErrorKind.VANISHED


def test_permission_error_is_io(fakefs: FakeCgroupFS) -> None:
    fakefs.write(POD)

    def read_file(path: str) -> bytes:
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(CgroupError, match="Permission denied") as info:
        CgroupReader(fakefs.root, read_file=read_file).read(POD)
    assert info.value.kind is ErrorKind.IO


HALF_WRITTEN = {
    "cpu.stat": b"usage_usec 123456\nnr_periods",
    "cpu.stat (v1)": b"nr_periods 5\nnr_throttled 1\nthrottled_ti",
    "cpu.pressure": b"some avg10=0.00 avg60=0.00 avg300=0.00 tot",
    "cpu.max": b"",
    "cpu.cfs_quota_us": b"",
    "cpuacct.usage": b"",
}


# The files each layout reads (hybrid reads cpuacct.usage only when the pod is not in cgroup2).
LAYOUT_FILES = {
    LayoutKind.V2: ["cpu.stat", "cpu.pressure", "cpu.max"],
    LayoutKind.HYBRID: ["cpu.stat", "cpu.pressure", "cpu.stat (v1)", "cpu.cfs_quota_us"],
    LayoutKind.V1: ["cpu.stat (v1)", "cpu.cfs_quota_us", "cpuacct.usage"],
}
V1_FILES = {"cpu.stat (v1)": ("cpu", "cpu.stat"), "cpu.cfs_quota_us": ("cpu", "cpu.cfs_quota_us"),
            "cpuacct.usage": ("cpuacct", "cpuacct.usage")}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "victim"), [(kind, victim) for kind, files in LAYOUT_FILES.items() for victim in files]
)
def test_half_written_file_is_a_parse_error_naming_the_file(
    tmp_path: Path, kind: LayoutKind, victim: str
) -> None:
    fs = FakeCgroupFS(tmp_path, kind)
    fs.write(POD, usage_usec=123456, some_usec=10, full_usec=5, quota_usec=10_000)
    if victim in V1_FILES:
        controller, name = V1_FILES[victim]
        path = fs.root / controller / POD / name
    else:
        assert fs.v2_dir is not None
        name, path = victim, fs.v2_dir / POD / victim
    path.write_bytes(HALF_WRITTEN[victim])
    with pytest.raises(CgroupError) as info:
        CgroupReader(fs.root).read(POD)
    assert info.value.kind is ErrorKind.PARSE
    assert str(path) in str(info.value) and name in str(info.value)


def test_clock_is_taken_per_read(fakefs: FakeCgroupFS, clock: FakeClock) -> None:
    fakefs.write(POD)
    reader = CgroupReader(fakefs.root, clock_ns=clock)
    first = reader.read(POD).mono_ns
    clock.advance(1.5)
    assert reader.read(POD).mono_ns - first == 1_500_000_000


def test_read_file_raw_reads_whole_small_files(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    assert read_file_raw(str(path)) == b"x" * 5000
    with pytest.raises(FileNotFoundError):
        read_file_raw(str(tmp_path / "absent"))


@pytest.mark.parametrize(
    "pressure",
    [None, "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n"],  # no file; no full line
    ids=["no-psi", "no-full-line"],
)
def test_read_counters_is_read_without_the_limit_on_every_layout(
    fakefs: FakeCgroupFS, clock: FakeClock, pressure: str | None
) -> None:
    """The fast path (v2 with the cpu controller, the kernel's own format) and the fallback (any
    other layout or file) give what ``read`` gives, PSI missing or partial included."""
    fakefs.write(POD, usage_usec=7_000, nr_periods=20, nr_throttled=3, throttled_usec=900, some_usec=50,
                 full_usec=40, quota_usec=50_000)  # fmt: skip
    reader = CgroupReader(fakefs.root, clock_ns=clock)
    assert reader.read_counters(POD) == reader.read(POD, with_limit=False).counters()
    if fakefs.kind is LayoutKind.V2:  # the kernel's own files: read straight, never through read()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(reader, "read", lambda *_, **__: pytest.fail("fast path not taken"))
            assert reader.read_counters(POD)[1:] == (7_000, 20, 3, 900, 50, 40)
    if fakefs.v2_dir is not None:
        psi = fakefs.v2_dir / POD / "cpu.pressure"
        if pressure is None:
            psi.unlink()
        else:
            psi.write_text(pressure)
        assert reader.read_counters(POD) == reader.read(POD, with_limit=False).counters()


def test_read_counters_takes_the_tolerant_path_for_odd_files_and_reports_errors_alike(
    tmp_path: Path, clock: FakeClock
) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
    fs.write(POD, usage_usec=100, nr_periods=4, nr_throttled=1)
    stat = fs.root / POD / "cpu.stat"
    stat.write_text("usage_usec  100\nnr_periods 4\nnr_throttled 1\nthrottled_usec 0\n")  # two spaces
    reader = CgroupReader(fs.root, clock_ns=clock)
    assert reader.read_counters(POD)[1:5] == (100, 4, 1, 0)
    stat.write_text("usage_usec 100\nnr_periods x\n")
    with pytest.raises(CgroupParseError, match="nr_periods"):
        reader.read_counters(POD)
    with pytest.raises(CgroupError) as missing:
        reader.read_counters("kubepods/missing")
    assert missing.value.kind is ErrorKind.NOT_FOUND
    with pytest.raises(CgroupError) as bad:
        reader.read_counters("../escape")
    assert bad.value.kind is ErrorKind.BAD_PATH


def test_read_counters_reports_a_cgroup_removed_under_an_open_file_as_vanished(
    tmp_path: Path, clock: FakeClock
) -> None:
    fs = FakeCgroupFS(tmp_path, LayoutKind.V2)
    fs.write(POD, usage_usec=100, nr_periods=4, nr_throttled=1)

    def gone(path: str) -> bytes:
        raise OSError(errno.ENODEV, "No such device", path)

    reader = CgroupReader(fs.root, clock_ns=clock, read_file=gone)
    with pytest.raises(CgroupError) as exc:
        reader.read_counters(POD)
    assert exc.value.kind is ErrorKind.VANISHED
