"""HBM bytes per chip under a split (docs/theory.md §4.2).

Weights: non-expert parameters split ``tp·pp`` ways (replicated across expert
groups), routed experts split ``tp·pp·ep`` ways. KV: the whole batch's cache
split over stages, heads and expert groups, times the replication ``r_kv`` of
head-sharded attention past the KV heads. Pipelining divides weights per chip
but, at a fixed micro-batch, not KV per chip (docs/theory.md §4.2): with the global
batch ``B = pp·b`` fixed, ``B/pp = b`` sequences' cache lands on each stage.
Batch-sharded attention ([E], docs/theory.md §13.3) stores each sequence's cache on
one chip of the tensor-parallel group: no replication.
"""

from __future__ import annotations

import sympy as sp

from ..specs.model import ModelStructure
from . import architecture as arch
from .rules import Rules
from .step import microbatch
from .symbols import sym

__all__ = ["memory_terms"]


def memory_terms(st: ModelStructure, rules: Rules) -> dict[str, sp.Expr]:
    """Bytes per chip under the split, and the largest batch and context that fit.

    Returns ``weight_bytes_per_chip``, ``kv_bytes_per_chip``,
    ``activation_bytes_per_chip``, their sum ``memory_bytes_per_chip``,
    ``usable_bytes_per_chip`` (``u·M``; ``1-u`` is the reserved fraction),
    ``kv_replication`` (``r_kv``), and the capacity closed forms of docs/theory.md
    §4.2 (continuous: floor them for a whole count; 0 when the weights alone do
    not fit):

    The serving engine's memory rule (docs/theory.md §4.3, :mod:`costmodel.engines`) gives the KV
    cache ``f_kv·(u·M - W_chip - α·A_chip)``: vLLM takes ``u`` of the total (``f_kv = α = 1``),
    TensorRT-LLM ``f_kv`` of what the weights and activations leave (``u = α = 1``), SGLang ``u``
    of the total for weights and KV with activations outside it (``f_kv = 1``, ``α = 0``). So
    ``memory_bytes_per_chip`` is the memory the rule charges, ``W_chip + α·A_chip + KV_chip/f_kv``
    (the physical contents when ``f_kv = α = 1``), and it fits when it is at most ``u·M``.

    * ``max_batch``: ``B_max = f_kv·(u·M - W_chip)·B/(KV_chip + f_kv·α·A_chip)``: the KV
      cache and activations grow linearly in ``B``, the weights do not.
    * ``max_context``: the cached length per sequence at batch ``B`` (the prompt
      in prefill), ``S_max = (u·M - W_chip - α·A_0)/(∂(KV_chip/f_kv + α·A_chip)/∂S)``
      with ``A_0`` the part of the activations that does not grow with ``S``.
    """
    B, S, T, tp, pp, ep = sym("batch", "context", "prompt", "tp", "pp", "ep")
    D, V, bw, ba, M, u = sym("d_model", "vocab_size", "weight_bytes", "activation_bytes",
                             "hbm_bytes", "memory_fraction")
    f_kv, a_in = sym("kv_memory_fraction", "activations_in_budget")
    p = arch.param_counts(st)
    routed = p.routed * arch.placed_experts() if st.mlp == "moe" else p.routed  # redundant copies stored too
    weights = bw * ((p.total - p.routed) / (tp * pp) + routed / (tp * pp * ep))
    cached = S if rules.phase == "decode" else T
    r_kv = arch.kv_heads_replication(st, rules.attention_sharding)
    kv_per_token = B * arch.kv_bytes_per_token(st) * r_kv / (tp * pp * ep)
    kv = kv_per_token * arch.attended_tokens(st, cached)
    # live activations of one layer: residual stream in and out, plus fp32 logits
    seqs = microbatch(rules) / ep
    rows = seqs if rules.phase == "decode" else seqs * T
    # 1D weight-stationary replicates the residual stream on every tensor-parallel
    # chip; the 2D and weight-gathered layouts shard it over the mesh ([E]: BLE_xyz)
    stream = rows * 2 * D * ba / (1 if rules.layout == "1d-ws" else tp)
    logits = seqs * V * 4 / tp
    act = stream + logits
    free = u * M - weights
    growth_per_token = kv_per_token / f_kv + a_in * (0 if rules.phase == "decode" else stream / T)
    free_for_context = free - a_in * (logits + (stream if rules.phase == "decode" else 0))
    return {
        "weight_bytes_per_chip": weights,
        "kv_bytes_per_chip": kv,
        "activation_bytes_per_chip": act,
        "memory_bytes_per_chip": weights + a_in * act + kv / f_kv,
        "usable_bytes_per_chip": u * M,
        "kv_replication": r_kv,
        "max_batch": sp.Max(0, f_kv * free * B / (kv + f_kv * a_in * act)),
        "max_context": _max_context(st, free_for_context, growth_per_token, kv_per_token / f_kv),
    }


def _max_context(st: ModelStructure, free: sp.Expr, growth: sp.Expr, kv_per_token: sp.Expr) -> sp.Expr:
    """The context at which memory reaches ``free``: ``free/growth`` without windowed layers.

    With ``L_w`` of ``L`` layers capped at ``W_a`` tokens, memory is piecewise
    linear and concave in the context: slope ``growth`` up to ``W_a``, then
    ``growth - (L_w/L)·kv_per_token``. The crossing is the larger of the two
    lines' crossings (each line lies below the other on the far side of ``W_a``).
    """
    if st.window == "none":
        return sp.Max(0, free / growth)
    L, Lw, Wa = sym("n_layers", "n_window_layers", "attention_window")
    capped = Lw / L * kv_per_token
    return sp.Max(0, free / growth, (free - capped * Wa) / (growth - capped))
