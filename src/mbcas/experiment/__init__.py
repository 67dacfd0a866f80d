"""The real-kernel experiment: static limits vs the full MBCAS loop on real processes.

``make evaluate`` runs ``python -m mbcas.experiment --out report/experiment``. It needs root
(to create cgroups), the local control plane's binaries (``make cluster-build``) and the
``mbcas agent`` and ``mbcas controller`` commands. Everything runs for real:

1. ``mbcas cluster up --kernel`` starts etcd, kube-apiserver and kube-controller-manager and the
   node emulator, which runs each pod as a CPU-burning process in its own cgroup with the pod's
   CPU limit as a real CFS quota (``docs/local-control-plane.md``). The emulated node has
   ``--node-cpu`` cores (default 1) and, so that contention is real and does not depend on what
   else runs on the machine, the experiment puts the same number of cores as a CFS quota on the
   emulated node's ``kubepods.slice`` (as a kubelet's node allocatable would).
2. For each scenario (``spike``, ``contention``) and each mode:

   * ``static`` — the pods keep the limits they were created with (limit = request);
   * ``mbcas`` — ``mbcas controller`` and ``mbcas agent`` (1 s tick, no reserve: the node quota
     is already what the pods share) run against the cluster and resize the pods in place.

   Pods are created with their demand in the emulator's annotation (read only by the emulator's
   burner, never by MBCAS), given ``warmup_s`` to settle, and measured for ``measure_s``.
   In ``spike`` the experiment changes one pod's demand annotation at ``change_at_s``.
3. Measured from the **kernel**, per pod over the window (cgroup counters read with
   :class:`mbcas.cgroups.reader.CgroupReader`): CPU usage, throttled time (v1 ``throttled_time``
   or v2 ``throttled_usec``), PSI ``full`` time. From the **API** (``kubectl get -w`` streams):
   the reaction time from the demand change to the first reported (kubelet-applied) limit that
   covers 90 % of the new demand (and ``first_response_s``, until the first raise of the applied
   limit), resizes (pod ``metadata.generation`` increments) and
   PodAllocation writes (watch events), per pod per minute.

The experiment imports neither ``kubernetes`` nor :mod:`mbcas.local` (the layer contracts keep
:mod:`mbcas.experiment` away from both): it drives the cluster through ``mbcas`` and ``kubectl``
subprocesses. It always tears the cluster down (``mbcas cluster down``), which kills every
burner and removes the cgroups, even when a run fails. Runs are short (2-core machine): about
6 minutes for both scenarios and modes.

The modules, one concept each:

- :mod:`mbcas.experiment.scenarios` — the scenarios (pods, requests, demands, windows) and
  :class:`~mbcas.experiment.scenarios.ExperimentError`;
- :mod:`mbcas.experiment.cluster` — driving the local cluster: ``mbcas cluster up/down``,
  kubectl, watch streams, the ``mbcas agent``/``controller`` processes, the pods;
- :mod:`mbcas.experiment.measure` — the kernel's counters: container cgroup paths, the node's
  CFS quota, per-pod deltas over the window;
- :mod:`mbcas.experiment.run` — one scenario in one mode, and every scenario in every mode;
- :mod:`mbcas.experiment.summary` — the measurements of one run (pure);
- :mod:`mbcas.experiment.report` — ``results.json``, ``report.md`` and the plots;
- :mod:`mbcas.experiment.main` — the command line (``python -m mbcas.experiment``).

Import from the submodules; this package re-exports nothing.
"""

__all__: list[str] = []
