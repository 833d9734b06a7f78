"""The symbol table: every input of the model, with its unit, LaTeX name and meaning.

Symbol names equal the Python keyword names used by specs and the compiled
functions, so inputs map one to one. docs/theory.md §1 defines the notation.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = ["SymbolInfo", "SYMBOLS", "sym", "latex_names"]


@dataclass(frozen=True)
class SymbolInfo:
    """One model input: its SymPy symbol, unit, LaTeX name and meaning."""

    symbol: sp.Symbol
    unit: str
    latex: str
    meaning: str
    group: str


_TABLE: list[tuple[str, str, str, str, str]] = [
    # name, unit, latex, meaning, group
    ("n_layers", "1", "L", "transformer layers", "model"),
    ("d_model", "elements", "D", "residual width", "model"),
    ("n_heads", "1", "N_q", "query heads", "model"),
    ("n_kv_heads", "1", "N_{kv}", "key/value heads", "model"),
    ("d_head", "elements", "H", "head dimension", "model"),
    ("vocab_size", "tokens", "V", "vocabulary size", "model"),
    ("d_ff", "elements", "F", "dense MLP hidden width", "model"),
    ("mlp_matrices", "1", "m", "matrices per MLP (3 gated, 2 plain)", "model"),
    ("n_embedding_matrices", "1", "n_{emb}", "embedding matrices (1 tied, 2 untied)", "model"),
    ("allreduces_per_layer", "1", "n_{AR}", "tensor-parallel all-reduces per layer", "model"),
    ("attention_bias", "1", "b_{qkv}", "1 if q/k/v projections have biases", "model"),
    ("n_experts", "1", "E", "routed experts per MoE layer", "model"),
    ("experts_per_token", "1", "k", "routed experts chosen per token", "model"),
    ("n_shared_experts", "1", "E_s", "shared experts per MoE layer", "model"),
    ("d_ff_expert", "elements", "F_e", "expert hidden width", "model"),
    ("n_moe_layers", "1", "L_{moe}", "MoE layers", "model"),
    ("n_expert_groups", "1", "n_g", "expert groups of node-limited routing (1: no limit)", "model"),
    ("expert_groups_per_token", "1", "m_g", "expert groups a token's experts are chosen from", "model"),
    ("q_lora_rank", "elements", "d_{cq}", "MLA query latent width", "model"),
    ("kv_lora_rank", "elements", "d_c", "MLA KV latent width", "model"),
    ("qk_rope_head_dim", "elements", "d_R", "MLA decoupled RoPE key width", "model"),
    ("qk_nope_head_dim", "elements", "H_n", "MLA per-head no-RoPE q/k width", "model"),
    ("v_head_dim", "elements", "H_v", "MLA per-head value width", "model"),
    ("n_window_layers", "1", "L_{w}", "layers attending at most W_a tokens (sliding window or chunk)", "model"),
    ("attention_window", "tokens", "W_{a}", "attention window (sliding) or chunk (chunked) length", "model"),
    ("weight_bytes", "bytes", "b_w", "bytes per weight", "precision"),
    ("kv_bytes", "bytes", "b_{kv}", "bytes per KV-cache element", "precision"),
    ("activation_bytes", "bytes", "b_a", "bytes per activation element", "precision"),
    ("dispatch_bytes", "bytes", "b_d", "bytes per element of the MoE dispatch (the combine moves b_a)",
     "precision"),
    ("batch", "sequences", "B", "sequences per replica (decode: tokens per step; prefill: prompts)", "workload"),
    ("context", "tokens", "S", "cached context per sequence", "workload"),
    ("prompt", "tokens", "T_{in}", "prompt tokens per sequence in prefill", "workload"),
    ("tp", "chips", "n_{tp}", "tensor-parallel degree", "parallel"),
    ("pp", "chips", "n_{pp}", "pipeline stages", "parallel"),
    ("ep", "chips", "n_{ep}", "expert-parallel degree", "parallel"),
    ("redundant_experts", "1", "R", "extra copies of routed experts placed over the expert groups", "parallel"),
    ("expert_imbalance", "1", r"\iota_{ep}", "routed tokens of the busiest expert group over the mean",
     "parallel"),
    ("replicas", "1", "n_{rep}", "data-parallel replicas", "parallel"),
    ("flops_per_s", "FLOP/s", "C", "peak dense FLOP/s per chip at the math precision", "hardware"),
    ("attention_flops_per_s", "FLOP/s", "C_{16}", "peak dense 16-bit FLOP/s per chip: the math attention kernels "
     "run in", "hardware"),
    ("hbm_bytes_per_s", "bytes/s", "W", "HBM bandwidth per chip", "hardware"),
    ("hbm_bytes", "bytes", "M", "HBM capacity per chip", "hardware"),
    ("scale_up_bytes_per_s", "bytes/s", "W_{up}", "per-chip collective bandwidth in the scale-up domain", "hardware"),
    ("scale_up_domain_chips", "chips", "n_{up}", "chips in one scale-up domain", "hardware"),
    ("scale_out_bytes_per_s", "bytes/s", "W_{out}", "per-chip bandwidth leaving the scale-up domain", "hardware"),
    ("collective_latency_s", "s", r"\alpha", "fixed latency of one collective", "hardware"),
    ("collective_step_latency_s", "s", r"\alpha_{step}",
     "latency of one ring step (switch) or one hop (torus) of a collective", "hardware"),
    ("is_torus", "1", r"\tau", "1 on a torus interconnect (per-axis bandwidth, hops), 0 on a switched fabric",
     "hardware"),
    ("mesh_x_share", "1", r"\xi_x", "first mesh axis as a power of tp: X = tp^share (4x4x4 of 64: 1/3)",
     "parallel"),
    ("mesh_y_share", "1", r"\xi_y", "second mesh axis: Y = tp^share; the third is Z = tp/(X·Y)", "parallel"),
    ("usd_per_chip_hour", "USD/(chip h)", "p", "price per chip-hour", "hardware"),
    ("flops_efficiency", "1", r"\eta_c", "achievable fraction of peak FLOP/s", "efficiency"),
    ("hbm_efficiency", "1", r"\eta_m", "achievable fraction of peak HBM bandwidth", "efficiency"),
    ("comm_efficiency", "1", r"\eta_{ici}", "achievable fraction of interconnect bandwidth", "efficiency"),
    ("kernel_overhead_s", "s", "t_k", "fixed overhead per serial kernel", "efficiency"),
    ("kernels_per_layer", "1", "n_k", "serial kernels per layer", "efficiency"),
    ("launch_overhead_s", "s", "t_{launch}", "host launch time per kernel not replayed from a CUDA graph",
     "efficiency"),
    ("cuda_graphs", "1", "g", "1 when the step replays a captured CUDA graph (no per-kernel launches), 0 when not",
     "efficiency"),
    ("dequant_flops_8bit", "FLOP", "k_{8}",
     "dequantisation work per 8-bit weight element of a weight-only format, in tensor-core FLOP", "efficiency"),
    ("dequant_flops_4bit", "FLOP", "k_{4}",
     "dequantisation work per 4-bit weight element of a weight-only format, in tensor-core FLOP", "efficiency"),
    ("low_precision_flops_factor", "1", r"\varphi_8",
     "achievable fraction of peak of 8-bit-or-narrower math relative to 16-bit math", "efficiency"),
    ("low_precision_math", "1", "m_{8}", "1 when the math runs in an 8-bit or narrower format", "precision"),
    ("weight_only_8bit", "1", "w_{8}", "1 when 8-bit weights are multiplied in a wider format (weight-only)",
     "precision"),
    ("weight_only_4bit", "1", "w_{4}", "1 when 4-bit weights are multiplied in a wider format (weight-only)",
     "precision"),
    ("memory_fraction", "1", "u", "usable fraction of HBM", "efficiency"),
    ("kv_memory_fraction", "1", "f_{kv}",
     "fraction of the memory left after weights and activations that the KV cache gets", "efficiency"),
    ("activations_in_budget", "1", r"\alpha_{act}",
     "1 when the engine's memory budget counts activations, 0 when they live outside it", "efficiency"),
    # the operator-level step (costmodel.symbolic.kernels, docs/theory.md §20); ideal values make every factor 1
    ("gemm_tile_m", "tokens", "m_t", "GEMM output tile rows (tile padding of M)", "efficiency"),
    ("gemm_tile_n", "elements", "n_t", "GEMM output tile columns (tile padding of N)", "efficiency"),
    ("gemm_split_k", "elements", "k_t", "GEMM reduction chunk of one work unit (split-K)", "efficiency"),
    ("compute_units", "1", "n_{SM}", "work units a chip runs at once (SMs): the wave size", "efficiency"),
    ("gemm_k_half", "elements", "k_0", "GEMM reduction length at which prologue and epilogue halve efficiency",
     "efficiency"),
    ("attention_decode_efficiency", "1", r"\eta_{ad}", "achievable fraction of HBM bandwidth of decode attention",
     "efficiency"),
    ("attention_decode_work_half", "bytes", "P_0",
     "bytes a decode-attention kernel streams at half its bandwidth", "efficiency"),
    ("attention_prefill_efficiency", "1", r"\eta_{ap}", "achievable fraction of peak FLOP/s of prefill attention",
     "efficiency"),
    ("attention_prefill_rows_half", "1", "R_{1/2}", "query rows (sequences x heads x tokens) at which prefill "
     "attention reaches half its efficiency", "efficiency"),
    ("mla_decode_efficiency", "1", r"\eta_{mla}", "achievable fraction of peak FLOP/s of MLA decode attention",
     "efficiency"),
    ("mla_hbm_efficiency", "1", r"\eta_{mla,m}", "achievable fraction of HBM bandwidth of MLA decode attention",
     "efficiency"),
    ("mla_floor_s", "s", r"\tau_{mla}", "fixed time an MLA decode kernel adds to the launch floor (its "
     "split metadata and the combine of the splits)", "efficiency"),
    ("mla_head_tile", "1", "h_t", "query heads one MLA decode tile processes (head padding)", "efficiency"),
    ("moe_gemm_efficiency", "1", r"\eta_{moe}", "achievable fraction of peak FLOP/s of the MoE grouped GEMMs",
     "efficiency"),
    ("moe_imbalance", "1", r"\iota", "tokens of the busiest expert over the mean (1: balanced routing)",
     "efficiency"),
    ("attention_floor_s", "s", r"\tau_{att}", "fixed time an attention kernel adds to the launch floor (split-KV "
     "reduction, scheduling)", "efficiency"),
    ("decode_attention_block_s", "s", r"t_{bd}", "time an SM spends per (sequence, KV head) thread block of decode "
     "attention besides its KV stream (setup, query load, softmax reduction, output)", "efficiency"),
    ("attention_group_tile", "1", "g_t", "query heads per KV head one decode-attention thread block serves; a "
     "larger group reads the KV cache once per tile of g_t", "efficiency"),
    ("attention_group_limit", "1", r"g_{max}", "the largest group (query heads per KV head) the grouped-query "
     "decode kernel takes; larger groups run the generic kernel, a thread block per query head", "efficiency"),
    ("attention_fallback_efficiency", "1", r"\eta_{fb}", "fraction of the 16-bit tensor-core peak the generic "
     "decode-attention kernel reaches (its FLOPs on CUDA cores)", "efficiency"),
    ("decode_attention_row_s", "s", r"t_{rd}", "time an SM spends per (sequence, query head) row of decode "
     "attention besides its KV stream (query load, softmax, output)", "efficiency"),
    ("prefill_attention_block_s", "s", r"t_{bp}", "time an SM spends per (sequence, head, query block) of prefill "
     "attention outside its FLOPs (tile setup, softmax rescaling, output)", "efficiency"),
    ("prefill_attention_row_s", "s", r"t_{rp}", "time an SM spends per (sequence, head, query token) row of prefill "
     "attention outside its FLOPs (loading the query, the softmax's running state, writing the output)",
     "efficiency"),
    ("attention_block_tokens", "tokens", "b_{q}", "query (and key) block of a prefill-attention tile: the causal "
     "diagonal and the window edges are computed in whole blocks", "efficiency"),
    ("attention_softmax_width", "elements", "H_s", "the softmax's cost per (query, key) pair in head elements of "
     "tensor-core time", "efficiency"),
    ("attention_window_block_tokens", "tokens", "b_w", "keys past a sliding window that its prefill kernel "
     "computes per query (whole key blocks)", "efficiency"),
    ("low_precision_hbm_factor", "1", r"\psi_8", "fraction of the 16-bit kernels' HBM efficiency an 8-bit matrix "
     "kernel's weight stream reaches", "efficiency"),
    ("quantise_overhead_s", "s", r"\tau_q", "time of the kernel that quantises a GEMM's input activations to "
     "8 bits", "efficiency"),
    ("moe_floor_s", "s", r"\tau_{moe}", "fixed time a grouped-GEMM kernel adds to the launch floor (expert "
     "offsets, tile scheduling)", "efficiency"),
    ("graph_floor_fraction", "1", r"\rho_g", "fraction of a kernel's measured fixed time that remains when a step "
     "replays it from a CUDA graph", "efficiency"),
    ("moe_token_passes", "1", r"\kappa", "trips of the routed tokens through HBM between the MoE's kernels (0: "
     "a fully fused MoE keeps them on chip)", "efficiency"),
    ("oneshot_allreduce_latency_s", "s", r"\alpha_1", "fixed latency of a one-shot (custom) all-reduce",
     "efficiency"),
    # power and electricity (costmodel.symbolic.power, docs/theory.md §21)
    ("max_power_w", "W", r"P_{max}", "board power per chip at full load (the datasheet's maximum, TDP)", "hardware"),
    ("idle_power_w", "W", r"P_{idle}", "board power per chip when idle", "hardware"),
    ("host_power_w", "W", r"P_{host}", "power of the host (CPUs, NICs, fans, memory) per chip", "hardware"),
    ("memory_power_share", "1", r"\beta_m", "fraction of the board's power above idle that streaming HBM at the "
     "achievable bandwidth draws with the compute units idle", "hardware"),
    ("usd_per_kwh", "USD/kWh", r"p_e", "price of electricity", "electricity"),
    ("pue", "1", r"\mathrm{PUE}", "power usage effectiveness: facility energy over IT energy", "electricity"),
    ("owned", "1", "o", "1 when the chips are owned (their price excludes power, so electricity is added), 0 when "
     "rented", "electricity"),
    # serving (costmodel.symbolic.serving, docs/serving.md §19)
    ("steps", "steps", "n", "decode steps summed over a static batch's generation", "serving"),
    ("prefill_tokens", "tokens", "c", "prompt tokens a mixed step prefills (chunked prefill), per replica", "serving"),
    ("prefill_position", "tokens", r"\bar{A}", "mean positions a prefilled token attends to", "serving"),
    ("draft_length", "tokens", r"\gamma", "speculative draft tokens per step (0: no speculation)", "serving"),
    ("acceptance", "1", "a", "probability that a draft token is accepted", "serving"),
]

_MAY_BE_ZERO = {"d_ff", "n_shared_experts", "low_precision_math", "activations_in_budget", "launch_overhead_s", "cuda_graphs", "dequant_flops_8bit",
                "dequant_flops_4bit", "weight_only_8bit", "weight_only_4bit", "prefill_tokens", "prefill_position", "draft_length", "acceptance",
                "attention_bias", "kernel_overhead_s", "collective_latency_s", "collective_step_latency_s", "is_torus",
                "mesh_x_share", "mesh_y_share", "gemm_k_half", "attention_decode_work_half",
                "attention_prefill_rows_half", "oneshot_allreduce_latency_s", "attention_floor_s",
                "moe_floor_s", "decode_attention_block_s", "prefill_attention_block_s",
                "decode_attention_row_s", "prefill_attention_row_s", "attention_softmax_width", "attention_window_block_tokens",
                "mla_floor_s", "quantise_overhead_s", "moe_token_passes", "redundant_experts",
                "max_power_w", "idle_power_w", "host_power_w", "memory_power_share", "usd_per_kwh", "owned"}

SYMBOLS: dict[str, SymbolInfo] = {
    name: SymbolInfo(
        sp.Symbol(name, nonnegative=True) if name in _MAY_BE_ZERO else sp.Symbol(name, positive=True),
        unit, latex, meaning, group,
    )
    for name, unit, latex, meaning, group in _TABLE
}


def sym(*names: str) -> sp.Symbol | tuple[sp.Symbol, ...]:
    """The SymPy symbol(s) of the named inputs."""
    out = tuple(SYMBOLS[n].symbol for n in names)
    return out[0] if len(out) == 1 else out


def latex_names() -> dict[sp.Symbol, str]:
    """Map symbol -> LaTeX, for ``sympy.latex(expr, symbol_names=latex_names())``."""
    return {info.symbol: info.latex for info in SYMBOLS.values()}
