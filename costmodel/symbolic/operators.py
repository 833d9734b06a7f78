"""The step as the kernels an engine runs: one row per operator, each its own roofline (docs/theory.md §20).

A layer of each architecture expands into the operators GPU engines launch (TensorRT-LLM, vLLM and
SGLang model code; the boundaries follow the kernels those engines fuse):

* every layer: two norms (``norm``), the tensor-parallel all-reduces (``tp_all_reduce``);
* GQA/MHA/MQA attention: ``qkv_gemm``, ``attention_decode`` / ``attention_prefill`` /
  ``attention_chunk`` (global and windowed layers in separate rows), ``o_gemm``;
* MLA: ``mla_down_gemm`` (the q/kv down-projections fused, not sharded), ``q_up_gemm``,
  ``latent_norm``; decode with absorbed projections: ``mla_bmm_pre``, ``mla_attention_decode``,
  ``mla_bmm_post``; prefill and chunks: ``kv_up_gemm``, ``mla_attention_prefill`` /
  ``mla_attention_chunk``; ``o_gemm``;
* dense MLP: ``gate_up_gemm``, ``activation``, ``down_gemm``;
* MoE: ``router_gemm`` (replicated), ``moe_routing`` (top-k and permute), ``moe_up_gemm`` (its
  epilogue applies the gated activation) and ``moe_down_gemm`` (grouped GEMMs over the local
  experts), ``moe_finalize``, ``shared_up_gemm`` / ``shared_down_gemm``, ``moe_all_to_all``. Its HBM
  traffic is the touched experts' weights, the block's input and output, and ``κ`` trips of the
  routed tokens (``moe_token_passes``: 0 when a fused MoE keeps them on chip, the ideal);
* once per step: ``embedding``, ``final_norm``, ``lm_head``, ``pp_send``, ``dequantise``.

Pipelining: a step pushes ``pp`` micro-batches through ``L/pp`` layers each, so a chip runs every
layer operator ``L`` times on a micro-batch's tokens (as :mod:`.step` counts). Attention is
data-parallel over the ``ep`` groups; routed experts are split ``tp·ep`` ways.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from ..errors import ConfigError
from ..specs.model import ModelStructure
from . import architecture as arch
from . import kernels as kn
from .collectives import link_bytes_per_s, point_to_point_s
from .dispatch import expert_parallel_s
from .layouts import _span, attention_resharding_s, mesh_axes
from .rules import Rules
from .symbols import sym

__all__ = ["Op", "Tokens", "operators", "operator_terms", "check_operator_rules"]

L, D, Nq, Nkv, H, V, F, m = sym("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "vocab_size", "d_ff",
                                "mlp_matrices")
E, k, Es, Fe, Lmoe = sym("n_experts", "experts_per_token", "n_shared_experts", "d_ff_expert", "n_moe_layers")
dcq, dc, dR, Hn, Hv = sym("q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
Lw, Wa = sym("n_window_layers", "attention_window")
tp, pp, ep = sym("tp", "pp", "ep")
bw, bkv, ba = sym("weight_bytes", "kv_bytes", "activation_bytes")


@dataclass(frozen=True)
class Op:
    """One operator row: ``count`` launches per step on one chip of ``kernel`` each.

    Attributes:
        name: the operator (``qkv_gemm``, ``attention_decode``, ...).
        kind: its kernel class: ``gemm``, ``grouped_gemm``, ``attention_decode``, ``attention_prefill``,
            ``mla_decode``, ``elementwise``, ``collective`` or ``fixed``.
        count: launches per step.
        kernel: FLOPs, bytes and time of one launch (:class:`.kernels.Kernel`).
        memory: what its bytes are: ``"weights"``, ``"kv"``, ``"activations"`` or ``"network"``.
        shape: the dimensions that set its efficiency (``M``, ``N``, ``K``, ``heads``, ``context``, ...).
    """

    name: str
    kind: str
    count: sp.Expr
    kernel: kn.Kernel
    memory: str
    shape: tuple[tuple[str, sp.Expr], ...] = ()

    @property
    def time_s(self) -> sp.Expr:
        """Seconds per step: ``count·time``."""
        return self.count * self.kernel.time_s


@dataclass(frozen=True)
class Tokens:
    """What one micro-batch pushes through the layers in a step.

    Attributes:
        decode_seqs: decoding sequences, each verifying ``queries`` tokens over ``context`` cached ones.
        prefill_seqs: sequences prefilling ``prompt`` tokens each from position 0.
        chunk: prompt tokens of a chunked prefill, attending ``chunk_position`` positions on average.
    """

    decode_seqs: sp.Expr = sp.Integer(0)
    queries: sp.Expr = sp.Integer(1)
    context: sp.Expr = sp.Integer(0)
    prefill_seqs: sp.Expr = sp.Integer(0)
    prompt: sp.Expr = sp.Integer(0)
    chunk: sp.Expr = sp.Integer(0)
    chunk_position: sp.Expr = sp.Integer(0)

    @property
    def total(self) -> sp.Expr:
        """Tokens through the GEMMs: ``decode_seqs·queries + prefill_seqs·prompt + chunk``."""
        return self.decode_seqs * self.queries + self.prefill_seqs * self.prompt + self.chunk


def check_operator_rules(rules: Rules) -> None:
    """The operator step models what GPU engines run: 1D weight-stationary layers, communication not
    overlapped, each kernel its own maximum. Other rules raise a :class:`ConfigError`."""
    if rules.layout != "1d-ws" or rules.comm_overlap != "none" or rules.combine != "max":
        raise ConfigError("step='operators' models the kernels GPU engines run: layout '1d-ws', comm_overlap "
                          f"'none' and combine 'max' (got layout={rules.layout!r}, comm_overlap="
                          f"{rules.comm_overlap!r}, combine={rules.combine!r}); use step='roofline' for the others")


def _gemm(name: str, M, N, K, extra_bytes=sp.Integer(0)) -> Op:
    kernel = kn.gemm(M, N, K, weight_bytes=bw, activation_bytes=ba, extra_bytes=extra_bytes)
    return Op(name, "gemm", sp.Integer(1), kernel, "weights", (("M", M), ("N", N), ("K", K)))


def _times(op: Op, count) -> Op:
    return Op(op.name, op.kind, op.count * count, op.kernel, op.memory, op.shape)


def _elementwise(name: str, count, nbytes) -> Op:
    return Op(name, "elementwise", count, kn.elementwise(nbytes), "activations")


def _attention_layers(st: ModelStructure) -> tuple[tuple[str, sp.Expr, object], ...]:
    """``(suffix, layers, window)``: global layers, then windowed ones (``None``: no window)."""
    if st.window == "none":
        return (("", L, None),)
    return (("", L - Lw, None), ("_window", Lw, Wa))


def _heads(st: ModelStructure, rules: Rules, seqs):
    """Sequences, query heads and KV heads one chip's attention handles."""
    if rules.attention_sharding == "batch":
        return seqs / (tp * ep), Nq, Nkv
    return seqs / ep, Nq / tp, Nkv * arch.kv_heads_replication(st) / tp


