"""The market: Nash-social-welfare CPU allocation, pure and vectorised.

When the managed pods' limits would exceed the node's overcommit bound, the budget is shared by
maximising ``Σ wᵢ·log xᵢ`` under the budget and per-pod floors and caps (the Eisenberg–Gale
program, i.e. a Fisher market in which each pod spends its CPU request as its budget).
:func:`solve_nsw` solves it exactly by water-filling in ``O(n log n)``, and :func:`nsw_objective`
is the potential the agent exports to show that the loop settles.

The package is unit-free and does no I/O: it imports numpy and nothing else. The planner calls it
in cores (floats). See ``docs/market.md``.
"""

from mbcas.market.objective import nsw_objective
from mbcas.market.solver import InfeasibleError, solve_nsw

__all__ = ["InfeasibleError", "nsw_objective", "solve_nsw"]
