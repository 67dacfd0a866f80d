"""``make deploy-local``: the Helm chart installed on the real node, with the locally built images.

:func:`deploy` imports the agent, controller and burner images (:mod:`mbcas.local.images`) into the
node's containerd and runs ``helm upgrade --install mbcas`` into ``mbcas-system`` with the chart's
defaults except:

- the images: ``image.registry=localhost/mbcas``, each image's content tag, ``pullPolicy=Never``
  (no registry exists; a missing image must fail, not be pulled);
- the networking values for a machine where only loopback carries traffic: ``network.hostNetwork``
  (the pods' own network namespaces cannot reach the apiserver on loopback), ``network.probeHost``
  = 127.0.0.1 (the kubelet probes loopback instead of the node's address) and the apiserver's
  loopback host and port as the in-cluster address (never the kubernetes Service IP).

It then waits for the agent's DaemonSet pod and one controller pod to be Ready. With host
networking the controller's ports bind on the node, so of the chart's two replicas one runs and
the scheduler keeps the other Pending (no free ports on the only node): that is the chart's
default replica count meeting a one-node cluster, not an error.

Command line: ``python -m mbcas.local.deploylocal [--name node]`` against ``make node``'s cluster.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mbcas.local import helm
from mbcas.local.containerd import Containerd
from mbcas.local.images import REGISTRY, ImageBuildError, ImageSet, ensure_images

__all__ = ["LocalCluster", "deploy", "local_values", "wait_mbcas_ready"]

NAMESPACE = helm.DEFAULT_NAMESPACE
RELEASE = helm.DEFAULT_RELEASE

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _log(msg: str) -> None:
    print(f"[mbcas deploy-local] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LocalCluster:
    """What a deployment needs to know about the real-node cluster."""

    kubeconfig: Path
    apiserver_url: str
    containerd_socket: Path

    @property
    def apiserver_port(self) -> int:
        port = urllib.parse.urlsplit(self.apiserver_url).port
        if port is None:
            raise ValueError(f"no port in {self.apiserver_url}")
        return port


def local_values(images: ImageSet, apiserver_port: int) -> list[str]:
    """The ``--set`` values of a local install (everything else stays at the chart's default)."""
    return [
        f"image.registry={REGISTRY}",
        f"agent.image.tag={images.agent.tag}",
        f"controller.image.tag={images.controller.tag}",
        "image.pullPolicy=Never",
        "network.hostNetwork=true",
        "network.probeHost=127.0.0.1",
        "network.apiServerHost=127.0.0.1",
        f"network.apiServerPort={apiserver_port}",
    ]


def _ready_pods(kubectl: Kubectl, component: str) -> list[str]:
    out = kubectl(
        "get", "pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/component={component}", "-o", "json"
    )  # fmt: skip
    if out.returncode != 0:
        return []
    ready: list[str] = []
    for pod in json.loads(out.stdout).get("items", []):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        conditions = pod.get("status", {}).get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            ready.append(pod["metadata"]["name"])
    return ready


def wait_mbcas_ready(kubectl: Kubectl, timeout: float = 180.0) -> dict[str, list[str]]:
    """Wait for one Ready agent pod and one Ready controller pod; return their names."""
    deadline = time.monotonic() + timeout
    while True:
        ready = {c: _ready_pods(kubectl, c) for c in ("agent", "controller")}
        if all(ready.values()):
            return ready
        if time.monotonic() > deadline:
            pods = kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout
            events = kubectl("get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp").stdout
            raise TimeoutError(f"MBCAS not Ready after {timeout:.0f}s:\n{pods}\n{events[-3000:]}")
        time.sleep(1.0)


def deploy(
    cluster: LocalCluster,
    kubectl: Kubectl,
    *,
    images: ImageSet | None = None,
    log: Callable[[str], None] = _log,
    timeout: float = 180.0,
) -> ImageSet:
    """Import the images into the node and install the chart; wait until MBCAS is Ready."""
    images = images or ensure_images(log=log)
    containerd = Containerd(
        cluster.containerd_socket.parent, sandbox_image="", cni_conf_dir=Path(), cni_bin_dir=Path()
    )
    begin = time.monotonic()
    for archive in images.archives():
        containerd.import_image(archive)
    log(f"imported the agent, controller and burner images into the node in {time.monotonic() - begin:.1f}s")
    report = helm.install(cluster.kubeconfig, set_values=local_values(images, cluster.apiserver_port))
    log(report.strip().splitlines()[0] if report.strip() else "helm install done")
    ready = wait_mbcas_ready(kubectl, timeout)
    log(f"MBCAS Ready in {time.monotonic() - begin:.1f}s: {ready}")
    return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mbcas.local.deploylocal",
        description="Install the MBCAS chart on the real node of `make node` (images built here).",
    )
    parser.add_argument(
        "--name", default="node", help="the cluster started by `mbcas cluster up --real-node`"
    )
    args = parser.parse_args(argv)
    from mbcas.local.detached import state_dir

    try:
        state = json.loads((state_dir(args.name) / "state.json").read_text())
        node = state["real_node"]
    except (OSError, ValueError, KeyError):
        print(f"error: no real-node cluster {args.name!r}: run 'make node' first", file=sys.stderr)
        return 1
    cluster = LocalCluster(Path(state["kubeconfig"]), state["url"], Path(node["containerd_socket"]))
    kubectl_bin = Path(state["executables"]["kube-apiserver"]).with_name("kubectl")

    def kubectl(*cmd: str) -> subprocess.CompletedProcess[str]:
        argv = [str(kubectl_bin), f"--kubeconfig={cluster.kubeconfig}", *cmd]
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)

    try:
        deploy(cluster, kubectl)
    except (helm.HelmError, ImageBuildError, TimeoutError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
