"""``mbcas demo`` stops on Ctrl-C while its first run is still building the control plane, and
leaves no build process behind.

The build is the real :func:`mbcas.local.build._run_go` running a fake ``go`` (a shell script
that records its pid and sleeps), so nothing is compiled; SIGINT goes to the Python process
only, as ``kill -INT`` sends it (a terminal's Ctrl-C would also reach the children).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mbcas.local.procs import pid_alive

SCRIPT = """
import sys
from pathlib import Path
import mbcas.local.build as build

def first_build(build_missing=True, **_):
    print("building", flush=True)
    build._run_go(["build", "./..."], Path(sys.argv[1]), "compile kubernetes")
    raise SystemExit("the fake build finished: the test did not interrupt it")

build.ensure_binaries = first_build
from mbcas.cli.main import main
sys.exit(main(["demo", "--duration", "5"]))
"""


def test_ctrl_c_during_the_first_build_stops_the_demo(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    go = fake_bin / "go"
    go.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/go.pid\nexec sleep 600\n")
    go.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    go_pid = None
    try:
        assert proc.stdout is not None
        while "building" not in proc.stdout.readline():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        deadline = time.monotonic() + 10
        while not (tmp_path / "go.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        go_pid = int((tmp_path / "go.pid").read_text())
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("Ctrl-C during the first build did not stop mbcas demo") from None
        assert code == 130, proc.stderr.read() if proc.stderr else ""
        deadline = time.monotonic() + 5
        while pid_alive(go_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(go_pid), "the build process was left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if go_pid is not None and pid_alive(go_pid):
            os.kill(go_pid, signal.SIGKILL)
