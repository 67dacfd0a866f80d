"""What the kernel says about each pod's demand: pure, vectorised, no I/O and no Kubernetes.

:class:`Signals` is the one bundle of per-pod kernel signals (usage, throttling, PSI) that sensing,
the planner and the simulator share. :func:`demand_bounds` turns one interval's signals into a
lower bound (usage) and an upper bound (usage + throttled time, which reads the pod's runnable
threads, not the CPU withheld) of each pod's demand and says which pods are under pressure;
:class:`Envelope` keeps each pod's largest usage over a sliding window (its burst envelope). The
model and its limits are documented in :mod:`mbcas.demand.bounds` and ``docs/sensing.md``.
"""

from mbcas.demand.bounds import DemandBounds, demand_bounds
from mbcas.demand.envelope import Envelope
from mbcas.demand.signals import FloatArray, Signals, pod_array

__all__ = ["DemandBounds", "Envelope", "FloatArray", "Signals", "demand_bounds", "pod_array"]
