"""Step time of one replica: compute, weight fetch, KV fetch, communication, overhead.

A replica of ``n = tp·pp·ep`` chips serves ``B`` sequences. Pipeline stages
hold ``L/pp`` layers on ``g = tp·ep`` chips; in decode ``pp`` micro-batches of
``b = B/pp`` sequences are in flight, so a token crosses every stage once per
step and the step (the time per output token) is ``pp`` stage times plus
``pp-1`` hops (docs/theory.md §5.5). Non-expert weights are split ``tp`` ways and
replicated over the ``ep`` groups; routed experts are split ``tp·ep`` ways; the
KV cache is split over heads (``tp``, replicated past the KV heads) and over
sequences (``ep``: attention is data-parallel across expert groups), or over
sequences only under batch-sharded attention (``r_kv = 1``). The tensor-parallel
communication follows ``Rules.layout`` (:mod:`.layouts`).
"""

from __future__ import annotations

import sympy as sp

from ..specs.model import ModelStructure
from . import architecture as arch
from .collectives import link_bytes_per_s, point_to_point_s
from .dispatch import expert_parallel_s
from .operators import Tokens, operator_terms
from .layouts import attention_resharding_s, gathered_chips, tensor_parallel_s
from .rules import Rules
from .symbols import sym

__all__ = ["step_terms", "overhead_terms", "communication_terms", "microbatch", "tokens_in_flight", "useful_flops"]


def microbatch(rules: Rules) -> sp.Expr:
    """Sequences per pipeline micro-batch: ``B/pp`` in decode, the whole batch in prefill."""
    B, pp = sym("batch", "pp")
    return B / pp if rules.phase == "decode" else B


def tokens_in_flight(rules: Rules) -> sp.Expr:
    """Tokens one micro-batch pushes through a layer: ``b`` in decode, ``b·T_in`` in prefill."""
    return microbatch(rules) if rules.phase == "decode" else microbatch(rules) * sym("prompt")


def useful_flops(st: ModelStructure, rules: Rules, seqs: sp.Expr) -> sp.Expr:
    """FLOPs to advance ``seqs`` sequences by one step (decode) or through the prompt (prefill)."""
    S, T = sym("context", "prompt")
    p = arch.param_counts(st)
    if rules.phase == "decode":
        return seqs * (2 * p.matmul + arch.decode_attention_flops_per_token(st) * arch.attended_tokens(st, S))
    return seqs * (2 * p.matmul * T + arch.prefill_attention_flops_per_sequence(st, T))


def _memory_terms(st: ModelStructure, rules: Rules) -> dict[str, sp.Expr]:
    S, T, tp, ep, W, eta_m, bw = sym("context", "prompt", "tp", "ep", "hbm_bytes_per_s",
                                     "hbm_efficiency", "weight_bytes")
    p = arch.param_counts(st)
    tokens = tokens_in_flight(rules)
    routed = 0
    if st.mlp == "moe":
        frac = 1 if rules.expert_fetch == "all" else arch.expert_touch_fraction(tokens)
        routed = frac * p.routed * arch.placed_experts() / (tp * ep)  # of the E + R placed copies
    # weight-gathered layouts: each chip reads the N/tp of a layer it gathered, not 1/tp
    head = sym("vocab_size") * sym("d_model")
    nonrouted = (p.nonrouted_fetch - head) * gathered_chips(rules) + head
    weights = bw * (nonrouted / tp + routed) / (W * eta_m)
    # decode reads the cache of every sequence; prefill writes the prompt's cache
    kv_tokens = microbatch(rules) * arch.attended_tokens(st, S if rules.phase == "decode" else T)
    r_kv = arch.kv_heads_replication(st, rules.attention_sharding)
    kv = kv_tokens * arch.kv_bytes_per_token(st) * r_kv / (tp * ep * W * eta_m)
    return {"weights_s": weights, "kv_s": kv}


def achieved_flops_per_s() -> sp.Expr:
    """``C·η_c·(1 - m_8·(1 - φ_8))``: peak FLOP/s times the achievable fraction, times ``φ_8`` when the
    math runs in an 8-bit or narrower format (``m_8 = 1``), whose kernels reach a smaller fraction of
    their doubled peak (docs/theory.md §5.6)."""
    C, eta_c, m8, phi = sym("flops_per_s", "flops_efficiency", "low_precision_math", "low_precision_flops_factor")
    return C * eta_c * (1 - m8 * (1 - phi))


def _compute_terms(st: ModelStructure, rules: Rules) -> dict[str, sp.Expr]:
    tp, ep = sym("tp", "ep")
    C, eta_c = achieved_flops_per_s(), 1
    b = microbatch(rules)
    p = arch.param_counts(st)
    per_token = 1 if rules.phase == "decode" else sym("prompt")
    # the busiest expert group does ι_ep times the mean routed work, and sets the step
    routed_active = p.routed * sym("experts_per_token") / sym("n_experts") if st.mlp == "moe" else 0
    extra = (sym("expert_imbalance") - 1) * b * 2 * routed_active * per_token
    total = (useful_flops(st, rules, b) + extra) / (tp * ep * C * eta_c)
    per_seq = 2 * p.matmul * per_token
    return {"compute_s": total, "compute_matmul_s": (b * per_seq + extra) / (tp * ep * C * eta_c)}


