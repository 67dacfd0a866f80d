"""Reading one cgroup's CPU counters into a :class:`CpuSnapshot`, on any layout.

:class:`CgroupReader` is the single seam between MBCAS and the cgroup filesystem. Given a path
relative to the cgroup root it reads, depending on the :class:`~mbcas.cgroups.layout.Layout`:

=====================  ================================  ======================================
signal                 cgroup v2 (and the hybrid          cgroup v1 (and the hybrid fallback)
                       ``unified`` hierarchy)
=====================  ================================  ======================================
usage                  ``cpu.stat`` ``usage_usec``        ``cpuacct.usage`` (ns)
throttling             ``cpu.stat`` ``nr_periods``,       ``cpu`` controller ``cpu.stat``
                       ``nr_throttled``,                  (``throttled_time`` in ns)
                       ``throttled_usec``
limit                  ``cpu.max``                        ``cpu.cfs_quota_us``/``cfs_period_us``
stall                  ``cpu.pressure`` totals            none (PSI is a cgroup2 feature)
=====================  ================================  ======================================

On a hybrid layout the v2 files are preferred and the v1 ``cpu`` controller supplies throttling and
the limit whenever the cgroup2 hierarchy has no ``cpu`` controller, which is the normal case.

Failure rules: usage is required, so a missing or malformed usage file raises
:class:`~mbcas.cgroups.errors.CgroupError`. PSI that is absent (no ``cpu.pressure``) or refused
(``EOPNOTSUPP``, kernel booted without ``psi=1``) is unknown (``None``, never 0) and logged once.
Missing v1 ``cpu`` directories make throttling and the limit unknown (logged once). Any file that
exists but is malformed, or vanishes mid-read (``ENODEV``), raises: the caller skips that pod for
this round. Files are read with ``os.open``/``os.read`` (one syscall each, no buffering), or on a
real cgroup filesystem kept open and re-read with ``pread`` (:mod:`mbcas.cgroups.files`;
:meth:`CgroupReader.release` closes a gone cgroup's files); a custom ``read_file`` can be
injected for tests.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from mbcas.cgroups import parse
from mbcas.cgroups.errors import CgroupError, CgroupParseError, ErrorKind
from mbcas.cgroups.files import OpenFiles, on_cgroupfs
from mbcas.cgroups.layout import DEFAULT_ROOT, Layout, LayoutKind, detect_layout

__all__ = ["CgroupReader", "Counters", "CpuSnapshot", "ReadFile", "check_relpath", "read_file_raw"]

log = logging.getLogger(__name__)

ReadFile = Callable[[str], bytes]
"""Reads a whole file's bytes; raises ``OSError`` like :func:`read_file_raw`."""

_READ_SIZE = 8192
_REL_CACHE = 4096
"""Normalised relative paths remembered (pods come and go: cleared when full)."""
_T = TypeVar("_T")


