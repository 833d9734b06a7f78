"""Figures of the cost model (matplotlib): each function returns a Figure.

Example:
    >>> from costmodel.plot import Setup, batch_sweep
    >>> fig = batch_sweep(Setup("llama-3-70b", "h100-sxm", context=8192, tp=8))
    >>> fig.savefig("batch.png")  # doctest: +SKIP

Importing this package loads neither matplotlib nor JAX (``costmodel.plot.kinds`` names the
figures for the CLI); the names below load on first use.
"""

from .._lazy import lazy_getattr
from .kinds import COMPARE_FIGURES, FIGURES, SERVING_FIGURES

_LAZY = {"Setup": "_data", "KINDS": "figures", "batch_sweep": "figures", "pareto": "figures", "chip_frontiers": "figures",
         "roofline": "figures", "sensitivity_bars": "figures", "step_breakdown": "figures",
         "operator_breakdown": "figures",
         "SERVING_KINDS": "serving", "load_sweep": "serving", "throughput_interactivity": "serving"}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["COMPARE_FIGURES", "FIGURES", "KINDS", "chip_frontiers", "SERVING_FIGURES", "SERVING_KINDS", "Setup", "batch_sweep", "load_sweep",
           "operator_breakdown", "pareto",
           "roofline", "sensitivity_bars", "step_breakdown", "throughput_interactivity"]
