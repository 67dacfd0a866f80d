"""Real cgroups for tests: create them under a unique prefix, run CPU burners in them, clean up.

:class:`CgroupSandbox` creates cgroups at the same relative path in every CPU hierarchy of this
machine (the cgroup2 one, and the v1 ``cpu`` and ``cpuacct`` controllers when mounted), starts
CPU-burning processes directly into them (a shell joins the cgroups, then ``exec``-s the program,
so no CPU is spent outside), sets CPU quotas (``cpu.max`` on v2 with the cpu controller, else v1
``cpu.cfs_quota_us``), and on :meth:`CgroupSandbox.close` kills only the processes it started,
by pid, and removes its cgroups leaf-first, retrying while the kernel finishes reaping. Closing
runs even when the test fails (use it as a context manager or through the fixtures in
``conftest.py``). Nothing outside the sandbox's prefix is changed, except enabling the ``cpu``
controller in the cgroup2 root's ``cgroup.subtree_control`` on a pure-v2 machine where it is off.

Importable by other tests (``from cgroup_helpers import CgroupSandbox``) with ``tests/kernel`` on
``sys.path`` (pytest does this for tests in this directory).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from mbcas.cgroups import DEFAULT_ROOT, Layout, detect_layout, quota_for_cores

__all__ = ["BURNER_SOURCE", "CgroupSandbox", "CgroupUnavailableError", "TestCgroup", "proc_cpu_seconds"]

# Burns ``rate`` cores on average (rate >= 1: a plain busy loop): spin while behind schedule in
# CPU time, sleep when ahead. Debt beyond 50 ms is forgiven so a pause is not followed by a burst.
BURNER_SOURCE = """
import sys, time
rate = float(sys.argv[1])
cpu0, wall0 = time.process_time(), time.monotonic()
while True:
    now = time.monotonic()
    debt = rate * (now - wall0) - (time.process_time() - cpu0)
    if debt > 0.05 and rate < 1:
        wall0 += (debt - 0.05) / rate
    if debt > 0 or rate >= 1:
        end = now + 0.002
        while time.monotonic() < end:
            pass
    else:
        time.sleep(0.002)
