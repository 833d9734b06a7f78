"""Parameter, FLOP and KV-cache counts of a transformer decoder (docs/theory.md §3-4).

Every function returns a SymPy expression in the symbols of
:mod:`costmodel.symbolic.symbols`; the structure (attention kind, dense or MoE)
selects the formula, the numbers stay symbols.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..specs.model import ModelStructure
from .symbols import sym

__all__ = [
    "ParamCounts",
    "attention_params_per_layer",
    "param_counts",
    "expert_touch_fraction",
    "fetched_params",
    "kv_bytes_per_token",
    "attended_tokens",
    "causal_pairs",
    "decode_attention_flops_per_token",
    "prefill_attention_flops_per_sequence",
    "kv_heads_replication",
    "layer_hidden_width",
    "attention_io_width",
]

L, D, Nq, Nkv, H, V, F, m = sym("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head",
                                "vocab_size", "d_ff", "mlp_matrices")
n_emb, bias = sym("n_embedding_matrices", "attention_bias")
E, k, Es, Fe, Lmoe = sym("n_experts", "experts_per_token", "n_shared_experts", "d_ff_expert", "n_moe_layers")
dcq, dc, dR, Hn, Hv = sym("q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
Lw, Wa = sym("n_window_layers", "attention_window")


def attention_params_per_layer(st: ModelStructure, *, matmul_only: bool = False) -> sp.Expr:
    """Attention parameters of one layer, with its two layer norms unless ``matmul_only``.

    GQA/MHA/MQA: ``D·H·(2·N_q + 2·N_kv)`` [S]. MLA: the DeepSeek projections of
    docs/theory.md §3.3, with the latent norms.
    """
    if st.attention == "gqa":
        mm = D * H * (2 * Nq + 2 * Nkv)
        extra = bias * (Nq + 2 * Nkv) * H + 2 * D
    else:
        q = D * dcq + dcq * Nq * (Hn + dR) if st.q_compressed else D * Nq * (Hn + dR)
        mm = q + D * (dc + dR) + dc * Nq * (Hn + Hv) + Nq * Hv * D
        extra = (dcq if st.q_compressed else 0) + dc + 2 * D
    return mm if matmul_only else mm + extra


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts (params) of a structure.

    Attributes:
        total: every parameter, resident in memory (``P_tot``).
        active: parameters touched per token (``P_act``), both embeddings included.
        matmul: parameters multiplied per token (the FLOP count is ``2·matmul``):
            no norms or biases, no input-embedding gather, the LM head included.
        routed: routed-expert parameters, all experts (0 for dense models).
        nonrouted_fetch: parameters streamed every step besides routed experts:
            everything except routed experts and the input-embedding gather.
    """

    total: sp.Expr
    active: sp.Expr
    matmul: sp.Expr
    routed: sp.Expr
    nonrouted_fetch: sp.Expr


def param_counts(st: ModelStructure) -> ParamCounts:
    """Total, active, matmul and fetched parameter counts (docs/theory.md §3.1-3.3)."""
    attn, attn_mm = attention_params_per_layer(st), attention_params_per_layer(st, matmul_only=True)
    if st.mlp == "dense":
        mlp = L * m * D * F
        routed = routed_active = sp.Integer(0)
        shared = sp.Integer(0)
    else:
        mlp = (L - Lmoe) * m * D * F
        routed = Lmoe * E * m * D * Fe
        routed_active = Lmoe * k * m * D * Fe
        shared = Lmoe * (Es * m * D * Fe + D * E)  # shared experts and the router
    emb = n_emb * V * D
    body = L * attn + mlp + shared + D  # D: final norm
    return ParamCounts(
        total=body + routed + emb,
        active=body + routed_active + emb,
        matmul=L * attn_mm + mlp + shared + routed_active + V * D,
        routed=routed,
        nonrouted_fetch=body + V * D,
    )


def expert_touch_fraction(tokens: sp.Expr) -> sp.Expr:
    """Expected fraction of the routed experts' copies a step of ``tokens`` tokens touches.

    ``φ = 1 - (1 - k/(E + R))^tokens`` ([Ep] notebook; docs/theory.md §3.2): ``k/E`` at one
    token without redundant copies (``R = 0``), tending to 1 for large batches; with ``R`` copies the
    load spreads over ``E + R`` placed experts.
    """
    return 1 - (1 - k / (E + sym("redundant_experts"))) ** tokens


def placed_experts() -> sp.Expr:
    """``(E + R)/E``: the routed experts' weights stored, with ``R`` redundant copies (docs/theory.md §3.2)."""
    return (E + sym("redundant_experts")) / E


def fetched_params(st: ModelStructure, tokens: sp.Expr, *, expert_fetch: str = "expected") -> sp.Expr:
    """Parameters streamed from HBM in one step of ``tokens`` tokens (``P_fetch``).

    ``expert_fetch="expected"`` weights routed experts by :func:`expert_touch_fraction`;
    ``"all"`` fetches every expert ([R]'s simple model).
    """
    p = param_counts(st)
    if st.mlp == "dense" or expert_fetch == "all":
        return p.nonrouted_fetch + p.routed
    return p.nonrouted_fetch + expert_touch_fraction(tokens) * p.routed


