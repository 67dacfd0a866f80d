"""Demand estimation: pure, vectorised, no I/O and no Kubernetes.

:class:`Signals` is the one bundle of per-pod kernel signals (usage, throttling, PSI) that sensing,
the planner and the simulator share. :func:`estimate_demand` turns one interval's signals into a demand
in cores and a demand normalised to the pod's limit; :class:`DemandTracker` smooths it per pod UID
(fast up, slow down) and says which pods are warm. :class:`DemandConfig` holds every parameter.
The model and its limits are documented in :mod:`mbcas.demand.estimate` and ``docs/sensing.md``.
"""

from mbcas.demand.config import DemandConfig
from mbcas.demand.estimate import DemandEstimate, estimate_demand
from mbcas.demand.signals import FloatArray, Signals, pod_array
from mbcas.demand.tracker import DemandTracker

__all__ = [
    "DemandConfig",
    "DemandEstimate",
    "DemandTracker",
    "FloatArray",
    "Signals",
    "estimate_demand",
    "pod_array",
]
