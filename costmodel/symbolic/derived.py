"""The plain figures around the model's outputs: their units, whether a configuration fits, its price
per million tokens. No SymPy: these work on SymPy expressions, numbers and arrays alike, and load
without the expressions (docs/theory.md §9).
"""

from __future__ import annotations

__all__ = ["OUTPUT_UNITS", "fits_in_memory", "usd_per_mtok", "usd_per_mtok_energy", "usd_per_joule", "JOULES_PER_KWH",
           "board_power_w"]

#: joules in one kilowatt-hour
JOULES_PER_KWH = 3_600_000

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
    "power_w_per_chip": "W", "joules_per_token": "J/token", "usd_per_mtok_energy": "USD/Mtok",
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


def usd_per_joule(pue, usd_per_kwh):
    """USD per joule of IT energy: the facility's ``pue`` times the price of a kWh (3.6 MJ).

    Works on SymPy expressions, numbers and arrays alike.
    """
    return pue * usd_per_kwh / JOULES_PER_KWH


def usd_per_mtok_energy(chips, watts_per_chip, pue, usd_per_kwh, tokens_per_s):
    """USD of electricity per million tokens: ``chips`` drawing ``watts_per_chip`` (board and host) serving
    ``tokens_per_s``, at :func:`usd_per_joule` (docs/theory.md §21).

    Works on SymPy expressions, numbers and arrays alike.
    """
    return 10**6 * chips * watts_per_chip * usd_per_joule(pue, usd_per_kwh) / tokens_per_s


def board_power_w(compute_s, memory_s, step_s, idle_power_w, max_power_w, memory_power_share, busy=1):
    """Board power of a chip over a step that keeps its compute units busy ``compute_s`` and its HBM busy
    ``memory_s`` of ``step_s`` (docs/theory.md §21): ``P_idle + (P_max - P_idle)·(1 - (1 - u_c)(1 - β_m·u_m))``
    with ``u_c = compute_s/step_s`` and ``u_m = memory_s/step_s``; a chip that runs such steps a fraction
    ``busy`` of the time (in [0, 1]) and idles the rest draws ``P_idle`` plus ``busy`` times the rest.

    Works on SymPy expressions, numbers and arrays alike.
    """
    u_c, u_m = compute_s / step_s, memory_s / step_s
    return idle_power_w + busy * (max_power_w - idle_power_w) * (1 - (1 - u_c) * (1 - memory_power_share * u_m))
