"""The serving optimiser: the cheapest aggregated or disaggregated deployment for a demand within targets.

Two methods share one problem (:mod:`.problem`), one vectorised model of the deployment
(:mod:`.evaluate`) and one exact re-evaluation with :func:`costmodel.serve` (:mod:`.exact`):
``"gradient"`` (the decode optimiser's log-space relaxation, rounding, a local search over
splits; :mod:`.gradient`) and ``"exhaustive"`` (every configuration; :mod:`.exhaustive`).
"""

from .api import METHODS, optimize_serving, solve
from .problem import ServingProblem, make_serving_problem
from .solution import ServingSolution

__all__ = ["METHODS", "ServingProblem", "ServingSolution", "make_serving_problem", "optimize_serving", "solve"]
