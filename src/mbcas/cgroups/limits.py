"""Comparing CPU limits the way the kernel and systemd store them.

A limit written as ``cpu.max`` may be read back slightly different: with the systemd cgroup driver
the quota is rounded up to 10 ms of CPU per second (``41700 100000`` is read back as
``42000 100000``, kubernetes issue 129357), and a non-default period changes the raw numbers
without changing the limit in cores. Comparing raw files would make a controller "fix" a limit it
already set, forever. :func:`limits_equal` compares limits in cores within that rounding, and
:func:`quota_for_cores` converts cores to the quota the kernel would store.
"""

from __future__ import annotations

import math

__all__ = ["SYSTEMD_QUOTA_STEP_CORES", "limits_equal", "quota_for_cores"]

SYSTEMD_QUOTA_STEP_CORES = 0.01
"""systemd's ``CPUQuotaPerSecUSec`` granularity: 10 ms of CPU per second of wall time."""

_MIN_QUOTA_USEC = 1000  # the kernel rejects quotas below 1 ms


def limits_equal(
    a_cores: float | None, b_cores: float | None, *, tolerance_cores: float = SYSTEMD_QUOTA_STEP_CORES
) -> bool:
    """Whether two CPU limits in cores are the same limit; ``None`` (unlimited) equals only ``None``.

    The default tolerance absorbs systemd's 10 ms/s rounding, and a relative 1e-9 absorbs float
    noise from quota/period division with non-default periods.
    """
    if a_cores is None or b_cores is None:
        return a_cores is None and b_cores is None
    if math.isinf(a_cores) or math.isinf(b_cores):
        return math.isinf(a_cores) and math.isinf(b_cores)
    return abs(a_cores - b_cores) <= tolerance_cores + 1e-9 * max(abs(a_cores), abs(b_cores))


def quota_for_cores(cores: float | None, period_usec: int = 100_000) -> int | None:
    """The CFS quota in µs for ``cores`` per ``period_usec`` (``None`` = unlimited), at least 1 ms."""
    if cores is None or math.isinf(cores):
        return None
    if cores <= 0 or math.isnan(cores):
        raise ValueError(f"a CPU limit must be positive, got {cores}")
    if period_usec <= 0:
        raise ValueError(f"a CFS period must be positive, got {period_usec}")
    return max(_MIN_QUOTA_USEC, round(cores * period_usec))
