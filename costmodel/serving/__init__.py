"""Serving a workload of requests: prefill load, continuous batching, queueing, disaggregation, speculation.

Requests arrive with about ``I`` prompt and ``O`` output tokens under a load
(a static batch, a concurrency, a rate or offline); :func:`serve` answers
TTFT, TPOT, end-to-end latency, throughput per chip and cost per million input
and output tokens, composing the compiled step model (docs/serving.md, §19).

Importing this package does not import JAX: the workload types are plain data,
the evaluating names load on first use.
"""

from .._lazy import lazy_getattr
from .workload import LOAD_KINDS, Disaggregated, Load, Pool, Requests, Speculative

__all__ = ["LOAD_KINDS", "Disaggregated", "Load", "Pool", "Requests", "ServingPrediction", "Speculative", "serve",
           "simulate", "goodput", "goodput_rate"]

_LAZY = {"serve": "api", "goodput": "api", "ServingPrediction": "prediction", "simulate": "simulate", "goodput_rate": "queueing"}


__getattr__ = lazy_getattr(__name__, _LAZY)