def communication_terms(st: ModelStructure, rules: Rules) -> dict[str, sp.Expr]:
    """Seconds per step of each parallelism's collectives (docs/theory.md §5.5, §13, §14).

    ``communication_tp_s``: the layout's tensor-parallel collectives plus, for
    batch-sharded attention, its all-to-alls; ``communication_ep_s``: MoE
    dispatch (``b_d`` bytes per element) and combine (``b_a``), ``2·L_moe``
    all-to-alls over the ``ep`` groups, flat inside one scale-up domain and
    hierarchical across domains (:mod:`.dispatch`); ``communication_pp_s``:
    ``pp-1`` hops of ``t·D·b_a``.
    """
    D, ba, tp, pp, ep = sym("d_model", "activation_bytes", "tp", "pp", "ep")
    tokens = tokens_in_flight(rules)
    t_tp = tensor_parallel_s(st, rules, tokens / ep) + attention_resharding_s(st, rules, tokens / ep)
    t_pp = (pp - 1) * point_to_point_s(tokens / ep * D * ba, link_bytes_per_s(tp * ep * pp))
    t_ep = expert_parallel_s(tokens) if st.mlp == "moe" else sp.Integer(0)
    return {"communication_tp_s": t_tp, "communication_ep_s": t_ep, "communication_pp_s": t_pp}


def _combine(rules: Rules, t: dict[str, sp.Expr]) -> sp.Expr:
    mem = t["weights_s"] + t["kv_s"]
    if rules.combine == "max":
        return sp.Max(t["compute_s"], mem)
    if rules.combine == "sum":
        return t["compute_s"] + mem
    # [S]: attention (its KV traffic, or its FLOPs when those take longer, as in prefill) is not
    # overlapped with the weight-bound matmuls; dropping attention FLOPs would let MFU exceed 1.
    attention_compute = t["compute_s"] - t["compute_matmul_s"]
    return sp.Max(t["kv_s"], attention_compute) + sp.Max(t["compute_matmul_s"], t["weights_s"])


def overhead_terms(st: ModelStructure, rules: Rules) -> sp.Expr:
    """Fixed per-step costs that bandwidth and FLOP/s do not explain (docs/theory.md §5.7).

    ``L·n_k·(t_k + (1 - g)·t_launch)``: every serial kernel pays a device-side fixed time ``t_k``
    (ramp-up, tail, the gap between dependent kernels), and a host launch ``t_launch`` unless the
    step replays a CUDA graph (``g = 1``). Plus the dequantisation of weight-only formats,
    ``(w_8·k_8 + w_4·k_4)·N_w/(C·η_c)``: every fetched weight element is unpacked and scaled in
    registers before the matrix multiply, ``k`` FLOP-equivalents per element, serial with the fetch
    at the batch sizes where the fetch binds. Collective latencies are in the communication term
    (``α + steps·α_step`` per collective, :mod:`.collectives`).
    """
    L, nk, tk, tl, g = sym("n_layers", "kernels_per_layer", "kernel_overhead_s", "launch_overhead_s", "cuda_graphs")
    tp, C, eta_c = sym("tp"), achieved_flops_per_s(), 1
    w8, w4, k8, k4 = sym("weight_only_8bit", "weight_only_4bit", "dequant_flops_8bit", "dequant_flops_4bit")
    p = arch.param_counts(st)
    elements = p.nonrouted_fetch / tp + (p.routed / (tp * sym("ep")) if st.mlp == "moe" else 0)
    return L * nk * (tk + (1 - g) * tl) + (w8 * k8 + w4 * k4) * elements / (C * eta_c)


def step_terms(st: ModelStructure, rules: Rules) -> dict[str, sp.Expr]:
    """The step-time breakdown of one replica, in seconds.

    Returns ``compute_s``, ``weights_s``, ``kv_s``, ``communication_s``,
    ``overhead_s``, ``roofline_s`` (the combined compute/memory time) and
    ``step_time_s`` (decode: time per output token; prefill: time to prefill the batch).
    Under ``rules.step == "operators"`` the step is the sum of the kernels of
    :func:`.operators.operators`, with one ``op_<name>_s`` row per operator (docs/theory.md §20).
    """
    if rules.step == "operators":
        B, S, T, pp = sym("batch", "context", "prompt", "pp")
        tok = Tokens(decode_seqs=B / pp, context=S) if rules.phase == "decode" else Tokens(prefill_seqs=B, prompt=T)
        return operator_terms(st, rules, tok)
    t = {**_compute_terms(st, rules), **_memory_terms(st, rules)}
    roof = _combine(rules, t)
    parts = communication_terms(st, rules)
    comm = parts["communication_tp_s"] + parts["communication_ep_s"] + parts["communication_pp_s"]
    overhead = overhead_terms(st, rules)
    step = (roof + comm if rules.comm_overlap == "none" else sp.Max(roof, comm)) + overhead
    return {
        "compute_s": t["compute_s"],
        "weights_s": t["weights_s"],
        "kv_s": t["kv_s"],
        "communication_s": comm,
        **parts,
        "overhead_s": overhead,
        "roofline_s": roof,
        "step_time_s": step,
    }