def _gqa_attention(st: ModelStructure, rules: Rules, tok: Tokens, decode: bool, prefill: bool,
                   chunk: bool) -> list[Op]:
    ops = []
    for suffix, layers, window in _attention_layers(st):
        clip = (lambda x: x) if window is None else (lambda x, w=window: sp.Min(x, w))
        if decode:
            seqs, hq, hkv = _heads(st, rules, tok.decode_seqs)
            S = clip(tok.context)
            k_ = kn.decode_attention(seqs, hq, hkv, H, S, tok.queries, kv_bytes=bkv, activation_bytes=ba)
            ops.append(Op("attention_decode" + suffix, "attention_decode", layers, k_, "kv",
                          (("sequences", seqs), ("heads", hq), ("kv_heads", hkv), ("context", S))))
        if prefill or chunk:
            _, hq, hkv = _heads(st, _head_sharded(rules), sp.Integer(1))
            seqs = tok.prefill_seqs / ep if prefill else sp.Integer(1)
            T = tok.prompt if prefill else tok.chunk / ep
            pairs = _pairs(st, window, T) if prefill else T * clip(tok.chunk_position)
            kv_write = seqs * T * 2 * hkv * H * bkv
            edge = sp.Min(T, window) if (prefill and window is not None and st.window == "sliding") else None
            k_ = kn.prefill_attention(seqs, hq, hkv, 2 * H, T, pairs, kv_write_bytes=kv_write, activation_bytes=ba,
                                      window=edge, kv_bytes=bkv)
            name = "attention_prefill" if prefill else "attention_chunk"
            ops.append(Op(name + suffix, "attention_prefill", layers * (1 if prefill else sp.Min(1, tok.chunk)), k_,
                          "kv", (("sequences", seqs), ("heads", hq), ("kv_heads", hkv), ("tokens", T))))
    return ops


