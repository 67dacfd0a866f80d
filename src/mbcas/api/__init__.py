"""What the agent and the controller agree on: the PodAllocation resource and the contract.

- :mod:`mbcas.api.models` — pydantic models of the PodAllocation custom resource (``spec`` is the
  agent's decision, ``status`` the controller's record), mirroring
  ``crds/podallocations.mbcas.io.yaml``;
- :mod:`mbcas.api.contract` — the agreement itself: when a pod already carries a decision (the
  deadband), the limit the controller manages for a pod, staleness and refresh, the settings both
  processes read from the one ConfigMap, and the agent's write rule.

CPU quantities are parsed and formatted by :mod:`mbcas.core.units`. Import from the submodules.
"""

__all__: list[str] = []
