r"""Closed forms derived by SymPy from the model's own expressions (docs/theory.md §7-12).

Each function solves, simplifies or takes limits of the model's symbolic terms
(:mod:`costmodel.symbolic`) and returns a :class:`Derivation`: the SymPy
expression (``expr``), its LaTeX (``latex``), the steps (``steps``) and its value
for given specs (``value(model, hardware, **workload)`` or ``evaluate(scenario)``).

Example:
    >>> from costmodel import derive
    >>> d = derive.fast_mode_floor_fraction()   # "6x the price for 2.5x the speed"
    >>> d.latex
    'f = \\frac{r - 1}{r \\cdot s - 1}'
    >>> round(d.value(price_ratio=6, speedup=2.5), 4)  # 5/14
    0.3571
    >>> round(derive.critical_batch("llama-3-70b").value("llama-3-70b", "h100-sxm", tp=8))  # R
    295

:func:`sensitivities` (JAX autodiff) loads on first use.
"""

from ._base import Derivation, Step
from .batch import cheapest_batch, context_wall, critical_batch, max_batch
from .latency import cost_latency_frontier, floor_fraction, latency_floor
from .modes import fast_mode_cost_ratio, fast_mode_floor_fraction, speculative_cost, speculative_tokens_per_step
from .serving import aggregated_step, prefill_share, speculative_break_even, static_batch_latency
from .step_time import step_time

__all__ = [
    "Derivation",
    "Sensitivity",
    "Step",
    "aggregated_step",
    "cheapest_batch",
    "context_wall",
    "cost_latency_frontier",
    "critical_batch",
    "fast_mode_cost_ratio",
    "fast_mode_floor_fraction",
    "floor_fraction",
    "latency_floor",
    "max_batch",
    "prefill_share",
    "sensitivities",
    "speculative_break_even",
    "speculative_cost",
    "speculative_tokens_per_step",
    "static_batch_latency",
    "step_time",
]


def __getattr__(name: str):
    if name in ("sensitivities", "Sensitivity"):
        from . import sensitivity

        return getattr(sensitivity, name)
    raise AttributeError(f"module 'costmodel.derive' has no attribute {name!r}")
