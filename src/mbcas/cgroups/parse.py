"""Parsers for the cgroup CPU files, v2 and v1, from raw bytes to small typed records.

Each parser takes the bytes of one file and returns a frozen record or raises
:class:`~mbcas.cgroups.errors.CgroupParseError` with a message naming the file and the problem;
nothing else escapes (no ``UnicodeDecodeError``, ``IndexError`` or bare ``ValueError``).

These files are read for every pod on every tick, so the two the agent reads each tick have a
fast path for the kernel's exact format, one compiled pattern matched against the whole file:
:func:`kernel_cpu_stat_v2` (the reader's counter path) and :func:`kernel_pressure` (also the
first step of :func:`parse_pressure`). Each returns a value only where the tolerant parser returns
the same one (a property test checks this on arbitrary input), else ``None``; every error comes
from the tolerant parsers, which read line by line.

Tolerance rules, the same for every file:

* Unknown keys and unknown extra lines are ignored (kernels add fields over time).
* A known key whose value is missing or not a non-negative decimal integer is an error: a
  half-written or truncated file must not be mistaken for a zero.
* Optional fields that are absent are ``None`` (for example ``nr_periods`` in a v2 ``cpu.stat``
  without the ``cpu`` controller, or the ``full`` line of ``cpu.pressure`` before Linux 5.13).
* Required fields that are absent, and empty files, are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mbcas.cgroups.errors import CgroupParseError

__all__ = [
    "CpuMax",
    "CpuStatV1",
    "CpuStatV2",
    "Pressure",
    "kernel_cpu_stat_v2",
    "kernel_pressure",
    "parse_cfs_quota",
    "parse_counter",
    "parse_cpu_max",
    "parse_cpu_stat_v1",
    "parse_cpu_stat_v2",
    "parse_pressure",
]


@dataclass(frozen=True, slots=True)
class CpuStatV2:
    """cgroup v2 ``cpu.stat``. Throttling fields exist only when the ``cpu`` controller is on."""

    usage_usec: int
    user_usec: int | None = None
    system_usec: int | None = None
    nr_periods: int | None = None
    nr_throttled: int | None = None
    throttled_usec: int | None = None


@dataclass(frozen=True, slots=True)
class CpuStatV1:
    """cgroup v1 ``cpu.stat`` of the ``cpu`` controller (``throttled_time`` is in nanoseconds)."""

    nr_periods: int
    nr_throttled: int
    throttled_time_ns: int


@dataclass(frozen=True, slots=True)
class CpuMax:
    """A CFS bandwidth limit: ``quota_usec`` per ``period_usec``; ``quota_usec=None`` is unlimited."""

    quota_usec: int | None
    period_usec: int

    @property
    def cores(self) -> float | None:
        """The limit in cores, ``None`` when unlimited."""
        if self.quota_usec is None:
            return None
        return self.quota_usec / self.period_usec


@dataclass(frozen=True, slots=True)
class Pressure:
    """Cumulative PSI stall totals in microseconds; ``full_total_usec=None`` when the line is absent."""

    some_total_usec: int
    full_total_usec: int | None


def _text(data: bytes, name: str) -> str:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise CgroupParseError(f"{name}: not ASCII text at byte {exc.start}") from None
    if not text.strip():
        raise CgroupParseError(f"{name}: empty file")
    return text


def _uint(token: str, name: str, key: str) -> int:
    if not token.isdigit():
        raise CgroupParseError(f"{name}: {key} is not a non-negative integer: {token[:40]!r}")
    return int(token)


def _key_values(text: str, name: str, known: frozenset[str]) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key in known and value.isdigit() and key not in values:  # the kernel's own format
            values[key] = int(value)
            continue
        fields = line.split()
        if not fields or fields[0] not in known:
            continue
        key = fields[0]
        if len(fields) != 2:
            raise CgroupParseError(f"{name}: malformed line for {key}: {line[:80]!r}")
        if key in values:
            raise CgroupParseError(f"{name}: duplicate key {key}")
        values[key] = _uint(fields[1], name, key)
    return values


_V2_KEYS = frozenset(
    {"usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec"}
)
_V1_KEYS = frozenset({"nr_periods", "nr_throttled", "throttled_time"})


_KERNEL_PRESSURE = re.compile(
    rb"some avg10=[!-~]+ avg60=[!-~]+ avg300=[!-~]+ total=([0-9]+)\n"
    rb"full avg10=[!-~]+ avg60=[!-~]+ avg300=[!-~]+ total=([0-9]+)\n"
)
"""A PSI file exactly as the kernel (5.13 and later) writes it (printable ASCII only)."""
_KNOWN_V2 = rb"(?:usage_usec|user_usec|system_usec|nr_periods|nr_throttled|throttled_usec) "
_OTHER_LINE = rb"(?:(?!" + _KNOWN_V2 + rb")[a-z0-9_.]+ [0-9]+\n)*"
_KERNEL_CPU_STAT_V2 = re.compile(
    rb"usage_usec ([0-9]+)\nuser_usec [0-9]+\nsystem_usec [0-9]+\n"
    + _OTHER_LINE
    + rb"nr_periods ([0-9]+)\nnr_throttled ([0-9]+)\nthrottled_usec ([0-9]+)\n"
    + _OTHER_LINE
)
"""A v2 ``cpu.stat`` with the ``cpu`` controller in the kernel's order (the usage lines, the
throttling lines, any other keys between and after them, none of the six known keys twice)."""


def kernel_cpu_stat_v2(data: bytes) -> tuple[int, int, int, int] | None:
    """``(usage_usec, nr_periods, nr_throttled, throttled_usec)`` of a v2 ``cpu.stat`` in the
    kernel's exact format with the ``cpu`` controller on; ``None`` for anything else (then
    :func:`parse_cpu_stat_v2` says what it holds, or what is wrong)."""
    match = _KERNEL_CPU_STAT_V2.fullmatch(data)
    if match is None:
        return None
    usage, periods, throttled, throttled_us = map(int, match.groups())
    return None if throttled > periods else (usage, periods, throttled, throttled_us)


def kernel_pressure(data: bytes) -> tuple[int, int] | None:
    """``(some, full)`` totals of a PSI file in the kernel's exact format (5.13 and later);
    ``None`` for anything else (then :func:`parse_pressure` reads it)."""
    match = _KERNEL_PRESSURE.fullmatch(data)
    return None if match is None else (int(match[1]), int(match[2]))


def parse_cpu_stat_v2(data: bytes) -> CpuStatV2:
    """Parse a cgroup v2 ``cpu.stat``; ``usage_usec`` is required, the rest optional."""
    values = _key_values(_text(data, "cpu.stat"), "cpu.stat", _V2_KEYS)
    if "usage_usec" not in values:
        raise CgroupParseError("cpu.stat: usage_usec missing (truncated or not a v2 cpu.stat)")
    periods, throttled = values.get("nr_periods"), values.get("nr_throttled")
    if periods is not None and throttled is not None and throttled > periods:
        raise CgroupParseError(f"cpu.stat: nr_throttled {throttled} > nr_periods {periods}")
    return CpuStatV2(
        usage_usec=values["usage_usec"],
        user_usec=values.get("user_usec"),
        system_usec=values.get("system_usec"),
        nr_periods=periods,
        nr_throttled=throttled,
        throttled_usec=values.get("throttled_usec"),
    )


def parse_cpu_stat_v1(data: bytes) -> CpuStatV1:
    """Parse a cgroup v1 ``cpu.stat`` (``cpu`` controller); all three throttling fields required."""
    values = _key_values(_text(data, "cpu.stat (v1)"), "cpu.stat (v1)", _V1_KEYS)
    missing = sorted(_V1_KEYS - values.keys())
    if missing:
        raise CgroupParseError(f"cpu.stat (v1): missing {', '.join(missing)}")
    if values["nr_throttled"] > values["nr_periods"]:
        raise CgroupParseError(
            f"cpu.stat (v1): nr_throttled {values['nr_throttled']} > nr_periods {values['nr_periods']}"
        )
    return CpuStatV1(
        nr_periods=values["nr_periods"],
        nr_throttled=values["nr_throttled"],
        throttled_time_ns=values["throttled_time"],
    )


def parse_cpu_max(data: bytes) -> CpuMax:
    """Parse a cgroup v2 ``cpu.max`` (``"$QUOTA $PERIOD"``, quota ``max`` for unlimited).

    A single field is accepted with the kernel's default period of 100000 µs, as the kernel does
    on write. Quota and period must be positive.
    """
    fields = _text(data, "cpu.max").split()
    if len(fields) not in (1, 2):
        raise CgroupParseError(f"cpu.max: expected '$QUOTA $PERIOD', got {len(fields)} fields")
    period = _uint(fields[1], "cpu.max", "period") if len(fields) == 2 else 100_000
    if period <= 0:
        raise CgroupParseError("cpu.max: period must be positive")
    if fields[0] == "max":
        return CpuMax(quota_usec=None, period_usec=period)
    quota = _uint(fields[0], "cpu.max", "quota")
    if quota <= 0:
        raise CgroupParseError("cpu.max: quota must be positive or 'max'")
    return CpuMax(quota_usec=quota, period_usec=period)


def parse_counter(data: bytes, name: str) -> int:
    """Parse a file holding one non-negative integer (``cpuacct.usage``, ``cpu.cfs_period_us``)."""
    fields = _text(data, name).split()
    if len(fields) != 1:
        raise CgroupParseError(f"{name}: expected one integer, got {len(fields)} fields")
    return _uint(fields[0], name, "value")


def parse_cfs_quota(data: bytes) -> int | None:
    """Parse v1 ``cpu.cfs_quota_us``: a positive quota in µs, or ``None`` for ``-1`` (unlimited)."""
    fields = _text(data, "cpu.cfs_quota_us").split()
    if len(fields) != 1:
        raise CgroupParseError(f"cpu.cfs_quota_us: expected one integer, got {len(fields)} fields")
    if fields[0] == "-1":
        return None
    quota = _uint(fields[0], "cpu.cfs_quota_us", "quota")
    if quota <= 0:
        raise CgroupParseError("cpu.cfs_quota_us: quota must be positive or -1")
    return quota


def _total(fields: list[str], name: str, kind: str) -> int:
    for field in fields[1:]:
        key, sep, value = field.partition("=")
        if key == "total":
            if not sep:
                raise CgroupParseError(f"{name}: {kind} total has no value")
            return _uint(value, name, f"{kind} total")
    raise CgroupParseError(f"{name}: {kind} line has no total= (truncated?)")


def parse_pressure(data: bytes, name: str = "cpu.pressure") -> Pressure:
    """Parse a PSI file (``some``/``full`` lines with ``avg10= avg60= avg300= total=``).

    Only the cumulative ``total`` (µs) is used: averages are decayed and lag. ``some`` is required;
    a missing ``full`` line (Linux < 5.13 for CPU) gives ``full_total_usec=None``.
    """
    totals = kernel_pressure(data)
    if totals is not None:
        return Pressure(some_total_usec=totals[0], full_total_usec=totals[1])
    return _parse_pressure_tolerant(data, name)


def _parse_pressure_tolerant(data: bytes, name: str) -> Pressure:
    some: int | None = None
    full: int | None = None
    for line in _text(data, name).splitlines():
        head, _, rest = line.partition(" ")
        at = rest.find(" total=")
        if at >= 0 and (value := rest[at + 7 :]).isdigit():  # the kernel's own format
            if head == "some" and some is None:
                some = int(value)
                continue
            if head == "full" and full is None:
                full = int(value)
                continue
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "some":
            if some is not None:
                raise CgroupParseError(f"{name}: duplicate some line")
            some = _total(fields, name, "some")
        elif fields[0] == "full":
            if full is not None:
                raise CgroupParseError(f"{name}: duplicate full line")
            full = _total(fields, name, "full")
    if some is None:
        raise CgroupParseError(f"{name}: no some line")
    return Pressure(some_total_usec=some, full_total_usec=full)
