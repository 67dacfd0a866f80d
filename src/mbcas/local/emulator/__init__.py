"""A node emulator: a kubelet stand-in that makes a local control plane look like a real cluster.

No kubelet can run on the development machine, so :class:`NodeEmulator` does the parts of its job
that MBCAS depends on, through the real API:

* registers Nodes that look real (``kubernetes.io/os=linux``, hostname label, capacity and
  allocatable, ``Ready``, node info) and renews their Leases;
* binds pods that name no node to the least-loaded emulated node that fits, through the
  ``pods/binding`` subresource (no scheduler runs);
* admits pods bound to its nodes (``OutOfcpu``/``OutOfmemory`` as the kubelet does when the node
  is full), then marks them Running with container statuses carrying ``resources`` and
  ``allocatedResources``, ``qosClass``, IPs and conditions;
* handles in-place resize like the kubelet's allocation manager: when the spec's resources differ
  from what is allocated it sets ``PodResizePending`` (``Infeasible`` when the pod could never fit
  the node's allocatable, ``Deferred`` when it does not fit the room left now), or accepts the
  resize, sets ``PodResizeInProgress``, actuates (in kernel mode: writes the quota), and after
  ``resize_delay`` seconds (the kubelet's PLEG relist is ~1 s) reports the new resources and
  clears the condition. Deferred resizes are retried whenever room is freed on the node;
* finalises deleted pods (gracefully deleting pods stay ``Terminating`` without a kubelet).

With a :class:`~mbcas.local.kernel.KernelMode`, each container also runs a real CPU burner in a
real cgroup laid out like a systemd-driver node (see :mod:`mbcas.local.kernel`).

It runs in background threads (``start()``/``stop()`` or a ``with`` block) or as a process:
``python -m mbcas.local.emulator --kubeconfig K --node NAME:CPU:MEMORY``. Every difference from a
real kubelet is listed in ``docs/local-control-plane.md``.

The modules, one part of the job each:

- :mod:`mbcas.local.emulator.facade` — :class:`NodeEmulator` (wiring, threads, the worker on a
  :class:`~mbcas.kube.workqueue.WorkQueue`) and :func:`main`;
- :mod:`mbcas.local.emulator.nodes` — :class:`NodeSpec`; Node registration, status, Leases and
  heartbeats;
- :mod:`mbcas.local.emulator.podcache` — the pod watches and the cache they feed;
- :mod:`mbcas.local.emulator.scheduler` — binding unscheduled pods, admission;
- :mod:`mbcas.local.emulator.kubelet` — running admitted pods: resize handling, burner demand,
  status writes, finalising deleted pods;
- :mod:`mbcas.local.emulator.pods` — what is remembered about an admitted pod and the status it
  reports (pure).
"""

from mbcas.local.emulator.facade import NodeEmulator, main
from mbcas.local.emulator.kubelet import DEMAND_ANNOTATION
from mbcas.local.emulator.nodes import NodeSpec

__all__ = ["DEMAND_ANNOTATION", "NodeEmulator", "NodeSpec", "main"]
