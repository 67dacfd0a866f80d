"""The market: Nash-social-welfare CPU allocation, pure and vectorised.

The node's CPU is shared by maximising ``Σ wᵢ·log xᵢ`` under the capacity and per-pod floors and
caps (the Eisenberg–Gale program, i.e. a Fisher market in which each pod spends its CPU request
as its budget). :func:`solve_nsw` solves it exactly by water-filling in ``O(n log n)``,
:func:`share_headroom` hands out what is left once every demand is met, :func:`to_mcpu`
turns the answer into whole millicores without overshooting the node, and :func:`nsw_objective`
is the potential the agent exports to show that the loop settles.

The package is unit-free and does no I/O: it imports numpy and nothing else. The agent calls it
in cores (floats) and writes millicores. See ``docs/market.md``.
"""

from mbcas.market.headroom import share_headroom
from mbcas.market.objective import nsw_objective
from mbcas.market.rounding import to_mcpu
from mbcas.market.solver import InfeasibleError, solve_nsw

__all__ = ["InfeasibleError", "nsw_objective", "share_headroom", "solve_nsw", "to_mcpu"]
