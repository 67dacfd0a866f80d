"""The node emulator as one object: :class:`NodeEmulator` wires its parts and runs their threads.

:meth:`NodeEmulator.start` loads the client configuration, opens the kernel sandbox (kernel mode),
registers the nodes (:mod:`~mbcas.local.emulator.nodes`) and starts the threads: one watch per
scope feeding the pod cache (:mod:`~mbcas.local.emulator.podcache`), one heartbeat, and one worker
that takes pod keys from a :class:`~mbcas.kube.workqueue.WorkQueue` (the controller's delaying,
de-duplicating queue) and reconciles each: an unscheduled pod goes to the scheduler
(:mod:`~mbcas.local.emulator.scheduler`), a pod on one of our nodes to the kubelet
(:mod:`~mbcas.local.emulator.kubelet`). A reconcile that fails is retried with backoff
(0.5 s .. 30 s); one bad pod never stops the loop. :meth:`NodeEmulator.stop` stops the threads,
kills every process, removes every cgroup and deletes the Nodes. :func:`main` runs it as a process
(``python -m mbcas.local.emulator``, used by ``mbcas cluster up``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from mbcas.kube.workqueue import WorkQueue
from mbcas.local.emulator.kubelet import Kubelet
from mbcas.local.emulator.nodes import EmulatedNodes, NodeSpec
from mbcas.local.emulator.podcache import UNSCHEDULED, PodCache
from mbcas.local.emulator.scheduler import Scheduler
from mbcas.local.kernel import KernelMode, KernelSandbox
from mbcas.local.procs import StartStop

__all__ = ["NodeEmulator", "main"]

log = logging.getLogger(__name__)

_DESCRIPTION = (
    "A node emulator: a kubelet stand-in that makes a local control plane look like a real cluster."
)


@dataclass
class NodeEmulator(StartStop):
    """Emulated kubelets for ``nodes``, driven by watches on the real apiserver.

    Give either ``kubeconfig`` (a path) or ``api_client`` (its configuration is reused; each
    thread gets its own client).
    """

    kubeconfig: str | Path | None = None
    nodes: Sequence[NodeSpec] = (NodeSpec("mbcas-node-1"),)
    resize_delay: float = 1.0
    kernel: KernelMode | None = None
    api_client: Any = None
    heartbeat: float = 10.0
    resync: float = 30.0
    bind_unscheduled: bool = True
    delete_nodes_on_stop: bool = True
    _config: Any = field(default=None, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False, repr=False)
    _queue: WorkQueue = field(default_factory=WorkQueue, init=False, repr=False)
    _sandbox: KernelSandbox | None = field(default=None, init=False, repr=False)
    _core: Any = field(default=None, init=False, repr=False)
    _nodes: EmulatedNodes | None = field(default=None, init=False, repr=False)
    _cache: PodCache | None = field(default=None, init=False, repr=False)
    _kubelet: Kubelet | None = field(default=None, init=False, repr=False)
    _scheduler: Scheduler | None = field(default=None, init=False, repr=False)
    _failures: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    errors: list[str] = field(default_factory=list, init=False)

    # ---------------------------------------------------------------- public API

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def sandbox(self) -> KernelSandbox | None:
        """The kernel sandbox (cgroups + burners) when kernel mode is on and available."""
        return self._sandbox

    def start(self) -> NodeEmulator:
        """Register the nodes and start the watch, worker and heartbeat threads."""
        if len({n.name for n in self.nodes}) != len(self.nodes):
            raise ValueError("node names must be unique")
        if self.api_client is not None:
            self._config = self.api_client.configuration
        elif self.kubeconfig is not None:
            self._config = k8s.Configuration()
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(self.kubeconfig), client_configuration=self._config
            )
        else:
            raise ValueError("NodeEmulator needs a kubeconfig or an api_client")
        self._stop.clear()
        self._queue = WorkQueue()
        self._core = self._new_core()
        if self.kernel is not None:
            self._sandbox = KernelSandbox(self.kernel)
            if not self._sandbox.available:
                log.warning("node emulator: kernel mode unavailable, pods run without processes: %s",
                            self._sandbox.reason)  # fmt: skip
        nodes = self._nodes = EmulatedNodes(self._core, self.nodes, self._sandbox)
        cache = self._cache = PodCache(
            self.node_names,
            self._new_core,
            self._queue.add,
            stop=self._stop,
            note_error=self._note_error,
            resync=self.resync,
        )
        kubelet = self._kubelet = Kubelet(
            self._core,
            nodes,
            cache,
            sandbox=self._sandbox,
            resize_delay=self.resize_delay,
            enqueue=self._queue.add,
        )
        self._scheduler = Scheduler(self._core, nodes, kubelet.node_used)
        try:
            nodes.register_all()
        except BaseException:
            self._close_sandbox()
            raise
        scopes = [*self.node_names]
        if self.bind_unscheduled:
            scopes.append(UNSCHEDULED)
        for scope in scopes:
            cache.add_scope(scope)
            self._spawn(f"watch-{scope or 'unscheduled'}", cache.watch_loop, scope)
        self._spawn("worker", self._worker_loop)
        self._spawn("heartbeat", nodes.heartbeat_loop, self._stop, self.heartbeat, self._note_error)
        return self

    def stop(self) -> None:
        """Stop the threads, kill every process and remove every cgroup; delete the Nodes."""
        self._stop.set()
        self._queue.shutdown()  # wake the worker
        if self._cache is not None:
            self._cache.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._close_sandbox()
        if self.delete_nodes_on_stop and self._core is not None:
            for name in self.node_names:
                with contextlib.suppress(Exception):
                    self._core.delete_node(name, _request_timeout=5)

    def pod_state(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The emulator's view of a pod (allocated/actuated resources, pending), for tests."""
        if self._kubelet is None:
            return None
        return self._kubelet.pod_view(f"{namespace}/{name}")

    # ---------------------------------------------------------------- plumbing

    def _new_core(self) -> Any:
        return k8s.CoreV1Api(k8s.ApiClient(self._config))

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"mbcas-emulator-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _close_sandbox(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()

    def _note_error(self, what: str, exc: BaseException) -> None:
        msg = f"{what}: {exc.__class__.__name__}: {str(exc)[:300]}"
        self.errors.append(msg)
        del self.errors[:-50]
        if not self._stop.is_set():
            log.warning("node emulator: %s", msg)

    # ---------------------------------------------------------------- worker

    def _worker_loop(self) -> None:
        queue = self._queue
        while not self._stop.is_set():
            key = queue.get(timeout=0.5)
            if key is None:
                continue
            retry: float | None = None
            try:
                self._reconcile(key)
                self._failures.pop(key, None)
            except Exception as exc:
                # One bad pod never stops the loop: retry it with backoff (0.5 s .. 30 s).
                count = self._failures[key] = self._failures.get(key, 0) + 1
                self._note_error(f"reconcile {key} (attempt {count})", exc)
                retry = min(30.0, 0.5 * 2 ** (count - 1))
            finally:
                queue.done(key, requeue_after=retry)

    def _reconcile(self, key: str) -> None:
        assert self._cache is not None and self._kubelet is not None and self._scheduler is not None
        pod = self._cache.lookup(key)
        self._kubelet.drop_replaced(key, pod)
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName") or UNSCHEDULED
        if node == UNSCHEDULED:
            if self.bind_unscheduled and not pod["metadata"].get("deletionTimestamp"):
                self._scheduler.bind(pod)
            return
        if node in self.node_names:
            self._kubelet.sync(pod, node)