def _head_sharded(rules: Rules) -> Rules:
    """Prefill attention is head-sharded under either sharding (docs/theory.md §13.3)."""
    return replace(rules, attention_sharding="heads")


def _pairs(st: ModelStructure, window, T):
    if window is None:
        return T**2 / 2
    w = sp.Min(T, window)
    return w * (T - w / 2) if st.window == "sliding" else w * T / 2


def _mla_attention(st: ModelStructure, rules: Rules, tok: Tokens, decode: bool, prefill: bool,
                   chunk: bool) -> list[Op]:
    ops = []
    width = Hn + dR + Hv
    if decode:
        s_dec = tok.decode_seqs * tok.queries / ep
        seqs, hq, _ = _heads(st, rules, tok.decode_seqs)
        ops.append(_times(_gemm("mla_bmm_pre", s_dec, Nq / tp * dc, Hn), L))
        k_ = kn.mla_decode_attention(seqs, hq, tok.context, tok.queries, kv_bytes=bkv, activation_bytes=ba)
        ops.append(Op("mla_attention_decode", "mla_decode", L, k_, "kv",
                      (("sequences", seqs), ("heads", hq), ("context", tok.context))))
        ops.append(_times(_gemm("mla_bmm_post", s_dec, Nq / tp * Hv, dc), L))
    if prefill or chunk:
        seqs = tok.prefill_seqs / ep if prefill else sp.Integer(1)
        T = tok.prompt if prefill else tok.chunk / ep
        live = 1 if prefill else sp.Min(1, tok.chunk)
        ops.append(_times(_gemm("kv_up_gemm", seqs * T, Nq * (Hn + Hv) / tp, dc), L * live))
        pairs = T**2 / 2 if prefill else T * tok.chunk_position
        kv_write = seqs * T * (dc + dR) * bkv
        k_ = kn.prefill_attention(seqs, Nq / tp, Nq / tp, width, T, pairs, kv_write_bytes=kv_write,
                                  activation_bytes=ba, kv_bytes=bkv)
        name = "mla_attention_prefill" if prefill else "mla_attention_chunk"
        ops.append(Op(name, "attention_prefill", L * live, k_, "kv",
                      (("sequences", seqs), ("heads", Nq / tp), ("tokens", T))))
    return ops


def _attention_block(st: ModelStructure, rules: Rules, tok: Tokens, s, decode: bool, prefill: bool,
                     chunk: bool) -> list[Op]:
    if st.attention == "gqa":
        bias_bytes = sym("attention_bias") * (Nq + 2 * Nkv) * H / tp * bw
        qkv = _gemm("qkv_gemm", s, (Nq / tp + 2 * Nkv * arch.kv_heads_replication(st) / tp) * H, D,
                    extra_bytes=bias_bytes)
        return [_times(qkv, L), *_gqa_attention(st, rules, tok, decode, prefill, chunk),
                _times(_gemm("o_gemm", s, D, Nq * H / tp), L)]
    ops = []
    if st.q_compressed:
        ops.append(_times(_gemm("mla_down_gemm", s, dcq + dc + dR, D), L))
        ops.append(_times(_gemm("q_up_gemm", s, Nq * (Hn + dR) / tp, dcq), L))
        norm_width = dcq + dc
    else:
        ops.append(_times(_gemm("q_gemm", s, Nq * (Hn + dR) / tp, D), L))
        ops.append(_times(_gemm("mla_down_gemm", s, dc + dR, D), L))
        norm_width = dc
    ops.append(_elementwise("latent_norm", L, 2 * s * norm_width * ba + norm_width * bw))
    ops += _mla_attention(st, rules, tok, decode, prefill, chunk)
    ops.append(_times(_gemm("o_gemm", s, D, Nq * Hv / tp), L))
    return ops


