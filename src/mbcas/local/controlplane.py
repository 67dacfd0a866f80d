"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

:class:`ControlPlane` generates certificates, picks free ports (several harnesses can run at once
on one machine), starts etcd with ``--unsafe-no-fsync``, the apiserver with RBAC and Node
authorization, service-account signing keys and an admin client certificate in
``system:masters``, and the controller-manager with the garbage-collector, namespace and
service-account controllers. It waits for ``/readyz`` and writes an admin kubeconfig. Stopping
terminates every process by pid and removes the state directory.

The ``ServiceAccount`` admission plugin is disabled so that creating a pod never races the
service-account controller (which still creates each namespace's ``default`` account); pods
therefore get no token volume, which nothing here needs because no container really runs.

With ``workloads=True`` (the real node, :mod:`mbcas.local.realnode`) it runs what a Helm install
onto a real kubelet needs as well: kube-scheduler, the daemonset, deployment and replicaset
controllers, the root CA publisher, and the ``ServiceAccount`` admission plugin, so that pods get
their projected token and ``kube-root-ca.crt``.

Use it as a context manager::

    with ControlPlane() as cp:
        cp.kubectl("get", "--raw", "/version")
        core = kubernetes.client.CoreV1Api(cp.api_client())
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mbcas.local.build import Binaries, ensure_binaries
from mbcas.local.certs import ClusterCerts, generate_certs, write_kubeconfig
from mbcas.local.procs import (
    ProcessError,
    StartStop,
    free_port,
    log_tail,
    pid_alive,
    start_process,
    stop_pid,
    stop_process,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = ["ControlPlane", "ControlPlaneError", "advertise_address"]

SERVICE_CIDR = "10.96.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KCM_CONTROLLERS = ",".join(
    (
        "garbage-collector-controller",
        "namespace-controller",
        "serviceaccount-controller",
        "pod-garbage-collector-controller",
    )
)
# Added for workloads on a real node (DaemonSet, Deployment, pods with ServiceAccount tokens).
KCM_WORKLOAD_CONTROLLERS = ",".join(
    (
        "daemonset-controller",
        "deployment-controller",
        "replicaset-controller",
        "root-ca-certificate-publisher-controller",
        "node-lifecycle-controller",
    )
)
_PORT_RETRIES = 3
_TMP_PREFIX = "mbcas-cp-"


class ControlPlaneError(RuntimeError):
    """The control plane could not start or was used before start()."""


def advertise_address() -> str:
    """The machine's non-loopback IPv4 address (the source of its default route), else loopback."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.254", 9))  # no packet is sent: this only selects a source address
        addr: str = sock.getsockname()[0]
        if addr and not addr.startswith("127."):
            return addr
    return "127.0.0.1"


def _remove_stale_state_dirs() -> None:
    """Remove temp state dirs of control planes whose Python process died without cleaning up
    (SIGKILL); their components died with it (PR_SET_PDEATHSIG)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_TMP_PREFIX}*-*"):
        owner = path.name[len(_TMP_PREFIX) :].partition("-")[0]
        if owner.isdigit() and int(owner) != os.getpid() and not pid_alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)


def _stderr_log(msg: str) -> None:
    print(f"[mbcas cluster] {msg}", file=sys.stderr, flush=True)


@dataclass
class _Component:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    pid: int | None = None


