"""Kernel cgroup files kept open between reads, and whether a directory is on a cgroup filesystem.

A cgroup file is generated afresh on every read from offset 0, so a reader that keeps it open
and calls ``pread(fd, size, 0)`` each tick gets current counters with one system call instead of
three (``open``, ``read``, ``close``): about 2 µs instead of 10 µs per file, measured on this
machine's kernel, which is most of what sensing 110 pods costs. When the cgroup is removed the
kernel fails the read with ``ENODEV``; the file is then closed and the error passed on, so the
caller sees the cgroup vanish exactly as with a fresh ``open``.

That last property is the kernel's, not a regular file's: a deleted regular file stays readable
through an open descriptor. :func:`on_cgroupfs` therefore tells a reader whether its files are
the kernel's (``cgroup``/``cgroup2`` in ``/proc/self/mountinfo``) before it keeps any open; fake
trees in tests are read the ordinary way unless a test asks otherwise.

:class:`OpenFiles` holds at most ``max_open`` descriptors (a quarter of the process's file
limit by default); past that, files are read the ordinary way. :meth:`OpenFiles.release` closes
the files of a cgroup that is gone.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

__all__ = ["OpenFiles", "on_cgroupfs"]

_READ_SIZE = 8192
_CGROUP_FS = frozenset({"cgroup", "cgroup2"})


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for a space, ...)."""
    if "\\" not in field:
        return field
    return field.encode("latin-1").decode("unicode_escape").encode("latin-1").decode()


def on_cgroupfs(path: str | os.PathLike[str], mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Whether ``path`` lies on a ``cgroup`` or ``cgroup2`` mount (its deepest enclosing mount)."""
    try:
        target = os.path.realpath(path)
        lines = Path(mountinfo).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    best, fstype = "", ""
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, right.split()[0]
    return fstype in _CGROUP_FS


def _default_max_open() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 256 if soft == resource.RLIM_INFINITY else max(soft // 4, 16)


class OpenFiles:
    """Reads kernel files through descriptors kept open (see module docs)."""

    def __init__(self, max_open: int | None = None) -> None:
        self.max_open = _default_max_open() if max_open is None else max_open
        self._fds: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._fds)

    def read(self, path: str) -> bytes:
        """The file's current content; raises ``OSError`` like ``open``/``read`` would."""
        fd = self._fds.get(path)
        if fd is None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            if len(self._fds) >= self.max_open:
                try:
                    return os.read(fd, _READ_SIZE)
                finally:
                    os.close(fd)
            self._fds[path] = fd
        try:
            return os.pread(fd, _READ_SIZE, 0)
        except OSError:
            self._close(path)  # the cgroup is gone (ENODEV): the next read opens afresh
            raise

    def _close(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)

    def release(self, directory: str) -> None:
        """Close every file kept open under ``directory`` (a cgroup that is gone)."""
        prefix = directory.rstrip("/") + "/"
        for path in [p for p in self._fds if p.startswith(prefix)]:
            self._close(path)

    def close(self) -> None:
        """Close every file kept open."""
        for path in list(self._fds):
            self._close(path)
