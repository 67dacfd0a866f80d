"""The real node's kubelet: its configuration, credentials, CNI configuration and process.

:class:`Kubelet` writes everything the kubelet needs under one directory and starts it against
the local control plane:

- a client certificate for ``system:node:<name>`` (``O=system:nodes``) signed by the cluster CA,
  so the apiserver's Node authorizer lets it register and update its Node and pods;
- a ``KubeletConfiguration`` measured to work here: ``cgroupDriver: cgroupfs`` (no systemd),
  ``failCgroupV1: false`` (this kernel's CPU controllers are cgroup v1), ``failSwapOn: false``,
  its own root, certificate, pod-log and volume-plugin directories, its ports (10250, 10248) on
  loopback only, anonymous access off, no read-only port, eviction thresholds low enough that a
  busy build disk never evicts the test pods, and no iptables chains;
- a CNI configuration (``bridge`` + ``host-local``): the container runtime reports its network
  ready only when one exists, even though MBCAS's pods use the host network and the test pods use
  no network at all. The bridge has no address and no masquerading, so nothing routes through it.

The kubelet's node IP is the machine's own address (it rejects loopback); nothing here connects to
it: the apiserver never calls the kubelet (no logs/exec through it), and probes of the host-network
pods are sent to 127.0.0.1 (chart value ``network.probeHost``).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from mbcas.local.certs import ClusterCerts, sign_client_cert, write_kubeconfig
from mbcas.local.procs import Daemon, ProcessError, log_tail

__all__ = ["BRIDGE_NAME", "POD_CIDR", "Kubelet", "KubeletError", "cni_config"]

POD_CIDR = "10.244.0.0/24"
BRIDGE_NAME = "mbcas0"
KUBELET_PORT = 10250
HEALTHZ_PORT = 10248


class KubeletError(RuntimeError):
    """The kubelet could not start or its node did not become Ready; the message says why."""


def cni_config(ipam_dir: Path) -> dict[str, object]:
    """A CNI conflist: a bridge without an address and host-local IPAM with its state in ``ipam_dir``."""
    return {
        "cniVersion": "0.4.0",
        "name": "mbcas-local",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE_NAME,
                "isGateway": False,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "loopback"},
        ],
    }


@dataclass
class Kubelet(Daemon):
    """One kubelet for node ``node_name`` with all its files under ``directory``."""

    directory: Path
    binary: Path
    node_name: str
    server: str
    certs: ClusterCerts
    runtime_socket: Path
    node_ip: str | None = None
    pod_logs_dir: Path | None = None

    @property
    def root_dir(self) -> Path:
        return self.directory / "root"

    @property
    def cni_conf_dir(self) -> Path:
        return self.directory / "cni" / "net.d"

    @property
    def log_path(self) -> Path:
        return self.directory / "kubelet.log"

    @property
    def logs_dir(self) -> Path:
        """Where the kubelet writes the containers' logs (``podLogsDir``)."""
        return self.pod_logs_dir or self.directory / "pod-logs"

    def config(self) -> dict[str, object]:
        """The ``KubeletConfiguration`` (kubelet.config.k8s.io/v1beta1)."""
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": True,
            "cgroupRoot": "/",
            "enforceNodeAllocatable": ["pods"],
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.runtime_socket}",
            "address": "127.0.0.1",
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": HEALTHZ_PORT,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.certs.ca_cert)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "podLogsDir": str(self.logs_dir),
            "volumePluginDir": str(self.directory / "volume-plugins"),
            "resolvConf": "/etc/resolv.conf",
            "clusterDomain": "cluster.local",
            "makeIPTablesUtilChains": False,
            "protectKernelDefaults": False,
            "serializeImagePulls": False,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "nodeStatusUpdateFrequency": "10s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "20s",
            "maxPods": 110,
            "podPidsLimit": 4096,
            "shutdownGracePeriod": "0s",
            "registerNode": True,
        }

    def write_files(self) -> Path:
        """Write the credentials, kubeconfig, configuration and CNI conflist; return the config path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        pki = self.directory / "pki"
        client = sign_client_cert(
            pki, "kubelet-client", f"/O=system:nodes/CN=system:node:{self.node_name}", self.certs
        )
        write_kubeconfig(self.directory / "kubelet.kubeconfig", self.server, self.certs, "mbcas-node", client)
        for sub in ("root", "volume-plugins", "ipam"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (self.cni_conf_dir / "10-mbcas.conflist").write_text(
            json.dumps(cni_config(self.directory / "ipam"), indent=2)
        )
        config = self.directory / "kubelet-config.yaml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        return config

    def argv(self, config: Path) -> list[str]:
        argv = [
            str(self.binary),
            f"--config={config}",
            f"--kubeconfig={self.directory / 'kubelet.kubeconfig'}",
            f"--root-dir={self.root_dir}",
            f"--cert-dir={self.directory / 'pki'}",
            f"--hostname-override={self.node_name}",
            "--v=2",
        ]
        if self.node_ip:
            argv.append(f"--node-ip={self.node_ip}")
        return argv

    def start(self) -> None:
        """Write the files and start the kubelet (returns at once; see :meth:`wait_ready`)."""
        if not self.binary.is_file():
            raise KubeletError(f"no kubelet at {self.binary}")
        config = self.write_files()
        self._spawn(self.argv(config), self.log_path)
        self.log(f"kubelet started (pid {self.pid}, node {self.node_name})")

    def wait_ready(
        self, kubectl: Callable[..., subprocess.CompletedProcess[str]], timeout: float = 90.0
    ) -> float:
        """Wait until the Node reports ``Ready``; return the seconds it took since this call."""
        begin = time.monotonic()
        deadline = begin + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ProcessError(
                    f"the kubelet exited with {self.proc.returncode}:\n{log_tail(self.log_path)}"
                )
            ready = '{.status.conditions[?(@.type=="Ready")]'
            out = kubectl("get", "node", self.node_name, "-o", f"jsonpath={ready}.status}} {ready}.message}}")
            last = (out.stdout or out.stderr).strip()
            if out.returncode == 0 and last.startswith("True"):
                return time.monotonic() - begin
            time.sleep(0.2)
        raise KubeletError(
            f"node {self.node_name} not Ready after {timeout:.0f}s ({last}):\n{log_tail(self.log_path, 40)}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the kubelet by pid (it leaves its pods running; the caller sweeps them)."""
        self._stop_daemon(timeout)
