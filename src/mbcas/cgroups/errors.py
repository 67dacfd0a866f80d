"""Errors raised while reading cgroup files.

Every failure to read or understand a cgroup file becomes a :class:`CgroupError` carrying an
:class:`ErrorKind`, so callers can decide per pod what to do (skip the pod this round, re-resolve
its path, rebaseline its counters) without ever catching a bare ``OSError`` or ``ValueError``.
:class:`CgroupParseError` is the subclass for files that were read but make no sense; it is also a
``ValueError`` so generic code that validates input keeps working.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CgroupError", "CgroupParseError", "ErrorKind"]


class ErrorKind(StrEnum):
    """Why a cgroup (or one sample of it) could not be used."""

    NOT_FOUND = "not_found"
    """The cgroup directory or a required file does not exist (pod gone, wrong path)."""
    VANISHED = "vanished"
    """The cgroup was removed while it was being read (ENODEV and friends)."""
    PARSE = "parse"
    """A file was read but its content is malformed, truncated or half-written."""
    IO = "io"
    """Any other operating-system error while reading (permissions, EIO, ...)."""
    BASELINE = "baseline"
    """First read of this pod (or first read after a reset): no delta until the next round."""
    RESET = "reset"
    """Counters went backwards or the cgroup was recreated: rebaselined, no delta this round."""
    INCONSISTENT = "inconsistent"
    """The delta is physically impossible (stall longer than wall time, usage above the node)."""
    BAD_PATH = "bad_path"
    """The relative path is unusable (absolute outside the root, contains ``..``)."""


class CgroupError(Exception):
    """A cgroup could not be read; ``kind`` says why and ``path`` says where."""

    def __init__(self, kind: ErrorKind, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.kind = kind
        self.path = path
        self.detail = message


class CgroupParseError(CgroupError, ValueError):
    """A cgroup file's content is malformed."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(ErrorKind.PARSE, message, path)
