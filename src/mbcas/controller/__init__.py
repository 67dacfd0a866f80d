"""The controller: applies PodAllocation decisions as in-place pod resizes, safely.

- :mod:`mbcas.controller.main` — every kopf decorator, and :class:`~mbcas.controller.main.Controller`;
- :mod:`mbcas.controller.reconciler` — work queue (:mod:`mbcas.kube.workqueue`), workers, retries,
  the reconcile of one allocation;
- :mod:`mbcas.controller.tracker` — what the watch events say: allocations, their pods and nodes;
- :mod:`mbcas.controller.resize_step` — the resize step: the patch, its conflicts and refusals;
- :mod:`mbcas.controller.status` — the status a decision reports, and the Events posted;
- :mod:`mbcas.controller.decide` — the pure decision for one allocation against its pod;
- :mod:`mbcas.controller.config` — ``ControllerConfig`` (``MBCAS_CONTROLLER_*``);
- :mod:`mbcas.controller.metrics` — Prometheus metrics on a per-controller registry.
"""

__all__: list[str] = []
