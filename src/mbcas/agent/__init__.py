"""The agent: one per node (a DaemonSet), it decides each managed pod's CPU limit and writes it down.

Once per tick it runs the node loop sense -> demand -> plan -> write: it senses the kernel's
signals of every pod bound to its node (CPU usage, throttling, PSI, read from the pods' cgroups by
:mod:`mbcas.cgroups`; the pods come from a watched cache in :mod:`mbcas.kube.pods`), hands them to
the pure planner :class:`mbcas.policy.node.NodePlanner`, which turns them into a smoothed demand per
pod (:mod:`mbcas.demand`) and plans the node (capacity, the Nash-social-welfare market of
:mod:`mbcas.market`, stability), and writes each managed pod's decision as a PodAllocation
(:mod:`mbcas.kube.store`), which the controller then applies as an in-place resize. The agent
never resizes a pod itself.

- :mod:`mbcas.agent.loop` — :class:`~mbcas.agent.loop.NodeAgent`, the tick: sensing, planning,
  writing and deleting PodAllocations, API backoff, infeasibility Events;
- :mod:`mbcas.agent.refresh` — when an unchanged decision is rewritten so the controller never
  sees it stale;
- :mod:`mbcas.agent.config` — ``AgentConfig`` (``MBCAS_AGENT_*``, flags) and the live ConfigMap
  (``LiveConfig``: rollout mode, selectors, market settings);
- :mod:`mbcas.agent.selectors` — the label selectors that opt pods in or out;
- :mod:`mbcas.agent.snapshot` — node snapshots (``mbcas agent --once --dry-run -o json``, ``mbcas plan``);
- :mod:`mbcas.agent.metrics` and :mod:`mbcas.agent.health` — Prometheus metrics, ``/healthz``
  and ``/readyz``.

The ``mbcas agent`` command (:mod:`mbcas.cli.agent`) builds these from the configuration and runs
the loop.
"""

__all__: list[str] = []
