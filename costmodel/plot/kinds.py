"""The figure kinds, by the name the CLI and the report use (no matplotlib import here)."""

from __future__ import annotations

__all__ = ["FIGURES", "SERVING_FIGURES", "COMPARE_FIGURES"]

#: name -> (function of :mod:`costmodel.plot.figures` that draws it, caption).
FIGURES: dict[str, tuple[str, str]] = {
    "roofline": ("roofline", "Roofline with operating points"),
    "batch": ("batch_sweep", "Time per token and cost against batch"),
    "pareto": ("pareto", "Cost-latency frontier over chip counts"),
    "breakdown": ("step_breakdown", "Step-time breakdown"),
    "operators": ("operator_breakdown", "The step's operators against batch (operator-level step)"),
    "sensitivity": ("sensitivity_bars", "Elasticities of cost and latency to hardware numbers"),
}

#: Request-level figures: name -> (function of :mod:`costmodel.plot.serving`, caption). ``costmodel plot``
#: draws them; the report keeps to the step-level figures above.
SERVING_FIGURES: dict[str, tuple[str, str]] = {
    "serving-load": ("load_sweep", "TTFT and TPOT against load, aggregated and disaggregated"),
    "serving-throughput": ("throughput_interactivity", "Output tokens/s per chip against tokens/s per user"),
}

#: Figures that compare chips (``--hardware a,b,c``): name -> (function of :mod:`costmodel.plot.figures`,
#: caption).
COMPARE_FIGURES: dict[str, tuple[str, str]] = {
    "chips": ("chip_frontiers", "Cost against tokens/s per user, one frontier per chip type"),
}
