"""Symbolic layer: closed-form SymPy expressions of the cost model (no JAX here).

Importing this package must not import JAX; :mod:`costmodel.compile` is the one
place where SymPy meets JAX.
"""

from .architecture import (
    ParamCounts,
    attended_tokens,
    causal_pairs,
    decode_attention_flops_per_token,
    expert_touch_fraction,
    fetched_params,
    kv_bytes_per_token,
    kv_heads_replication,
    param_counts,
    prefill_attention_flops_per_sequence,
)
from .collectives import all_gather_s, all_reduce_s, all_to_all_s, point_to_point_s, reduce_scatter_s
from .memory import memory_terms
from .outputs import OUTPUT_UNITS, fits_in_memory, outputs, usd_per_mtok
from .rules import Rules
from .step import step_terms
from .symbols import SYMBOLS, latex_names, sym

__all__ = [
    "OUTPUT_UNITS",
    "ParamCounts",
    "Rules",
    "SYMBOLS",
    "all_gather_s",
    "all_reduce_s",
    "all_to_all_s",
    "attended_tokens",
    "causal_pairs",
    "decode_attention_flops_per_token",
    "expert_touch_fraction",
    "fetched_params",
    "fits_in_memory",
    "kv_bytes_per_token",
    "kv_heads_replication",
    "latex_names",
    "memory_terms",
    "outputs",
    "param_counts",
    "point_to_point_s",
    "prefill_attention_flops_per_sequence",
    "reduce_scatter_s",
    "step_terms",
    "sym",
    "usd_per_mtok",
]
