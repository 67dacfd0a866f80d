"""Child processes of the local control plane: free ports, start with logs, stop by pid.

Two ways to run a component. *Attached* (tests, the Python API): the child gets
``PR_SET_PDEATHSIG=SIGTERM`` through a tiny exec wrapper, so even if the Python process that
started it is killed outright, the child goes with it. *Detached* (``mbcas cluster up``): the
child runs in its own session and survives the command; its pid is recorded and ``mbcas cluster
down`` stops it by that pid, after checking that the pid still runs the same executable.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "Daemon",
    "ProcessError",
    "StartStop",
    "free_port",
    "log_tail",
    "pid_alive",
    "pid_runs",
    "start_process",
    "stop_pid",
    "stop_process",
]


class ProcessError(RuntimeError):
    """A component failed to start or exited early; the message carries its log tail."""


@dataclass(kw_only=True)
class Daemon:
    """A long-running process of ours: started here (``proc``) or found again by ``pid`` after a
    restart of the caller; ``detached`` ones outlive their parent; ``log`` reports progress."""

    detached: bool = False
    log: Callable[[str], None] = lambda _msg: None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    pid: int | None = None

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        self.proc = start_process(argv, log_path, detached=self.detached)
        self.pid = self.proc.pid
        return self.proc

    def _stop_daemon(self, timeout: float) -> None:
        """Stop it by process or by pid, whichever we have."""
        if self.proc is not None:
            stop_process(self.proc, timeout)
        elif self.pid is not None and pid_alive(self.pid):
            stop_pid(self.pid, timeout)
        self.proc = None
        self.pid = None


class StartStop:
    """``with thing:`` for what has ``start()`` and ``stop()`` (stopped even when the body fails)."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# Sets PR_SET_PDEATHSIG (1) to SIGTERM (15), checks that the parent did not die in between, then
# replaces itself with the real command. The signal setting survives execve.
_PDEATHSIG_WRAPPER = (
    "import ctypes,os,sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, 15, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def start_process(
    argv: list[str], log_path: Path, detached: bool = False, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        if detached:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                close_fds=True,
            )
        wrapped = [sys.executable, "-c", _PDEATHSIG_WRAPPER, str(os.getpid()), *argv]
        return subprocess.Popen(
            wrapped, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, close_fds=True
        )


def log_tail(log_path: Path, lines: int = 25) -> str:
    """The last lines of a component's log, for error messages."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pid_runs(pid: int, executable: str) -> bool:
    """Whether ``pid`` is alive and its command line mentions ``executable`` (guards pid reuse)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(executable.encode() in part for part in cmdline)


def stop_pid(pid: int, timeout: float = 10.0, group: bool = False) -> None:
    """SIGTERM ``pid`` (or its process group), wait, then SIGKILL. Never raises for a gone pid."""
    kill = os.killpg if group else os.kill
    try:
        kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a child we started and reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
