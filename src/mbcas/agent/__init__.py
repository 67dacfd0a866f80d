"""The agent: one per node (a DaemonSet), it decides each managed pod's CPU limit and writes it down.

Once per tick it runs the node loop sense -> plan -> write: it senses the kernel's
signals of every pod bound to its node (CPU usage, throttling, PSI, read from the pods' cgroups by
:mod:`mbcas.cgroups` into one :class:`mbcas.demand.Signals` bundle; the pods come from a watched
cache in :mod:`mbcas.kube.pods`), hands them to the pure planner
:class:`mbcas.policy.node.NodePlanner` (on the monotonic clock), which bounds each pod's demand
from them (:mod:`mbcas.demand`) and plans the node (estimate -> want -> bound -> gate: limits as
burst caps, their sum within ``limit_overcommit`` x the shareable CPU, trimmed by the
Nash-social-welfare market of :mod:`mbcas.market`), keeping each pod's decision in the node's
:class:`mbcas.policy.ledger.DecisionLedger`; the contract's write rule
(:func:`mbcas.api.contract.plan_writes`) then says which PodAllocations to write, refresh or
delete (:mod:`mbcas.kube.store` writes them), and the controller applies them as in-place
resizes. The agent never resizes a pod itself.

- :mod:`mbcas.agent.loop` — :class:`~mbcas.agent.loop.NodeAgent`, the tick: sensing, planning,
  writing and deleting PodAllocations, API backoff, infeasibility Events;
- :mod:`mbcas.agent.reload` — following the live ConfigMap: polling it, observing only until it
  has been read once, keeping the last good one, naming unknown keys;
- :mod:`mbcas.agent.config` — ``AgentConfig`` (``MBCAS_AGENT_*``, flags; restart to change); the
  live ConfigMap's shape, ``LiveConfig`` (rollout mode, selectors, planner and contract
  settings), is :mod:`mbcas.api.live`, since the controller reads the same document;
- :mod:`mbcas.agent.snapshot` — node snapshots (``mbcas agent --once --dry-run -o json``, ``mbcas plan``);
- :mod:`mbcas.agent.metrics` and :mod:`mbcas.agent.health` — Prometheus metrics, ``/healthz``
  and ``/readyz``.

The ``mbcas agent`` command (:mod:`mbcas.cli.agent`) builds these from the configuration and runs
the loop.
"""

__all__: list[str] = []
