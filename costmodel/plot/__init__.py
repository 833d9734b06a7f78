"""Figures of the cost model (matplotlib): each function returns a Figure.

Example:
    >>> from costmodel.plot import Setup, batch_sweep
    >>> fig = batch_sweep(Setup("llama-3-70b", "h100-sxm", context=8192, tp=8))
    >>> fig.savefig("batch.png")  # doctest: +SKIP
"""

from ._data import Setup
from .figures import batch_sweep, pareto, roofline, sensitivity_bars, step_breakdown
from .serving import load_sweep, throughput_interactivity

#: Figure kinds by the name the CLI uses.
KINDS = {
    "roofline": roofline,
    "batch": batch_sweep,
    "pareto": pareto,
    "breakdown": step_breakdown,
    "sensitivity": sensitivity_bars,
    "serving-load": load_sweep,
    "serving-throughput": throughput_interactivity,
}

__all__ = ["KINDS", "Setup", "batch_sweep", "load_sweep", "pareto", "roofline", "sensitivity_bars", "step_breakdown",
           "throughput_interactivity"]
