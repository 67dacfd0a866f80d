"""The vocabulary every layer shares: pure, no I/O, stdlib and numpy only.

- :mod:`mbcas.core.qos` — :class:`QoSClass`, Kubernetes' pod QoS classes with the small integer
  codes the planner's numpy arrays hold;
- :mod:`mbcas.core.units` — CPU quantities (Kubernetes strings <-> whole millicores) and the
  cores <-> millicores conversions (millicores carry the suffix ``_mcpu`` everywhere).

This is the bottom layer (below :mod:`mbcas.market`): it imports nothing else from MBCAS. Import
from the submodules.
"""

__all__: list[str] = []
