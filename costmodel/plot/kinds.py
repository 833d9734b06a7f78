"""The figure kinds, by the name the CLI and the report use (no matplotlib import here)."""

from __future__ import annotations

__all__ = ["FIGURES"]

#: name -> (function of :mod:`costmodel.plot.figures` that draws it, caption).
FIGURES: dict[str, tuple[str, str]] = {
    "roofline": ("roofline", "Roofline with operating points"),
    "batch": ("batch_sweep", "Time per token and cost against batch"),
    "pareto": ("pareto", "Cost-latency frontier over chip counts"),
    "breakdown": ("step_breakdown", "Step-time breakdown"),
    "sensitivity": ("sensitivity_bars", "Elasticities of cost and latency to hardware numbers"),
}
