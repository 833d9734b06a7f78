"""Serving a workload of requests: prefill load, continuous batching, queueing, disaggregation, speculation.

Requests arrive with about ``I`` prompt and ``O`` output tokens under a load
(a static batch, a concurrency, a rate or offline); :func:`serve` answers
TTFT, TPOT, end-to-end latency, throughput per chip and cost per million input
and output tokens, composing the compiled step model (docs/serving.md, §19).

Importing this package does not import JAX: the workload types are plain data,
the evaluating names load on first use.
"""

from .workload import LOAD_KINDS, Disaggregated, Load, Pool, Requests, Speculative

__all__ = ["LOAD_KINDS", "Disaggregated", "Load", "Pool", "Requests", "ServingPrediction", "Speculative", "serve",
           "simulate", "goodput_rate"]

_LAZY = {"serve": "api", "ServingPrediction": "prediction", "simulate": "simulate", "goodput_rate": "queueing"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'costmodel.serving' has no attribute {name!r}")