def kv_bytes_per_token(st: ModelStructure) -> sp.Expr:
    """KV-cache bytes per token over all layers (``κ``): ``2·L·N_kv·H·b_kv``, MLA ``L·(d_c+d_R)·b_kv``."""
    bkv = sym("kv_bytes")
    per_layer = 2 * Nkv * H if st.attention == "gqa" else dc + dR
    return L * per_layer * bkv


def attended_tokens(st: ModelStructure, tokens: sp.Expr) -> sp.Expr:
    """Cached tokens per layer of a sequence of ``tokens`` tokens, averaged over layers.

    Full attention: ``tokens``. With ``L_w`` windowed layers each keeps and
    attends at most ``W_a`` tokens: ``((L - L_w)·S + L_w·min(S, W_a))/L``, so the
    KV cache of a sequence is ``κ·attended_tokens`` and a decode step's attention
    FLOPs ``A_att·attended_tokens``. For chunked layers ``min(S, W_a)`` is the
    cache a sequence must hold (a chunk fills to ``W_a``) and an upper bound on
    the keys of one step (``S mod W_a``; ``W_a/2`` on average).
    """
    if st.window == "none":
        return tokens
    return ((L - Lw) * tokens + Lw * sp.Min(tokens, Wa)) / L


def causal_pairs(st: ModelStructure, tokens: sp.Expr) -> sp.Expr:
    """(query, key) pairs of a causal prefill of ``tokens`` tokens, averaged over layers.

    Full attention: ``T²/2`` (the ``T(T+1)/2`` of a causal mask for large ``T``).
    A sliding window of ``W`` keys: ``m·(T - m/2)`` with ``m = min(T, W)``
    (``T²/2`` up to the window, then ``W`` keys per query). Chunks of ``W``:
    ``m·T/2`` (``T/W`` chunks of ``W²/2`` pairs; exact at multiples of ``W``).
    """
    full = tokens**2 / 2
    if st.window == "none":
        return full
    m = sp.Min(tokens, Wa)
    windowed = m * (tokens - m / 2) if st.window == "sliding" else m * tokens / 2
    return ((L - Lw) * full + Lw * windowed) / L


def kv_heads_replication(st: ModelStructure, attention_sharding: str = "heads") -> sp.Expr:
    """KV replication factor ``r_kv`` under tensor parallelism (docs/theory.md §4.2, §13.3).

    Head-sharded attention: GQA ``max(1, tp/N_kv)`` (MQA: ``tp``, [E]'s
    "baseline multiquery" trap); MLA's single latent is replicated on every TP
    rank: ``tp``. Batch-sharded attention ([E]): ``1``.
    """
    if attention_sharding == "batch":
        return sp.Integer(1)
    tp = sym("tp")
    return sp.Max(1, tp / Nkv) if st.attention == "gqa" else tp


def layer_hidden_width(st: ModelStructure) -> sp.Expr:
    """Mean feed-forward hidden width a token sees per layer (``F`` of docs/theory.md §13.2).

    Dense: ``d_ff``. MoE: dense layers' ``F`` and MoE layers' ``(k + E_s)·F_e``, averaged over layers.
    """
    if st.mlp == "dense":
        return F
    return ((L - Lmoe) * F + Lmoe * (k + Es) * Fe) / L


def attention_io_width(st: ModelStructure) -> tuple[sp.Expr, sp.Expr]:
    """Elements per token of the query and of the attention output moved by batch-sharded attention.

    GQA: the new token's ``N_q·H`` query plus its ``2·N_kv·H`` key and value
    in, ``N_q·H`` out (docs/theory.md §5.5, §13.3). MLA with absorbed projections: the
    query in latent space ``N_q·(d_c + d_R)`` plus the new latent ``d_c + d_R``
    in, the latent output ``N_q·d_c`` out.
    """
    if st.attention == "gqa":
        return Nq * H + 2 * Nkv * H, Nq * H
    return (Nq + 1) * (dc + dR), Nq * dc


def decode_attention_flops_per_token(st: ModelStructure) -> sp.Expr:
    """Attention FLOPs per generated token per cached token, summed over layers.

    GQA: ``4·N_q·H·L`` [S]. MLA with absorbed up-projections: ``2·N_q·(2·d_c + d_R)·L``.
    Multiply by :func:`attended_tokens` (the context ``S`` without windowed layers).
    """
    per_layer = 4 * Nq * H if st.attention == "gqa" else 2 * Nq * (2 * dc + dR)
    return L * per_layer


def prefill_attention_flops_per_sequence(st: ModelStructure, tokens: sp.Expr) -> sp.Expr:
    """Causal attention FLOPs to prefill ``tokens`` tokens of one sequence.

    GQA: ``2·N_q·H·T²·L`` (half of the unskipped ``4·N_q·H·T²·L``, docs/theory.md §3.1).
    MLA (not absorbed in prefill): ``N_q·(H_n + d_R + H_v)·T²·L``. Windowed layers
    count the pairs of :func:`causal_pairs` instead of ``T²/2``.
    """
    width = 2 * H if st.attention == "gqa" else Hn + dR + Hv
    return 2 * Nq * width * causal_pairs(st, tokens) * L