def read_file_raw(path: str) -> bytes:
    """Read a small kernel file in one ``read`` (cgroup files are generated whole on read)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, _READ_SIZE)
    finally:
        os.close(fd)


def check_relpath(relpath: str) -> str:
    """Normalise a cgroup path relative to the root (``/a/b/`` -> ``a/b``); reject ``..``."""
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise CgroupError(ErrorKind.BAD_PATH, "cgroup path must not contain '..'", relpath)
    return "/".join(parts)


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """Cumulative CPU counters of one cgroup at one instant (``None`` = not available)."""

    mono_ns: int
    """``time.monotonic_ns()`` taken right after the counters were read."""
    usage_usec: int
    nr_periods: int | None
    nr_throttled: int | None
    throttled_usec: int | None
    psi_some_usec: int | None
    psi_full_usec: int | None
    limit_cores: float | None
    """The CFS limit in cores; ``None`` when unlimited or not readable."""
    period_usec: int | None

    def counters(self) -> Counters:
        """The counters as one tuple (see :data:`Counters`)."""
        return (
            self.mono_ns,
            self.usage_usec,
            -1 if self.nr_periods is None else self.nr_periods,
            -1 if self.nr_throttled is None else self.nr_throttled,
            -1 if self.throttled_usec is None else self.throttled_usec,
            -1 if self.psi_some_usec is None else self.psi_some_usec,
            -1 if self.psi_full_usec is None else self.psi_full_usec,
        )


Counters = tuple[int, int, int, int, int, int, int]
"""A :class:`CpuSnapshot` without its limit, as the sampler keeps it: ``(mono_ns, usage_usec,
nr_periods, nr_throttled, throttled_usec, psi_some_usec, psi_full_usec)``, -1 = not available."""


class CgroupReader:
    """Reads :class:`CpuSnapshot` for cgroups under ``root`` (default ``/sys/fs/cgroup``).

    ``keep_open``: keep files open between reads (see :mod:`mbcas.cgroups.files`); by default
    when the layout's hierarchies are cgroup mounts and no ``read_file`` is given.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        layout: Layout | None = None,
        *,
        read_file: ReadFile | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        keep_open: bool | None = None,
    ) -> None:
        self.layout = layout if layout is not None else detect_layout(root)
        if keep_open is None:
            keep_open = read_file is None and all(on_cgroupfs(d) for d in self._dirs())
        self._files = OpenFiles() if keep_open and read_file is None else None
        self._read_file = read_file or (self._files.read if self._files is not None else read_file_raw)
        self._clock_ns = clock_ns
        self._warned: set[str] = set()
        self._rel: dict[str, str] = {}
        # read_counters' fast path: where the throttling counters are in the cgroup2 cpu.stat.
        self._counter_paths: dict[str, tuple[str, str]] = {}
        self._counter_paths_ok = self.layout.v2_dir is not None and (
            self.layout.kind is LayoutKind.V2 or self.layout.v2_cpu_controller
        )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    def _read(self, path: str) -> bytes | None:
        """Bytes of ``path``; ``None`` if it does not exist; raises ``CgroupError`` otherwise."""
        try:
            return self._read_file(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ESTALE):
                raise CgroupError(ErrorKind.VANISHED, "cgroup removed while reading", path) from None
            if exc.errno == errno.ENOTDIR:
                return None
            raise CgroupError(ErrorKind.IO, f"read failed: {exc.strerror or exc}", path) from None

    @staticmethod
    def _parse(parser: Callable[[bytes], _T], data: bytes, path: str) -> _T:
        try:
            return parser(data)
        except CgroupParseError as exc:
            raise CgroupParseError(exc.detail, path) from None

    def _dirs(self) -> list[str]:
        layout = self.layout
        return [d for d in (layout.v2_dir, layout.cpuacct_dir, layout.cpu_dir) if d is not None]

    @property
    def keeps_open(self) -> bool:
        """Whether files are kept open between reads."""
        return self._files is not None

    def exists(self, relpath: str) -> bool:
        """Whether the cgroup exists in any of the layout's CPU hierarchies."""
        rel = check_relpath(relpath)
        return any(os.path.isdir(os.path.join(d, rel)) for d in self._dirs())

    def release(self, relpath: str) -> None:
        """Close the files kept open for the cgroup at ``relpath`` (it is gone or not read again)."""
        if self._files is not None:
            rel = check_relpath(relpath)
            for d in self._dirs():
                self._files.release(f"{d}/{rel}" if rel else d)

    def close(self) -> None:
        """Close every file kept open (the reader still works: files reopen on the next read)."""
        if self._files is not None:
            self._files.close()

    def _pressure(self, v2: str) -> tuple[int | None, int | None]:
        path = f"{v2}/cpu.pressure"
        try:
            data = self._read_file(path)
        except FileNotFoundError:
            self._warn_once("psi-absent", f"{path} absent (kernel without PSI?): CPU stall is unknown")
            return None, None
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                self._warn_once("psi-off", f"{path}: PSI is disabled (boot with psi=1): CPU stall is unknown")
                return None, None
            if exc.errno in (errno.ENODEV, errno.ESTALE):
                raise CgroupError(ErrorKind.VANISHED, "cgroup removed while reading", path) from None
            raise CgroupError(ErrorKind.IO, f"read failed: {exc.strerror or exc}", path) from None
        pressure = self._parse(parse.parse_pressure, data, path)
        if pressure.full_total_usec is None:
            self._warn_once("psi-nofull", f"{path} has no 'full' line (Linux < 5.13): full stall unknown")
        return pressure.some_total_usec, pressure.full_total_usec

    def read_counters(self, relpath: str) -> Counters:
        """``read(relpath, with_limit=False).counters()``, what the agent's sampler reads for every
        pod on every tick. On a cgroup v2 node with the ``cpu`` controller, files in the kernel's
        exact format are read straight into the tuple (two reads, two matches); anything else,
        errors included, takes :meth:`read`."""
        paths = self._counter_paths.get(relpath)
        if paths is None and self._counter_paths_ok:
            try:
                rel = check_relpath(relpath)
            except CgroupError:
                return self.read(relpath, with_limit=False).counters()
            v2 = f"{self.layout.v2_dir}/{rel}" if rel else str(self.layout.v2_dir)
            if len(self._counter_paths) >= _REL_CACHE:
                self._counter_paths.clear()
            paths = self._counter_paths[relpath] = (f"{v2}/cpu.stat", f"{v2}/cpu.pressure")
        if paths is not None:
            stat, psi, path = None, None, paths[0]
            try:
                stat = parse.kernel_cpu_stat_v2(self._read_file(path))
                if stat is not None:
                    path = paths[1]
                    psi = parse.kernel_pressure(self._read_file(path))
            except OSError as exc:
                if exc.errno in (errno.ENODEV, errno.ESTALE):  # as read() says it, files released
                    self.release(relpath)
                    raise CgroupError(ErrorKind.VANISHED, "cgroup removed while reading", path) from None
            if stat is not None and psi is not None:
                return (self._clock_ns(), *stat, *psi)
        return self.read(relpath, with_limit=False).counters()

    def read(self, relpath: str, *, with_limit: bool = True) -> CpuSnapshot:
        """Read the counters of the cgroup at ``relpath`` (relative to the root).

        With ``with_limit=False`` the CFS limit files are not read (``limit_cores`` and ``period_usec``
        are ``None``): a caller that knows each pod's limit from its spec saves one or two file
        reads per pod and tick.
        """
        rel = self._rel.get(relpath)
        if rel is None:
            rel = check_relpath(relpath)
            if len(self._rel) >= _REL_CACHE:
                self._rel.clear()
            self._rel[relpath] = rel
        try:
            return self._snapshot(rel, with_limit)
        except CgroupError as exc:
            if exc.kind in (ErrorKind.VANISHED, ErrorKind.NOT_FOUND):
                self.release(rel)  # none of its files kept open is any good now
            raise

    def _snapshot(self, rel: str, with_limit: bool) -> CpuSnapshot:
        layout = self.layout
        usage: int | None = None
        periods = throttled = throttled_usec = None
        some = full = None
        limit: float | None = None
        period: int | None = None
        have_bandwidth = False

        if layout.v2_dir is not None:
            v2 = f"{layout.v2_dir}/{rel}" if rel else layout.v2_dir
            path = f"{v2}/cpu.stat"
            data = self._read(path)
            if data is not None:
                stat = self._parse(parse.parse_cpu_stat_v2, data, path)
                usage = stat.usage_usec
                if stat.nr_periods is not None:
                    have_bandwidth = True
                    periods, throttled, throttled_usec = (
                        stat.nr_periods,
                        stat.nr_throttled,
                        stat.throttled_usec,
                    )
                    path = f"{v2}/cpu.max"
                    data = self._read(path) if with_limit else None
                    if data is not None:
                        cpu_max = self._parse(parse.parse_cpu_max, data, path)
                        limit, period = cpu_max.cores, cpu_max.period_usec
                some, full = self._pressure(v2)

        if usage is None and layout.cpuacct_dir is not None:
            path = (
                f"{layout.cpuacct_dir}/{rel}/cpuacct.usage" if rel else f"{layout.cpuacct_dir}/cpuacct.usage"
            )
            data = self._read(path)
            if data is not None:
                usage = self._parse(lambda d: parse.parse_counter(d, "cpuacct.usage"), data, path) // 1000

        if usage is None:
            raise CgroupError(
                ErrorKind.NOT_FOUND, "no such cgroup (no cpu.stat or cpuacct.usage)", rel or "/"
            )

        if not have_bandwidth and layout.cpu_dir is not None:
            cpu = f"{layout.cpu_dir}/{rel}" if rel else layout.cpu_dir
            path = f"{cpu}/cpu.stat"
            data = self._read(path)
            if data is None:
                self._warn_once(
                    "v1-cpu-absent", f"{cpu} missing in the v1 cpu controller: throttling and limit unknown"
                )
            else:
                v1 = self._parse(parse.parse_cpu_stat_v1, data, path)
                periods, throttled = v1.nr_periods, v1.nr_throttled
                throttled_usec = v1.throttled_time_ns // 1000
            if data is not None and with_limit:
                qpath, ppath = f"{cpu}/cpu.cfs_quota_us", f"{cpu}/cpu.cfs_period_us"
                qdata, pdata = self._read(qpath), self._read(ppath)
                if qdata is None or pdata is None:
                    raise CgroupError(ErrorKind.VANISHED, "quota files disappeared", cpu)
                quota = self._parse(parse.parse_cfs_quota, qdata, qpath)
                period = self._parse(lambda d: parse.parse_counter(d, "cpu.cfs_period_us"), pdata, ppath)
                if period <= 0:
                    raise CgroupParseError("period must be positive", ppath)
                limit = None if quota is None else quota / period

        return CpuSnapshot(
            mono_ns=self._clock_ns(),
            usage_usec=usage,
            nr_periods=periods,
            nr_throttled=throttled,
            throttled_usec=throttled_usec,
            psi_some_usec=some,
            psi_full_usec=full,
            limit_cores=limit,
            period_usec=period,
        )
