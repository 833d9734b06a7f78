"""Find the cheapest serving configuration that meets a latency target.

Two methods share one problem definition and one exact model:
``"gradient"`` (a smooth relaxation solved by an augmented Lagrangian with
optax, then rounding and a local search with the exact model) and
``"exhaustive"`` (every admissible configuration at once; the oracle).
"""

from .api import METHODS, optimize
from .problem import Problem, make_problem
from .solution import Choice, Solution

__all__ = ["METHODS", "Choice", "Problem", "Solution", "make_problem", "optimize"]
