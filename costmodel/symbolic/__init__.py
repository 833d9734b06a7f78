"""Symbolic layer: closed-form SymPy expressions of the cost model (no JAX here).

Importing this package must not import JAX; :mod:`costmodel.compile` is the one
place where SymPy meets JAX.
"""

from .._lazy import lazy_getattr
from .derived import (JOULES_PER_KWH, OUTPUT_UNITS, board_power_w, fits_in_memory, usd_per_joule, usd_per_mtok,
                      usd_per_mtok_energy)
from .rules import Rules

# The expression builders import SymPy: they load on first use, so that `import costmodel` (which
# needs `Rules`) and a start from cached programs never import it.
_LAZY = {
    "ParamCounts": "architecture",
    "attended_tokens": "architecture",
    "causal_pairs": "architecture",
    "decode_attention_flops_per_token": "architecture",
    "expert_touch_fraction": "architecture",
    "fetched_params": "architecture",
    "kv_bytes_per_token": "architecture",
    "kv_heads_replication": "architecture",
    "param_counts": "architecture",
    "prefill_attention_flops_per_sequence": "architecture",
    "all_gather_s": "collectives",
    "all_reduce_s": "collectives",
    "all_to_all_s": "collectives",
    "hierarchical_all_to_all_s": "collectives",
    "point_to_point_s": "collectives",
    "reduce_scatter_s": "collectives",
    "domains_spanned": "dispatch",
    "expert_parallel_s": "dispatch",
    "remote_domains_per_token": "dispatch",
    "memory_terms": "memory",
    "outputs": "all_outputs",
    "step_terms": "step",
    "SYMBOLS": "symbols",
    "latex_names": "symbols",
    "sym": "symbols",
}

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
    "domains_spanned",
    "expert_parallel_s",
    "expert_touch_fraction",
    "fetched_params",
    "fits_in_memory",
    "hierarchical_all_to_all_s",
    "kv_bytes_per_token",
    "kv_heads_replication",
    "latex_names",
    "memory_terms",
    "outputs",
    "param_counts",
    "point_to_point_s",
    "prefill_attention_flops_per_sequence",
    "reduce_scatter_s",
    "remote_domains_per_token",
    "step_terms",
    "sym",
    "usd_per_mtok",
    "usd_per_mtok_energy",
    "usd_per_joule",
    "JOULES_PER_KWH",
    "board_power_w",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