@dataclass
class ControlPlane(StartStop):
    """etcd + kube-apiserver (+ kube-controller-manager) on loopback, with an admin kubeconfig.

    ``state_dir`` defaults to a fresh temp directory, removed on stop. ``detached`` starts the
    processes in their own sessions so they survive this Python process (``mbcas cluster up``).
    """

    state_dir: Path | None = None
    binaries: Binaries | None = None
    detached: bool = False
    controller_manager: bool = True
    build: bool = True
    log: Callable[[str], None] = _stderr_log
    ready_timeout: float = 90.0
    workloads: bool = False
    scheduler: Path | None = None
    """kube-scheduler binary for ``workloads`` (default: built into the cache with the kubelet)."""
    _components: dict[str, _Component] = field(default_factory=dict, init=False, repr=False)
    _owns_state_dir: bool = field(default=False, init=False, repr=False)
    _certs: ClusterCerts | None = field(default=None, init=False, repr=False)
    _etcd_port: int = field(default=0, init=False, repr=False)
    _apiserver_port: int = field(default=0, init=False, repr=False)
    _advertise: str = field(default="127.0.0.1", init=False, repr=False)
    started_in: float = field(default=0.0, init=False)

    # ---------------------------------------------------------------- properties

    @property
    def url(self) -> str:
        """The apiserver's https URL."""
        self._require_started()
        return f"https://127.0.0.1:{self._apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        """Path of the admin kubeconfig (client certificate in ``system:masters``)."""
        self._require_started()
        assert self.state_dir is not None
        return self.state_dir / "admin.kubeconfig"

    @property
    def pids(self) -> dict[str, int]:
        """Component name -> pid of the running processes."""
        return {n: c.pid for n, c in self._components.items() if c.pid is not None}

    @property
    def certs(self) -> ClusterCerts:
        """The generated certificates (CA, serving, admin, service-account keys)."""
        self._require_started()
        assert self._certs is not None
        return self._certs

    @property
    def kubectl_path(self) -> Path:
        """The kubectl to use: the one built at the server's version, else the one on PATH."""
        assert self.binaries is not None
        if self.binaries.kubectl is not None:
            return self.binaries.kubectl
        found = shutil.which("kubectl")
        if found is None:
            raise ControlPlaneError("no kubectl: run 'make cluster-build' or put kubectl on PATH")
        return Path(found)

    def _require_started(self) -> None:
        if not self._apiserver_port or self.state_dir is None:
            raise ControlPlaneError("the control plane is not started")

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> ControlPlane:
        """Generate certificates, start the components and wait until the apiserver is ready."""
        begin = time.monotonic()
        if self.binaries is None:
            self.binaries = ensure_binaries(build=self.build)
        if self.state_dir is None:
            _remove_stale_state_dirs()
            self.state_dir = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-"))
            self._owns_state_dir = True
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._owns_state_dir = True
        try:
            self._advertise = advertise_address()
            self._certs = generate_certs(
                self.state_dir / "pki",
                ip_sans=sorted({"127.0.0.1", self._advertise, "10.96.0.1"}),
                dns_sans=[
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                ],
            )
            self._start_etcd()
            self._start_apiserver()
            write_kubeconfig(self.state_dir / "admin.kubeconfig", self.url, self._certs)
            if self.controller_manager and self.binaries.kube_controller_manager is not None:
                self._start_controller_manager()
            if self.workloads:
                self._start_scheduler()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - begin
        self.log(f"control plane ready at {self.url} in {self.started_in:.1f}s (state in {self.state_dir})")
        return self

    def stop(self) -> None:
        """Stop every component (controller-manager, apiserver, etcd) and remove the state dir."""
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            comp = self._components.pop(name, None)
            if comp is not None:
                # The apiserver's graceful shutdown can hang > 20 s with watches open: SIGKILL sooner.
                self._stop_component(comp, timeout=5.0 if name == "kube-apiserver" else 10.0)
        if self._owns_state_dir and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self._owns_state_dir = False
        self._apiserver_port = 0

    def restart_apiserver(self) -> None:
        """Stop the apiserver and start it again on the same port (tests of client resilience).

        With clients' watches open the apiserver's graceful shutdown hangs well past the point
        where it stopped listening, so it gets SIGKILL after 2 s (a crash, as far as clients see).
        """
        self._require_started()
        comp = self._components.pop("kube-apiserver")
        self._stop_component(comp, timeout=2.0)
        self._launch(comp)
        self._wait_ready(comp)

    # ---------------------------------------------------------------- clients

    def kubectl(
        self, *args: str, check: bool = False, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl (at the server's version) against this control plane as admin."""
        argv = [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args]
        return subprocess.run(argv, capture_output=True, text=True, check=check, input=input, timeout=timeout)

    def api_client(self) -> ApiClient:
        """A new ``kubernetes.client.ApiClient`` for the admin user."""
        from kubernetes import config

        client: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )
        return client

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET ``path`` on the apiserver as admin; returns (HTTP status, body)."""
        self._require_started()
        assert self._certs is not None
        ctx = ssl.create_default_context(cafile=str(self._certs.ca_cert))
        ctx.load_cert_chain(str(self._certs.admin_cert), str(self._certs.admin_key))
        try:
            with urllib.request.urlopen(self.url + path, context=ctx, timeout=timeout) as resp:
                return int(resp.status), resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode(errors="replace")

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of this control plane (written as state.json by ``cluster up``)."""
        self._require_started()
        return {
            "url": self.url,
            "kubeconfig": str(self.kubeconfig),
            "state_dir": str(self.state_dir),
            "pids": self.pids,
            "executables": {n: c.argv[0] for n, c in self._components.items()},
            "started_in_seconds": round(self.started_in, 2),
        }

    # ---------------------------------------------------------------- components

    def _launch(self, comp: _Component) -> None:
        comp.proc = start_process(comp.argv, comp.log, detached=self.detached)
        comp.pid = comp.proc.pid
        self._components[comp.name] = comp

    def _launch_and_check(self, comp: _Component) -> None:
        """Launch a component without a readiness endpoint; fail if it exits at once."""
        self._launch(comp)
        time.sleep(0.3)
        if comp.proc is not None and comp.proc.poll() is not None:
            raise ProcessError(f"{comp.name} exited at start:\n{log_tail(comp.log)}")

    def _stop_component(self, comp: _Component, timeout: float = 10.0) -> None:
        if comp.proc is not None:
            stop_process(comp.proc, timeout)
        elif comp.pid is not None:
            stop_pid(comp.pid, timeout)
        comp.proc = None
        comp.pid = None

    def _start_etcd(self) -> None:
        assert self.binaries is not None and self.state_dir is not None
        for attempt in range(_PORT_RETRIES):
            client_port, peer_port = free_port(), free_port()
            data = self.state_dir / "etcd-data"
            shutil.rmtree(data, ignore_errors=True)
            comp = _Component(
                "etcd",
                [
                    str(self.binaries.etcd),
                    "--name=default",
                    f"--data-dir={data}",
                    f"--listen-client-urls=http://127.0.0.1:{client_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{client_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
                self.state_dir / "etcd.log",
            )
            self._launch(comp)
            if self._wait_http(comp, f"http://127.0.0.1:{client_port}/health", attempt):
                self._etcd_port = client_port
                return
        raise ControlPlaneError("etcd could not get free ports")

    def _start_apiserver(self) -> None:
        assert self.binaries is not None and self.state_dir is not None and self._certs is not None
        certs = self._certs
        for attempt in range(_PORT_RETRIES):
            port = free_port()
            argv = [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self._etcd_port}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--advertise-address={self._advertise}",
                f"--tls-cert-file={certs.serving_cert}",
                f"--tls-private-key-file={certs.serving_key}",
                f"--client-ca-file={certs.ca_cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={certs.sa_pub}",
                f"--service-account-signing-key-file={certs.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                f"--cert-dir={self.state_dir / 'pki'}",
                "--v=1",
            ]
            if not self.workloads:
                argv.append("--disable-admission-plugins=ServiceAccount")
            if self._advertise.startswith("127."):
                argv.append("--endpoint-reconciler-type=none")
            self._apiserver_port = port
            comp = _Component("kube-apiserver", argv, self.state_dir / "kube-apiserver.log")
            self._launch(comp)
            if self._wait_ready(comp, attempt):
                return
        raise ControlPlaneError("kube-apiserver could not get a free port")

    def _start_controller_manager(self) -> None:
        assert self.binaries is not None and self.state_dir is not None
        assert self.binaries.kube_controller_manager is not None
        comp = _Component(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                f"--controllers={KCM_CONTROLLERS}"
                + (f",{KCM_WORKLOAD_CONTROLLERS}" if self.workloads else ""),
                f"--root-ca-file={self.certs.ca_cert}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
            self.state_dir / "kube-controller-manager.log",
        )
        self._launch_and_check(comp)

    def _start_scheduler(self) -> None:
        assert self.state_dir is not None
        if self.scheduler is None:
            from mbcas.local.build import ensure_node_binaries

            self.scheduler = ensure_node_binaries(build=self.build).kube_scheduler
        comp = _Component(
            "kube-scheduler",
            [
                str(self.scheduler),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
            self.state_dir / "kube-scheduler.log",
        )
        self._launch_and_check(comp)

    def _exited(self, comp: _Component, attempt: int) -> bool:
        """True if the component died; raises unless it died of a port clash we can retry."""
        if comp.proc is None or comp.proc.poll() is None:
            return False
        tail = log_tail(comp.log)
        self._components.pop(comp.name, None)
        if "address already in use" in tail and attempt + 1 < _PORT_RETRIES:
            self.log(f"{comp.name}: port taken, retrying with another")
            return True
        raise ProcessError(f"{comp.name} exited with code {comp.proc.returncode}:\n{tail}")

    def _wait_http(self, comp: _Component, url: str, attempt: int) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._exited(comp, attempt):
                return False
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200 and b"true" in resp.read():
                    return True
            time.sleep(0.1)
        raise ControlPlaneError(f"{comp.name} not healthy after {self.ready_timeout}s:\n{log_tail(comp.log)}")

    def _wait_ready(self, comp: _Component, attempt: int = _PORT_RETRIES) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        last = ""
        while time.monotonic() < deadline:
            if self._exited(comp, attempt):
                return False
            try:
                status, body = self.get("/readyz", timeout=2)
                if status == 200:
                    return True
                last = body[-500:]
            except (OSError, ssl.SSLError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"kube-apiserver not ready after {self.ready_timeout}s ({last}):\n{log_tail(comp.log)}"
        )


def _main() -> int:  # pragma: no cover - manual smoke test
    with ControlPlane() as cp:
        print(json.dumps(cp.describe(), indent=2))
        print(cp.kubectl("get", "--raw", "/version").stdout)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
