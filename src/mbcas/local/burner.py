"""A CPU burner that stands in for an emulated container's workload.

``python -m mbcas.local.burner --pattern-file F`` (or ``--pattern P``) consumes CPU following a
*demand pattern*, in 100 ms duty cycles. A pattern is either a number of cores (``"0.2"``) or a
schedule of ``seconds:cores`` steps (``"0:0.1,30:0.9"``: 0.1 core for 30 s, then 0.9 core); a
final step whose value is ``loop`` restarts the schedule (``"0:0.1,30:0.9,60:loop"``). Time
counts from when the pattern was (re)loaded. The pattern file is re-read when it changes, so
the demand of a running "container" can change without restarting it (its cgroup keeps its
counters).

Demand is CPU *work*, not wall time: in each cycle a worker spins until its thread has consumed
its share of CPU time or the cycle ends. Under a CFS quota it therefore stays runnable for the
whole cycle, just as a real busy service would, which is what makes throttling and CPU pressure
show. Above one core, one worker process per core is forked; each takes up to one core of the
demand. Workers exit when their parent goes away.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemandPattern", "PatternError", "main"]

CYCLE = 0.1
_MAX_CORES = 64.0


class PatternError(ValueError):
    """A demand pattern that cannot be parsed; the message says what is wrong."""


@dataclass(frozen=True)
class DemandPattern:
    """Piecewise-constant CPU demand over time: ``steps`` of (start second, cores)."""

    steps: tuple[tuple[float, float], ...]
    loop_at: float | None = None

    @classmethod
    def parse(cls, text: str) -> DemandPattern:
        text = text.strip()
        if not text:
            return cls(((0.0, 0.0),))
        if ":" not in text:
            return cls(((0.0, _cores(text)),))
        steps: list[tuple[float, float]] = []
        loop_at: float | None = None
        for part in text.split(","):
            at_text, sep, value = part.strip().partition(":")
            if not sep:
                raise PatternError(f"step {part!r} is not SECONDS:CORES")
            try:
                at = float(at_text)
            except ValueError:
                raise PatternError(f"step {part!r}: {at_text!r} is not a number of seconds") from None
            if not math.isfinite(at) or at < 0 or (steps and at <= steps[-1][0]):
                raise PatternError(f"step {part!r}: times must be finite, >= 0 and increasing")
            if loop_at is not None:
                raise PatternError("'loop' must be the last step")
            if value.strip() == "loop":
                loop_at = at
                continue
            steps.append((at, _cores(value)))
        if not steps or steps[0][0] != 0:
            raise PatternError("a schedule must start at second 0")
        if loop_at is not None and loop_at <= 0:
            raise PatternError("'loop' needs a positive time")
        return cls(tuple(steps), loop_at)

    def cores_at(self, elapsed: float) -> float:
        """Demanded cores ``elapsed`` seconds after the pattern was loaded."""
        if self.loop_at is not None:
            elapsed %= self.loop_at
        current = self.steps[0][1]
        for at, cores in self.steps:
            if elapsed < at:
                break
            current = cores
        return current

    @property
    def peak(self) -> float:
        return max(c for _, c in self.steps)


def _cores(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PatternError(f"{text.strip()!r} is not a number of cores") from None
    if not math.isfinite(value) or value < 0 or value > _MAX_CORES:
        raise PatternError(f"{text.strip()!r}: cores must be between 0 and {_MAX_CORES:g}")
    return value


class _Source:
    """The pattern, reloaded from its file when the file changes."""

    def __init__(self, text: str | None, path: Path | None) -> None:
        self.path = path
        self.mtime: float | None = None
        self.pattern = DemandPattern.parse(text or "0")
        self.since = time.monotonic()
        self.refresh()

    def refresh(self) -> None:
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime == self.mtime:
                return
            text = self.path.read_text()
        except OSError:
            return
        self.mtime = mtime
        try:
            self.pattern = DemandPattern.parse(text)
        except PatternError as exc:
            print(f"burner: keeping the previous pattern: {exc}", file=sys.stderr, flush=True)
            return
        self.since = time.monotonic()


def _spin() -> None:
    """About 20-50 µs of pure user-space work between two clock reads (which are syscalls)."""
    x = 0
    for i in range(500):
        x += i * i
    del x


def _work(source: _Source, index: int, parent: int) -> None:
    """Worker ``index`` takes the slice ``[index, index + 1)`` of the demanded cores."""
    last_check = 0.0
    while True:
        start = time.monotonic()
        if start - last_check >= 0.5:
            if os.getppid() != parent:
                return
            source.refresh()
            last_check = start
        share = min(1.0, max(0.0, source.pattern.cores_at(start - source.since) - index))
        if share > 0:
            target = time.thread_time() + share * CYCLE
            end = start + CYCLE
            while time.thread_time() < target and time.monotonic() < end:
                _spin()
        remaining = start + CYCLE - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


def _set_pdeathsig() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mbcas.local.burner", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--pattern", default=None, help="demand pattern, e.g. 0.5 or 0:0.1,30:0.9")
    parser.add_argument("--pattern-file", type=Path, default=None, help="file holding the pattern (re-read)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (max cores)"
    )
    args = parser.parse_args(argv)
    parent = os.getppid()
    _set_pdeathsig()
    try:
        source = _Source(args.pattern, args.pattern_file)
    except PatternError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    me = os.getpid()
    for index in range(1, max(1, args.workers)):
        if os.fork() == 0:
            _set_pdeathsig()
            try:
                _work(source, index, me)
            finally:
                os._exit(0)
    _work(source, 0, parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