# -------------------------------------------------------------------- process entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGTERM/SIGINT (used by ``mbcas cluster up``)."""
    parser = argparse.ArgumentParser(prog="python -m mbcas.local.emulator", description=_DESCRIPTION)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", action="append", default=[], help="NAME[:CPU[:MEMORY]] (repeatable)")
    parser.add_argument("--resize-delay", type=float, default=1.0)
    parser.add_argument(
        "--kernel", action="store_true", help="run real burners in real cgroups when possible"
    )
    parser.add_argument("--cgroup-prefix", default=None, help="cgroup prefix for kernel mode")
    parser.add_argument("--cgroup-root", default="/sys/fs/cgroup")
    parser.add_argument(
        "--ready-file", default=None, help="write this file (with the cgroup prefix) once started"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        nodes = [NodeSpec.parse(n) for n in args.node] or [NodeSpec("mbcas-node-1")]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kernel = KernelMode(root=Path(args.cgroup_root), prefix=args.cgroup_prefix) if args.kernel else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emulator = NodeEmulator(
        kubeconfig=args.kubeconfig, nodes=nodes, resize_delay=args.resize_delay, kernel=kernel
    )
    emulator.start()
    try:
        sandbox = emulator.sandbox
        prefix = sandbox.prefix if sandbox is not None and sandbox.available else ""
        log.info(
            "node emulator running for %s (cgroup prefix %s)",
            ", ".join(emulator.node_names),
            prefix or "none",
        )
        if args.ready_file:
            Path(args.ready_file).write_text(json.dumps({"pid": os.getpid(), "cgroup_prefix": prefix}))
        stop.wait()
    finally:
        emulator.stop()
    return 0
