"""containerd for the real node: its configuration, its process, its images and its leftovers.

The distro's ``containerd`` (1.6) and ``runc`` run the real node's pods. Nothing starts them for
us (no systemd), so :class:`Containerd` starts containerd by hand with every path of its own
under one directory: root, state, the gRPC socket, the opt directory, runc's state root and the
network namespaces (``netns_mounts_under_state_dir``). Its CRI settings are the ones measured to
work on this kind of machine:

- ``SystemdCgroup = false`` (the kubelet uses the ``cgroupfs`` driver; no systemd here);
- the ``overlayfs`` snapshotter;
- ``sandbox_image`` = the locally built pause image (no registry is reachable);
- ``restrict_oom_score_adj = true``: without CAP_SYS_RESOURCE runc cannot lower
  ``oom_score_adj`` and fails with "can't get final child's PID from pipe: EOF";
- CNI binaries from the distro's ``containernetworking-plugins`` and a CNI configuration directory
  of our own.

Images are docker-archive tars imported with ``ctr -n k8s.io images import`` (under a second).
:meth:`Containerd.sweep` kills and deletes every task and container of the ``k8s.io`` namespace so
the shims unmount the root filesystems before containerd stops; :func:`shim_pids` finds shims
left over by a crashed run (by the socket address on their command line, so only ours).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mbcas.local.procs import Daemon, ProcessError, log_tail, stop_pid

__all__ = ["CNI_BIN_DIRS", "Containerd", "ContainerdError", "find_cni_bin_dir", "shim_pids"]

K8S_NAMESPACE = "k8s.io"
# Where the distro (Debian: containernetworking-plugins) and upstream put the CNI plugins.
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")


class ContainerdError(RuntimeError):
    """containerd could not start, or ``ctr`` failed; the message says why."""


def find_cni_bin_dir() -> Path:
    """The directory holding the ``bridge`` and ``host-local`` CNI plugins."""
    for candidate in CNI_BIN_DIRS:
        if all((Path(candidate) / p).is_file() for p in ("bridge", "host-local", "loopback")):
            return Path(candidate)
    raise ContainerdError(
        f"no CNI plugins (bridge, host-local, loopback) in {', '.join(CNI_BIN_DIRS)}: "
        "install the distro's containernetworking-plugins package"
    )


def shim_pids(address: Path) -> list[int]:
    """Pids of ``containerd-shim*`` processes serving the containerd at ``address`` (ours only)."""
    needle = str(address).encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and needle in argv:
            found.append(int(entry.name))
    return found


@dataclass
class Containerd(Daemon):
    """One containerd with all its paths under ``directory``."""

    directory: Path
    sandbox_image: str
    cni_conf_dir: Path
    cni_bin_dir: Path

    @property
    def socket(self) -> Path:
        """The gRPC socket (the kubelet's ``containerRuntimeEndpoint``)."""
        return self.directory / "containerd.sock"

    @property
    def log_path(self) -> Path:
        return self.directory / "containerd.log"

    def config_text(self) -> str:
        """containerd's ``config.toml`` (version 2)."""
        d = self.directory
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{d / "containerd.sock.ttrpc"}"

[metrics]
  address = ""

[{cri}]
  sandbox_image = "{self.sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d / "runc"}"

  [{cri}.cni]
    bin_dir = "{self.cni_bin_dir}"
    conf_dir = "{self.cni_conf_dir}"
    max_conf_num = 1

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"
"""

    # ------------------------------------------------------------------ process

    def start(self, timeout: float = 30.0) -> None:
        """Write the configuration, start containerd and wait until ``ctr version`` answers."""
        exe = shutil.which("containerd")
        if exe is None:
            raise ContainerdError("'containerd' is not installed (the distro package 'containerd')")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.toml"
        config.write_text(self.config_text())
        proc = self._spawn([exe, "--config", str(config)], self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ProcessError(f"containerd exited with {proc.returncode}:\n{log_tail(self.log_path)}")
            if self.socket.exists() and self.ctr("version", check=False).returncode == 0:
                self.log(f"containerd ready (pid {self.pid}, socket {self.socket})")
                return
            time.sleep(0.1)
        raise ContainerdError(f"containerd did not answer in {timeout:.0f}s:\n{log_tail(self.log_path)}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop containerd (by pid) and any shim of ours still running."""
        self._stop_daemon(timeout)
        for pid in shim_pids(self.socket):
            stop_pid(pid, timeout=5.0)

    # ------------------------------------------------------------------ ctr

    def ctr(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``ctr`` against this containerd in the CRI namespace ``k8s.io``."""
        exe = shutil.which("ctr")
        if exe is None:
            raise ContainerdError("'ctr' is not installed (it ships with the distro package 'containerd')")
        argv = [exe, "--address", str(self.socket), "--namespace", K8S_NAMESPACE, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise ContainerdError(f"'ctr {' '.join(args)}' failed: {(proc.stderr or proc.stdout).strip()}")
        return proc

    def import_image(self, archive: Path) -> None:
        """Import a docker-archive or OCI tar into the CRI namespace (the kubelet sees it at once)."""
        self.ctr("images", "import", str(archive))

    def images(self) -> set[str]:
        """References of the images containerd holds in ``k8s.io``."""
        out = self.ctr("images", "list", "--quiet").stdout
        return {line.strip() for line in out.splitlines() if line.strip()}

    def sweep(self) -> None:
        """Kill and delete every task and container in ``k8s.io`` (shims unmount root filesystems)."""
        with contextlib.suppress(ContainerdError, subprocess.TimeoutExpired):
            tasks = self.ctr("tasks", "list", "--quiet", check=False, timeout=20).stdout.split()
            for task in tasks:
                self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False, timeout=20)
            deadline = time.monotonic() + 10
            for task in tasks:
                while self.ctr("tasks", "delete", task, check=False, timeout=20).returncode != 0:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
            containers = self.ctr("containers", "list", "--quiet", check=False, timeout=20).stdout.split()
            for container in containers:
                self.ctr("containers", "delete", container, check=False, timeout=20)
