"""The simulator: MBCAS against static limits, HPA-, VPA- and regret-matching-like policies.

A discrete-time model of one or more nodes (:mod:`mbcas.sim.node`) runs pods whose CPU demand
follows versioned scenario traces (:mod:`mbcas.sim.scenario`, :mod:`mbcas.sim.traces`) and turns
each tick into the kernel-like signals MBCAS reads in production. Every policy
(:mod:`mbcas.sim.policies`; MBCAS through the production demand estimator, node planner and resize
rules) runs on identical traces (:mod:`mbcas.sim.engine`), the metrics are defined in
:mod:`mbcas.sim.metrics`, the targets checked in :mod:`mbcas.sim.targets`, and
:mod:`mbcas.sim.report` writes the table, ``results.json``, the plots and a Markdown report.
``mbcas simulate`` is the command; :mod:`mbcas.experiment` is the real-kernel counterpart.
"""

from mbcas.sim.runner import SimulationResult, simulate
from mbcas.sim.scenario import Scenario, ScenarioError, list_scenarios, load_scenario

__all__ = ["Scenario", "ScenarioError", "SimulationResult", "list_scenarios", "load_scenario", "simulate"]