def _mlp_block(st: ModelStructure, rules: Rules, s) -> list[Op]:
    dense_layers = L if st.mlp == "dense" else L - Lmoe
    ops = [_times(_gemm("gate_up_gemm", s, (m - 1) * F / tp, D), dense_layers),
           _elementwise("activation", dense_layers, s * m * F / tp * ba),
           _times(_gemm("down_gemm", s, D, F / tp), dense_layers)]
    if st.mlp == "dense":
        return ops
    t_all = s * ep  # the micro-batch's tokens, routed over every expert of the replica
    placed = E + sym("redundant_experts")  # with redundant copies, the load spreads over E + R experts
    Me = t_all * k / placed * sym("expert_imbalance")  # on the busiest expert group
    touched = 1 if rules.expert_fetch == "all" else arch.expert_touch_fraction(t_all)
    local = placed / ep
    shared = Lmoe * sp.Min(1, Es)
    up = kn.grouped_gemm(local, Me, (m - 1) * Fe / tp, D, touched=touched, weight_bytes=bw, activation_bytes=ba)
    down = kn.grouped_gemm(local, Me, D, Fe / tp, touched=touched, weight_bytes=bw, activation_bytes=ba)
    ops += [
        _times(_gemm("router_gemm", s, E, D), Lmoe),
        _elementwise("moe_routing", Lmoe, s * (D + 2 * k) * ba + sym("moe_token_passes") * s * k * D * ba),
        Op("moe_up_gemm", "grouped_gemm", Lmoe, up, "weights",
           (("experts", local), ("tokens_per_expert", Me), ("N", (m - 1) * Fe / tp), ("K", D))),
        Op("moe_down_gemm", "grouped_gemm", Lmoe, down, "weights",
           (("experts", local), ("tokens_per_expert", Me), ("N", D), ("K", Fe / tp))),
        _elementwise("moe_finalize", Lmoe, s * D * ba + sym("moe_token_passes") * s * k * D * ba),
        _times(_gemm("shared_up_gemm", s, (m - 1) * Es * Fe / tp, D), shared),
        _times(_gemm("shared_down_gemm", s, D, Es * Fe / tp), shared),
    ]
    ops.append(Op("moe_all_to_all", "collective", sp.Integer(1), kn.collective(expert_parallel_s(t_all)),
                      "network", (("tokens", t_all),)))
    return ops