"""


class CgroupUnavailableError(RuntimeError):
    """Cgroups cannot be created here (not root, read-only, no hierarchy): tests should skip."""


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` from ``/proc/<pid>/stat``: ground truth for tests."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


@dataclass
class TestCgroup:
    """One sandbox cgroup: ``relpath`` is relative to the cgroup root (what the reader takes)."""

    __test__ = False  # not a pytest test class

    sandbox: CgroupSandbox
    relpath: str
    dirs: list[Path]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn_burner(self, cores: float) -> subprocess.Popen[bytes]:
        """Start a process burning ``cores`` CPU (>= 1: a busy loop) inside this cgroup."""
        return self.sandbox.spawn([sys.executable, "-S", "-c", BURNER_SOURCE, str(cores)], self)

    def set_quota(self, cores: float | None, period_usec: int = 100_000) -> None:
        """Set the CFS limit (``None`` removes it)."""
        self.sandbox.set_quota(self, cores, period_usec)


class CgroupSandbox:
    """Creates and owns test cgroups under ``<hierarchy>/<prefix>`` (see module docs)."""

    def __init__(self, root: str = DEFAULT_ROOT, prefix: str | None = None) -> None:
        try:
            self.layout: Layout = detect_layout(root)
        except Exception as exc:
            raise CgroupUnavailableError(f"no usable cgroup hierarchy at {root}: {exc}") from exc
        self.prefix = prefix or f"mbcas-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.cgroups: list[TestCgroup] = []
        self._created: list[Path] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        seen: set[str] = set()
        self.hierarchies: list[Path] = []
        for d in (self.layout.v2_dir, self.layout.cpu_dir, self.layout.cpuacct_dir):
            if d is not None and os.path.realpath(d) not in seen:
                seen.add(os.path.realpath(d))
                self.hierarchies.append(Path(d))
        self._v1_cpu = Path(self.layout.cpu_dir) if self.layout.cpu_dir else None
        self._v2_cpu = self.layout.v2_cpu_controller and self._v1_cpu is None
        try:
            for h in self.hierarchies:
                self._mkdir(h / self.prefix)
            if self._v2_cpu:
                self._enable_v2_cpu()
        except OSError as exc:
            self.close()
            raise CgroupUnavailableError(f"cannot create cgroups under {root}: {exc}") from exc

    @property
    def can_limit(self) -> bool:
        """Whether CPU quotas can be enforced (v1 ``cpu`` controller or v2 with ``cpu``)."""
        return self._v1_cpu is not None or self._v2_cpu

    def _mkdir(self, path: Path) -> None:
        path.mkdir()
        self._created.append(path)

    def _enable_v2_cpu(self) -> None:
        v2 = Path(self.layout.v2_dir or "")
        for parent in (v2, v2 / self.prefix):
            if "cpu" not in (parent / "cgroup.subtree_control").read_text().split():
                _write(parent / "cgroup.subtree_control", "+cpu")

    def create(self, name: str) -> TestCgroup:
        """A new cgroup ``<prefix>/<name>`` (``name`` may contain ``/`` for nested paths)."""
        relpath = f"{self.prefix}/{name.strip('/')}"
        dirs = []
        for h in self.hierarchies:
            path = h / self.prefix
            for part in name.strip("/").split("/"):
                path = path / part
                if not path.exists():
                    self._mkdir(path)
                    if self._v2_cpu and h == Path(self.layout.v2_dir or ""):
                        # Interior cgroups hold no processes; delegate cpu so leaves get cpu.max.
                        _write(path.parent / "cgroup.subtree_control", "+cpu")
            dirs.append(path)
        cg = TestCgroup(self, relpath, dirs)
        self.cgroups.append(cg)
        return cg

    def spawn(self, argv: list[str], cg: TestCgroup) -> subprocess.Popen[bytes]:
        """Start ``argv`` with the child already inside ``cg`` in every hierarchy."""
        # A shell joins the cgroups, then execs argv: the process never runs outside them.
        # (No preexec_fn: it is unsafe in a threaded interpreter.)
        script = (
            'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 97; shift; done; '
            'shift; exec "$@"'
        )
        procs_files = [str(d / "cgroup.procs") for d in cg.dirs]
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script, "sh", *procs_files, "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        self._procs.append(proc)
        cg.procs.append(proc)
        return proc

    def prioritise(self, weight_factor: int = 20) -> None:
        """Give this sandbox's own top cgroup ``weight_factor`` × the default CPU weight, so the
        CPU other work on a shared machine uses does not starve its burners (only our cgroup is
        touched; quotas below it still apply)."""
        if self._v1_cpu is not None:
            _write(self._v1_cpu / self.prefix / "cpu.shares", str(1024 * weight_factor))
        elif self._v2_cpu:
            _write(
                Path(self.layout.v2_dir or "") / self.prefix / "cpu.weight",
                str(min(100 * weight_factor, 10000)),
            )

    def set_quota(self, cg: TestCgroup, cores: float | None, period_usec: int = 100_000) -> None:
        """Set ``cg``'s CPU limit in cores (``None``: unlimited)."""
        quota = quota_for_cores(cores, period_usec)
        rel = cg.relpath
        if self._v1_cpu is not None:
            base = self._v1_cpu / rel
            _write(base / "cpu.cfs_period_us", str(period_usec))
            _write(base / "cpu.cfs_quota_us", "-1" if quota is None else str(quota))
        elif self._v2_cpu:
            base = Path(self.layout.v2_dir or "") / rel
            _write(base / "cpu.max", f"{'max' if quota is None else quota} {period_usec}")
        else:
            raise CgroupUnavailableError("no CPU controller to enforce a quota on this machine")

    def kill_all(self) -> None:
        """Kill every process this sandbox started (by pid) and reap it."""
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()
        for cg in self.cgroups:
            cg.procs.clear()

    def remove(self, cg: TestCgroup) -> None:
        """Kill ``cg``'s processes and remove its directories (not its parents)."""
        for proc in cg.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
        for d in cg.dirs:
            _rmdir(d)
            if d in self._created:
                self._created.remove(d)
        self.cgroups.remove(cg)

    def close(self) -> None:
        """Kill started processes, then remove every created cgroup, deepest first. Idempotent."""
        self.kill_all()
        errors = []
        for path in sorted(self._created, key=lambda p: len(p.parts), reverse=True):
            try:
                _rmdir(path)
            except OSError as exc:
                errors.append(f"{path}: {exc}")
        self._created.clear()
        self.cgroups.clear()
        if errors:
            raise RuntimeError("could not remove test cgroups: " + "; ".join(errors))

    def __enter__(self) -> CgroupSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rmdir(path: Path, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
