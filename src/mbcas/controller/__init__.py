"""The controller: applies PodAllocation decisions as in-place pod resizes, safely.

- :mod:`mbcas.controller.main` — every kopf decorator, and :class:`~mbcas.controller.main.Controller`;
- :mod:`mbcas.controller.reconciler` — caches, work queue (:mod:`mbcas.kube.workqueue`), workers,
  status and Events;
- :mod:`mbcas.controller.status` — the status a decision reports, and the Events posted;
- :mod:`mbcas.controller.decide` — the pure decision for one allocation against its pod;
- :mod:`mbcas.controller.config` — ``ControllerConfig`` (``MBCAS_CONTROLLER_*``);
- :mod:`mbcas.controller.metrics` — Prometheus metrics on a per-controller registry.
"""

__all__: list[str] = []
