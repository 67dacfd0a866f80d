"""Demand estimation: pure, vectorised, no I/O and no Kubernetes.

:func:`estimate_demand` turns one interval's kernel signals (usage, throttling, PSI) into a demand
in cores and a demand normalised to the pod's limit; :class:`DemandTracker` smooths it per pod UID
(fast up, slow down) and says which pods are warm. :class:`DemandConfig` holds every parameter.
The model and its limits are documented in :mod:`mbcas.demand.estimate` and ``docs/sensing.md``.
"""

from mbcas.demand.config import DemandConfig
from mbcas.demand.estimate import DemandEstimate, FloatArray, estimate_demand, pod_array
from mbcas.demand.tracker import DemandTracker

__all__ = ["DemandConfig", "DemandEstimate", "DemandTracker", "FloatArray", "estimate_demand", "pod_array"]
