"""The plain figures around the model's outputs: their units, whether a configuration fits, its price
per million tokens. No SymPy: these work on SymPy expressions, numbers and arrays alike, and load
without the expressions (docs/theory.md §9).
"""

from __future__ import annotations

__all__ = ["OUTPUT_UNITS", "fits_in_memory", "usd_per_mtok"]

OUTPUT_UNITS: dict[str, str] = {
    "step_time_s": "s", "compute_s": "s", "weights_s": "s", "kv_s": "s",
    "communication_s": "s", "overhead_s": "s", "roofline_s": "s",
    "tokens_per_step": "tokens", "tokens_per_s": "tokens/s", "tokens_per_s_per_user": "tokens/s",
    "usd_per_mtok": "USD/Mtok", "usd_per_hour": "USD/h", "mfu": "1", "flops_per_step": "FLOP",
    "chips_per_replica": "chips", "chips": "chips",
    "weight_bytes_per_chip": "bytes", "kv_bytes_per_chip": "bytes",
    "activation_bytes_per_chip": "bytes", "memory_bytes_per_chip": "bytes",
    "usable_bytes_per_chip": "bytes",
    "params_total": "params", "params_active": "params", "kv_bytes_per_token": "bytes/token",
    "communication_tp_s": "s", "communication_ep_s": "s", "communication_pp_s": "s",
    "kv_replication": "1", "max_batch": "sequences", "max_context": "tokens",
}


def fits_in_memory(values):
    """Whether weights, KV cache and activations fit in the usable HBM of each chip.

    ``values`` maps output names to numbers or arrays (NumPy or JAX, elementwise).
    """
    return values["memory_bytes_per_chip"] <= values["usable_bytes_per_chip"]


def usd_per_mtok(chips, usd_per_chip_hour, tokens_per_s):
    """USD per million output tokens of ``chips`` priced per chip-hour serving ``tokens_per_s``.

    Works on SymPy expressions, numbers and arrays alike.
    """
    return 10**6 * chips * usd_per_chip_hour / (3600 * tokens_per_s)
