"""Pure control rules: no I/O, no Kubernetes, no clocks of their own (time is passed in).

- :mod:`mbcas.policy.node` — the agent's node plan: capacity, weights, floors and caps, the
  Nash-social-welfare solve, headroom, millicore rounding, hysteresis and decision intervals.
- :mod:`mbcas.policy.resize` — the controller's safety rules: step caps, per-pod minimum interval,
  deadband, failure cooldown with backoff, a global resize rate.

Import from the submodules; this package re-exports nothing so the two halves stay independent.
"""

__all__: list[str] = []
