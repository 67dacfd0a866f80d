"""The vocabulary every layer shares: pure, no I/O, stdlib and numpy only.

- :mod:`mbcas.core.qos` — :class:`QoSClass`, Kubernetes' pod QoS classes with the small integer
  codes the planner's numpy arrays hold;
- :mod:`mbcas.core.units` — CPU quantities (Kubernetes strings <-> whole millicores) and the
  cores <-> millicores conversions (millicores carry the suffix ``_mcpu`` everywhere).

This is the bottom layer (below :mod:`mbcas.market`): it imports nothing else from MBCAS.
"""

from mbcas.core.qos import QoSClass
from mbcas.core.units import (
    MCPU_PER_CORE,
    QuantityError,
    cores_to_mcpu,
    format_cpu,
    mcpu_to_cores,
    parse_cpu,
    parse_cpu_cores,
)

__all__ = [
    "MCPU_PER_CORE",
    "QoSClass",
    "QuantityError",
    "cores_to_mcpu",
    "format_cpu",
    "mcpu_to_cores",
    "parse_cpu",
    "parse_cpu_cores",
]