def operators(st: ModelStructure, rules: Rules, tok: Tokens) -> list[Op]:
    """The operator rows of one step of a replica pushing ``tok`` through the layers (per chip).

    Structural zeros are left out: a decode step has no prefill rows, a prefill step no decode rows.
    """
    check_operator_rules(rules)
    decode = tok.decode_seqs != 0
    prefill = tok.prefill_seqs != 0
    chunk = tok.chunk != 0
    s = tok.total / ep  # tokens one chip's dense layers see
    nar = sym("allreduces_per_layer")
    ops = [_elementwise("embedding", sp.Integer(1), s * D * (bw + ba)),
           _elementwise("norm", 2 * L, 2 * s * D * ba + D * bw)]
    ops += _attention_block(st, rules, tok, s, decode, prefill, chunk)
    ops += _mlp_block(st, rules, s)
    ar = kn.all_reduce(s * D * ba, _span(mesh_axes()), tp)
    ops.append(Op("tp_all_reduce", "collective", L * nar, ar, "network", (("bytes", s * D * ba), ("ranks", tp))))
    reshard = attention_resharding_s(st, rules, s)
    if reshard != 0:
        ops.append(Op("attention_all_to_all", "collective", sp.Integer(1), kn.collective(reshard), "network"))
    logits = (tok.decode_seqs * tok.queries + tok.prefill_seqs) / ep
    ops += [_elementwise("final_norm", sp.Integer(1), 2 * logits * D * ba + D * bw),
            _gemm("lm_head", logits, V / tp, D)]
    hop = (pp - 1) * point_to_point_s(s * D * ba, link_bytes_per_s(tp * ep * pp))
    ops.append(Op("pp_send", "collective", sp.Integer(1), kn.collective(hop), "network"))
    w8, w4, k8, k4 = sym("weight_only_8bit", "weight_only_4bit", "dequant_flops_8bit", "dequant_flops_4bit")
    p = arch.param_counts(st)
    elements = p.nonrouted_fetch / tp + (p.routed / (tp * ep) if st.mlp == "moe" else 0)
    deq = (w8 * k8 + w4 * k4) * elements / (kn.kernel_rate_flops_per_s() * sym("flops_efficiency"))
    zero = sp.Integer(0)
    ops.append(Op("dequantise", "fixed", sp.Integer(1), kn.Kernel(zero, zero, deq, zero, zero, deq), "weights"))
    return ops


def operator_terms(st: ModelStructure, rules: Rules, tok: Tokens) -> dict[str, sp.Expr]:
    """The step of :func:`operators` as the breakdown keys of :func:`.step.step_terms`, plus, per
    operator, ``op_<name>_s`` (seconds per step), ``op_<name>_count`` (launches per step),
    ``op_<name>_flops`` and ``op_<name>_bytes`` (per step and chip), and ``op_<name>_compute_s`` /
    ``op_<name>_memory_s`` (its kernels' compute and memory times; for a collective, its time).
    ``step_time_s`` is the sum of the ``op_<name>_s``.

    ``compute_s`` and ``weights_s``/``kv_s`` sum each kernel's compute and memory times (what each
    kernel would take bound by that resource alone); ``overhead_s`` sums the launch floors;
    ``roofline_s`` is the step less communication.
    """
    ops = operators(st, rules, tok)
    out: dict[str, sp.Expr] = {}
    zero = sp.Integer(0)
    compute = weights = kv = comm = floors = zero
    for op in ops:
        out[f"op_{op.name}_s"] = op.time_s
        out[f"op_{op.name}_count"] = op.count
        out[f"op_{op.name}_flops"] = op.count * op.kernel.flops
        out[f"op_{op.name}_bytes"] = op.count * op.kernel.bytes
        out[f"op_{op.name}_compute_s"] = op.count * op.kernel.compute_s
        out[f"op_{op.name}_memory_s"] = op.count * op.kernel.memory_s
        if op.kind in ("collective", "fixed"):
            comm += op.time_s if op.kind == "collective" else zero
            floors += op.time_s if op.kind == "fixed" else zero
            continue
        compute += op.count * op.kernel.compute_s
        if op.memory == "kv":
            kv += op.count * op.kernel.memory_s
        else:
            weights += op.count * op.kernel.memory_s
        floors += op.count * op.kernel.floor_s
    step = sp.Add(*(out[f"op_{op.name}_s"] for op in ops))
    by_kind = {"communication_tp_s": zero, "communication_ep_s": zero, "communication_pp_s": zero}
    for op in ops:
        key = {"tp_all_reduce": "communication_tp_s", "attention_all_to_all": "communication_tp_s",
               "moe_all_to_all": "communication_ep_s", "pp_send": "communication_pp_s"}.get(op.name)
        if key:
            by_kind[key] += op.time_s
    return {"compute_s": compute, "weights_s": weights, "kv_s": kv, "communication_s": comm, **by_kind,
            "overhead_s": floors, "roofline_s": step - comm - floors, "step_time_s": step, **out}
