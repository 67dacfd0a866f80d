"""Parsers of the cgroup CPU files: real kernel output, every malformed case, and a fuzz test."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbcas.cgroups import (
    CgroupParseError,
    CpuMax,
    CpuStatV1,
    CpuStatV2,
    ErrorKind,
    Pressure,
    parse_cfs_quota,
    parse_counter,
    parse_cpu_max,
    parse_cpu_stat_v1,
    parse_cpu_stat_v2,
    parse_pressure,
)

# Verbatim from this machine's kernel (6.x) and a v2 node with the cpu controller.
V2_STAT_NO_CPU_CONTROLLER = b"usage_usec 471017380\nuser_usec 374069564\nsystem_usec 96947816\nnice_usec 0\n"
V2_STAT_FULL = (
    b"usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 50\nnr_throttled 10\n"
    b"throttled_usec 3980\nnr_bursts 0\nburst_usec 0\n"
)
V1_STAT = b"nr_periods 250\nnr_throttled 50\nthrottled_time 3980000000\nnr_bursts 0\nburst_time 0\n"
PRESSURE = (
    b"some avg10=58.88 avg60=57.91 avg300=33.27 total=144004892\n"
    b"full avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n"
)


class TestCpuStatV2:
    def test_without_cpu_controller_has_no_throttling(self) -> None:
        stat = parse_cpu_stat_v2(V2_STAT_NO_CPU_CONTROLLER)
        assert stat == CpuStatV2(usage_usec=471017380, user_usec=374069564, system_usec=96947816)
        assert stat.nr_periods is None and stat.throttled_usec is None

    def test_with_cpu_controller(self) -> None:
        stat = parse_cpu_stat_v2(V2_STAT_FULL)
        assert (stat.usage_usec, stat.nr_periods, stat.nr_throttled, stat.throttled_usec) == (
            1000,
            50,
            10,
            3980,
        )

    def test_unknown_lines_and_odd_shapes_of_unknown_keys_are_ignored(self) -> None:
        stat = parse_cpu_stat_v2(b"core_sched.force_idle_usec 5\nweird\nusage_usec 7\nfoo 1 2 3\n\n")
        assert stat.usage_usec == 7

    @pytest.mark.parametrize(
        ("data", "fragment"),
        [
            (b"", "empty"),
            (b"   \n\n", "empty"),
            (b"user_usec 5\n", "usage_usec missing"),
            (b"usage_usec\n", "malformed line"),
            (b"usage_usec 12 34\n", "malformed line"),
            (b"usage_usec abc\n", "not a non-negative integer"),
            (b"usage_usec -5\n", "not a non-negative integer"),
            (b"usage_usec 1.5\n", "not a non-negative integer"),
            (b"usage_usec 1\nusage_usec 2\n", "duplicate"),
            (b"usage_usec 1\nnr_periods 1\nnr_throttled 2\n", "nr_throttled 2 > nr_periods 1"),
            (b"usage_usec \xff\n", "not ASCII"),
            (b"usage_usec 1\nnr_periods", "malformed line"),
        ],
    )
    def test_malformed(self, data: bytes, fragment: str) -> None:
        with pytest.raises(CgroupParseError, match=fragment) as info:
            parse_cpu_stat_v2(data)
        assert info.value.kind is ErrorKind.PARSE


class TestCpuStatV1:
    def test_real_output(self) -> None:
        assert parse_cpu_stat_v1(V1_STAT) == CpuStatV1(250, 50, 3_980_000_000)

    def test_old_kernel_without_burst_fields(self) -> None:
        assert parse_cpu_stat_v1(b"nr_periods 1\nnr_throttled 0\nthrottled_time 0\n").nr_periods == 1

    @pytest.mark.parametrize(
        "data", [b"nr_periods 1\nnr_throttled 0\n", b"", b"nr_periods x\nnr_throttled 0\nthrottled_time 0\n"]
    )
    def test_missing_or_bad_fields(self, data: bytes) -> None:
        with pytest.raises(CgroupParseError):
            parse_cpu_stat_v1(data)


class TestCpuMax:
    @pytest.mark.parametrize(
        ("data", "expected", "cores"),
        [
            (b"max 100000\n", CpuMax(None, 100_000), None),
            (b"42000 100000\n", CpuMax(42_000, 100_000), 0.42),
            (b"20000 50000\n", CpuMax(20_000, 50_000), 0.4),
            (b"150000\n", CpuMax(150_000, 100_000), 1.5),
        ],
    )
    def test_values(self, data: bytes, expected: CpuMax, cores: float | None) -> None:
        parsed = parse_cpu_max(data)
        assert parsed == expected
        assert parsed.cores == (None if cores is None else pytest.approx(cores))

    @pytest.mark.parametrize(
        "data", [b"", b"max 0\n", b"0 100000\n", b"1 2 3\n", b"-1 100000\n", b"max abc\n"]
    )
    def test_malformed(self, data: bytes) -> None:
        with pytest.raises(CgroupParseError, match=r"cpu\.max"):
            parse_cpu_max(data)


class TestV1Files:
    def test_quota(self) -> None:
        assert parse_cfs_quota(b"-1\n") is None
        assert parse_cfs_quota(b"20000\n") == 20000

    @pytest.mark.parametrize("data", [b"", b"0\n", b"-2\n", b"1 2\n", b"x\n"])
    def test_bad_quota(self, data: bytes) -> None:
        with pytest.raises(CgroupParseError, match="cfs_quota_us"):
            parse_cfs_quota(data)

    def test_counter(self) -> None:
        assert parse_counter(b"123456789\n", "cpuacct.usage") == 123456789
        with pytest.raises(CgroupParseError, match=r"cpuacct\.usage"):
            parse_counter(b"12 34\n", "cpuacct.usage")
        with pytest.raises(CgroupParseError, match=r"cpuacct\.usage: empty"):
            parse_counter(b"", "cpuacct.usage")


class TestPressure:
    def test_real_output(self) -> None:
        assert parse_pressure(PRESSURE) == Pressure(144004892, 1000)

    def test_no_full_line_before_linux_5_13(self) -> None:
        assert parse_pressure(PRESSURE.splitlines()[0] + b"\n") == Pressure(144004892, None)

    def test_field_order_and_extra_fields_do_not_matter(self) -> None:
        assert parse_pressure(b"some total=5 avg10=1.00 future=3\n").some_total_usec == 5

    @pytest.mark.parametrize(
        ("data", "fragment"),
        [
            (b"", "empty"),
            (b"full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n", "no some line"),
            (b"some avg10=0.00 avg60=0.00\n", "no total="),
            (b"some avg10=0.00 avg60=0.00 avg300=0.00 total\n", "total has no value"),
            (b"some avg10=0.00 avg60=0.00 avg300=0.00 total=12x\n", "not a non-negative integer"),
            (b"some total=1\nsome total=2\n", "duplicate some"),
            (b"some total=1\nfull total=1\nfull total=2\n", "duplicate full"),
        ],
    )
    def test_malformed(self, data: bytes, fragment: str) -> None:
        with pytest.raises(CgroupParseError, match=fragment):
            parse_pressure(data)


PARSERS: list[Callable[[bytes], object]] = [
    parse_cpu_stat_v2,
    parse_cpu_stat_v1,
    parse_cpu_max,
    parse_cfs_quota,
    parse_pressure,
    lambda data: parse_counter(data, "cpuacct.usage"),
]

# Bytes that look like cgroup files often enough to reach the deep branches.
_tokens = st.sampled_from(
    [b"usage_usec", b"nr_periods", b"nr_throttled", b"throttled_usec", b"throttled_time", b"some", b"full",
     b"total=", b"avg10=0.00", b"max", b"-1", b"0", b"12", b"99999999999999999999", b"x", b"=", b" ", b"\n",
     b"\t", b"\xff", b"\x00", b"\xd9\xa3"]
)  # fmt: skip
_file_like = st.lists(_tokens, max_size=30).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=200), _file_like))
def test_fuzz_parsers_return_a_value_or_a_parse_error(data: bytes) -> None:
    for parser in PARSERS:
        try:
            result = parser(data)
        except CgroupParseError as exc:
            assert str(exc)
        else:
            assert result is None or isinstance(result, int | CpuStatV1 | CpuStatV2 | CpuMax | Pressure)


# Files in (or one edit away from) the kernel's own format, so the parsers' fast paths run.
_KEYS = [b"usage_usec", b"user_usec", b"nr_periods", b"nr_throttled", b"throttled_usec", b"throttled_time",
         b"nr_bursts", b"core_sched.force_idle_usec", b"5"]  # fmt: skip
_kernel_line = st.tuples(st.sampled_from(_KEYS), st.integers(0, 10**12)).map(lambda kv: b"%s %d\n" % kv)
_v2_stat = st.tuples(
    st.lists(st.integers(0, 10**12), min_size=9, max_size=9), st.booleans(), st.booleans()
).map(
    lambda t: (
        b"usage_usec %d\nuser_usec %d\nsystem_usec %d\n" % tuple(t[0][:3])
        + (b"nice_usec 0\n" if t[1] else b"")
        + b"nr_periods %d\nnr_throttled %d\nthrottled_usec %d\n" % tuple(t[0][3:6])
        + (b"nr_bursts %d\nburst_usec %d\n" % tuple(t[0][6:8]) if t[2] else b"")
    )
)
_psi_line = st.tuples(st.sampled_from([b"some", b"full", b"fulll"]), st.integers(0, 10**12)).map(
    lambda kv: b"%s avg10=0.00 avg60=1.50 avg300=0.00 total=%d\n" % kv
)
_kernel_like = st.one_of(
    _v2_stat,
    st.tuples(_v2_stat, _tokens, st.integers(0, 200)).map(lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]),
    st.lists(_kernel_line, max_size=9).map(b"".join),
    st.lists(_psi_line, max_size=3).map(b"".join),
    st.tuples(
        st.lists(st.one_of(_kernel_line, _psi_line), max_size=6).map(b"".join), _tokens, st.integers(0, 300)
    ).map(lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]),
)


def _outcome(parser: Callable[[bytes], object], data: bytes) -> object:
    try:
        return parser(data)
    except CgroupParseError as exc:
        return ("error", exc.detail)


@settings(max_examples=500, deadline=None)
@given(data=st.one_of(_kernel_like, _file_like))
def test_the_fast_paths_read_exactly_what_the_tolerant_parsers_read(data: bytes) -> None:
    """The kernel-format fast paths give the tolerant parsers' numbers, and never a value where
    the tolerant parsers give an error; ``parse_pressure`` (which tries its fast path first)
    gives what its tolerant path gives."""
    from mbcas.cgroups import parse

    tolerant_psi = parse._parse_pressure_tolerant
    assert _outcome(parse_pressure, data) == _outcome(lambda d: tolerant_psi(d, "cpu.pressure"), data)
    counters = parse.kernel_cpu_stat_v2(data)
    if counters is not None:
        stat = parse_cpu_stat_v2(data)
        assert counters == (stat.usage_usec, stat.nr_periods, stat.nr_throttled, stat.throttled_usec)
    totals = parse.kernel_pressure(data)
    if totals is not None:
        psi = tolerant_psi(data, "cpu.pressure")
        assert totals == (psi.some_total_usec, psi.full_total_usec)


def test_real_kernel_files_take_the_fast_paths() -> None:
    from mbcas.cgroups import parse

    assert parse.kernel_cpu_stat_v2(V2_STAT_FULL) == (1000, 50, 10, 3980)
    assert parse.kernel_pressure(PRESSURE) == (144004892, 1000)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            parse, "_parse_pressure_tolerant", lambda *_: pytest.fail("kernel format took the slow path")
        )
        assert parse_pressure(PRESSURE) == Pressure(some_total_usec=144004892, full_total_usec=1000)
