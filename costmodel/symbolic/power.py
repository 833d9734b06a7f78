"""Power per chip, energy per token and the electricity bill of a step (docs/theory.md §21).

A chip draws its idle power ``P_idle`` whatever it does, and a dynamic share of ``P_max - P_idle``
that follows how busy its compute units and its HBM are over the step:

    u_c = T_compute / T_step,   u_m = (T_weights + T_kv) / T_step,
    P = P_idle + (P_max - P_idle)·(1 - (1 - u_c)·(1 - β_m·u_m)).

Compute at full occupancy draws the whole board (``u_c = 1`` gives ``P_max`` whatever the memory
does); memory streaming alone draws the share ``β_m``; the product form keeps the busy fraction in
[0, 1] without a max, so the expression stays smooth for the optimiser. Collectives and launch
floors leave both units mostly idle. The host (CPUs, NICs, fans) adds ``P_host`` per chip, and the
facility ``PUE`` times the IT energy. Owned chips (``o = 1``) pay for that electricity on top of
their price; rented chips' prices already include it (the catalog's prices are rental prices).
"""

from __future__ import annotations

import sympy as sp

from .derived import board_power_w, usd_per_mtok_energy
from .symbols import sym

__all__ = ["power_terms"]


def power_terms(t: dict[str, sp.Expr], chips: sp.Expr, tokens_per_step: sp.Expr) -> dict[str, sp.Expr]:
    """Power and energy of one replica's step: ``power_w_per_chip`` (board), ``joules_per_token`` (boards
    and host share, per token of the step, before the PUE) and ``usd_per_mtok_energy`` (the electricity of
    a million tokens at the facility's PUE)."""
    p_max, p_idle, p_host, beta, pue, price = sym("max_power_w", "idle_power_w", "host_power_w",
                                                  "memory_power_share", "pue", "usd_per_kwh")
    board = board_power_w(t["compute_s"], t["weights_s"] + t["kv_s"], t["step_time_s"], p_idle, p_max, beta)
    tokens_per_s = tokens_per_step / t["step_time_s"]
    return {
        "power_w_per_chip": board,
        "joules_per_token": (board + p_host) * chips / tokens_per_s,
        "usd_per_mtok_energy": usd_per_mtok_energy(chips, board + p_host, pue, price, tokens_per_s),
    }
