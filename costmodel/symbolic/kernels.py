"""The time of one kernel: its own roofline with efficiencies that are functions of its shape.

Every kernel of a step (docs/theory.md §20) is priced as

    t = max(F / (C·η_c(shape)), B / (W·η_m(shape))) + τ,   τ = ρ_g·t_k + (1 - g)·t_launch

where ``F`` are the kernel's useful FLOPs, ``B`` the bytes it must move through HBM, ``ρ_g`` the
part of a kernel's measured floor left when the step replays a CUDA graph (``g = 1``), and each
efficiency names its physics (§20.2):

* **GEMM** (NVIDIA, *Matrix Multiplication Background User's Guide*: tile and wave quantization).
  The output is cut into ``m_t×n_t`` tiles and the reduction evenly into ``⌈K/k_t⌉`` parts (split-K);
  ``u = ⌈M/m_t⌉·⌈N/n_t⌉·⌈K/k_t⌉`` work units run in ``⌈u/n_SM⌉`` waves over ``n_SM`` units, so
  the chip does the work of ``2·m_t·n_t·(K/⌈K/k_t⌉)·n_SM·⌈u/n_SM⌉`` FLOPs, at ``η_c·K/(K + k_0)`` of
  peak (a short reduction pays the prologue and epilogue). Non-decreasing in ``M`` and ``N``; a longer
  reduction split over idle SMs can be faster.
* **Decode attention** (Flash-Decoding, Dao et al. 2023): memory-bound; its bandwidth grows with
  the bytes it streams ``P`` as ``η_ad·P/(P + P_0)`` (a small read does not fill the memory pipes);
  a thread block serves at most ``g_t`` query heads of a KV head, so larger groups read the cache
  ``⌈g/g_t⌉`` times and pad its softmax rows to whole tiles. Multi-head attention (``g = 1``) and
  groups beyond ``g_max`` (the grouped-query kernel's largest, TensorRT-LLM's XQA) run the generic
  masked multi-head kernel: a thread block per query head, its FLOPs on CUDA cores at ``η_fb`` of the
  tensor-core peak.
* **Prefill attention** (FlashAttention-2/3, Dao 2023; Shah et al. 2024): compute-bound; its
  efficiency ramps with the query rows it spreads over the SMs (sequences × heads × tokens ``R``)
  as ``η_ap·R/(R + R_½)``; its query blocks run in whole waves over the SMs. The operator launches a
  QKV preprocessing kernel first (RoPE, the new K and V written to the cache; one more launch for an
  8-bit cache), whose bytes it streams before the attention starts.
* **MLA decode** (FlashMLA; DeepSeek-V3 report, arXiv 2412.19437): compute-bound at 128 heads;
  a tile holds ``h_t`` query heads, so ``h`` local heads do the work of ``h_t·⌈h/h_t⌉``; its
  latent stream reaches its own fraction ``η_mla,m`` of HBM bandwidth.
* **8-bit math** (FP8 GEMMs of TensorRT-LLM and vLLM): the compute rate is ``φ_8`` of the doubled
  peak (docs/theory.md §5.6), the weight stream ``ψ_8`` of the 16-bit one's bandwidth, and a GEMM's
  input activations are quantised by a kernel of their own first (``τ_q``; the fused MoE kernels
  quantise inside).
* **Grouped GEMM** (MoE): each local expert's ``M_e`` tokens pad to ``m_t``; the busiest expert
  holds ``ι`` times the mean.
* **All-reduce** (NCCL user guide, algorithms; TensorRT-LLM custom all-reduce): the engine takes the
  faster of a one-shot ``α_1 + (n-1)·V/W`` and NCCL's ring of :func:`.collectives.all_reduce_s`.
* **Element-wise** (norms, activations, routing): bytes at HBM speed, plus the floor.

Attention, MLA and grouped-GEMM kernels add their own fixed time (``τ_att``, ``τ_mla``, ``τ_moe``) to the
launch floor. Attention spends time per thread block over the ``n_SM`` SMs: in decode per
(sequence, KV head) and per query head, overlapped with its KV stream; in prefill per query block of
``b_q`` tokens of a head, added to its FLOPs, and it computes the causal diagonal in whole blocks.

Attention kernels multiply in 16 bits (``C_16``, the chip's bf16 peak) whatever the weights' format.
With every efficiency 1, every tile 1 and every floor 0 each kernel is ``max(F/C, B/W)``: the sum
over kernels is at least the single roofline ``max(ΣF/C, ΣB/W)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .collectives import all_reduce_s, link_bytes_per_s, Span
from .symbols import sym

__all__ = ["Kernel", "launch_floor_s", "gemm", "grouped_gemm", "decode_attention", "prefill_attention",
           "mla_decode_attention", "elementwise", "all_reduce", "collective", "kernel_rate_flops_per_s"]


@dataclass(frozen=True)
class Kernel:
    """One kernel's useful work and its time on one chip (SymPy expressions).

    Attributes:
        flops: useful FLOPs (multiply-add = 2), before any padding.
        bytes: bytes through HBM: weights, KV cache and unfused activations.
        compute_s: ``F_padded/(C·η_c)``.
        memory_s: ``B/(W·η_m)``.
        floor_s: fixed time per launch.
        time_s: ``max(compute_s, memory_s) + floor_s`` (a collective: its own formula).
    """

    flops: sp.Expr
    bytes: sp.Expr
    compute_s: sp.Expr
    memory_s: sp.Expr
    floor_s: sp.Expr
    time_s: sp.Expr


def _replayed(floor: sp.Expr) -> sp.Expr:
    """A kernel's device-side floor inside a step: ``ρ`` of it when the step replays a CUDA graph
    (``g = 1``; consecutive kernels of a graph overlap launch and tail, which a kernel measured on
    its own cannot), all of it when not."""
    g, rho = sym("cuda_graphs", "graph_floor_fraction")
    return floor * (1 - g * (1 - rho))


def launch_floor_s() -> sp.Expr:
    """``τ = ρ_g·t_k + (1 - g)·t_launch``: the device-side gap of a dependent kernel (``ρ_g`` of it in
    a replayed CUDA graph, :func:`_replayed`), plus a host launch unless the step replays a CUDA graph
    (CUDA C++ Programming Guide, "CUDA Graphs")."""
    tk, tl, g = sym("kernel_overhead_s", "launch_overhead_s", "cuda_graphs")
    return _replayed(tk) + (1 - g) * tl


def kernel_rate_flops_per_s() -> sp.Expr:
    """Peak FLOP/s at the math precision times ``(1 - m_8·(1 - φ_8))`` (docs/theory.md §5.6)."""
    C, m8, phi = sym("flops_per_s", "low_precision_math", "low_precision_flops_factor")
    return C * (1 - m8 * (1 - phi))


def _memory_s(nbytes: sp.Expr, eta: sp.Expr | None = None) -> sp.Expr:
    W, eta_m = sym("hbm_bytes_per_s", "hbm_efficiency")
    return nbytes / (W * (eta_m if eta is None else eta))


def _low_precision_memory_s(nbytes: sp.Expr) -> sp.Expr:
    """A matrix kernel's HBM time: ``η_m·(1 - m_8·(1 - ψ_8))`` of peak, ``ψ_8`` the fraction an 8-bit
    kernel's stream keeps of the 16-bit one's (scales, narrower loads)."""
    m8, psi = sym("low_precision_math", "low_precision_hbm_factor")
    return _memory_s(nbytes, sym("hbm_efficiency") * (1 - m8 * (1 - psi)))


def _quantise_floor_s() -> sp.Expr:
    """``m_8·τ_q``: 8-bit math quantises its input activations in a kernel of its own first."""
    return sym("low_precision_math") * sym("quantise_overhead_s")


def _kernel(flops, nbytes, compute_s, memory_s, extra_floor: sp.Expr = sp.Integer(0),
            launches: sp.Expr = sp.Integer(1)) -> Kernel:
    floor = launches * launch_floor_s() + _replayed(extra_floor)
    return Kernel(flops, nbytes, compute_s, memory_s, floor, sp.Max(compute_s, memory_s) + floor)


def _blocks_s(blocks: sp.Expr, per_block_s: sp.Expr) -> sp.Expr:
    """``blocks·t_b/n_SM``: work per thread block that neither FLOPs nor bytes explain, spread over the SMs."""
    return blocks * per_block_s / sym("compute_units")


def _waves_s(blocks: sp.Expr, per_block_s: sp.Expr) -> sp.Expr:
    """``⌈blocks/n_SM⌉·t_b``: thread blocks that each hold an SM for ``t_b`` run in whole waves over the
    ``n_SM`` SMs (the tile and wave quantization of NVIDIA's *Matrix Multiplication Background User's
    Guide*): a last, partly filled wave takes a whole block's time, and a kernel of few blocks at least one."""
    return sp.ceiling(blocks / sym("compute_units")) * per_block_s


def _padded_work(M: sp.Expr, N: sp.Expr, K: sp.Expr) -> sp.Expr:
    """FLOPs the chip spends on an ``M×N×K`` product: ``2·m_t·n_t·(K/⌈K/k_t⌉)·n_SM·⌈u/n_SM⌉`` (split-K
    cuts the reduction evenly into ``⌈K/k_t⌉`` parts of at most ``k_t``; a reduction is not padded)."""
    mt, nt, kt, nsm = sym("gemm_tile_m", "gemm_tile_n", "gemm_split_k", "compute_units")
    units = sp.ceiling(M / mt) * sp.ceiling(N / nt) * sp.ceiling(K / kt)
    return 2 * mt * nt * K / sp.Max(sp.ceiling(K / kt), 1) * nsm * sp.ceiling(units / nsm)  # K = 0: no work


def _short_k(K: sp.Expr, k0: sp.Expr) -> sp.Expr:
    """``(K + k_0)/K``, the prologue and epilogue of a short reduction (``K >= 1`` element; an absent
    GEMM of ``K = 0``, such as the dense MLP of an all-MoE model, has no work to scale)."""
    return (K + k0) / sp.Max(K, 1)


def gemm(M: sp.Expr, N: sp.Expr, K: sp.Expr, *, weight_bytes: sp.Expr, activation_bytes: sp.Expr,
         extra_bytes: sp.Expr = sp.Integer(0)) -> Kernel:
    """``(M×K)·(K×N)``: ``2MNK`` FLOPs; reads ``N·K`` weights (plus ``extra_bytes``, such as biases)
    and the ``M×K`` input, writes ``M×N``."""
    eta_c, k0 = sym("flops_efficiency", "gemm_k_half")
    flops = 2 * M * N * K
    nbytes = N * K * weight_bytes + (M * K + M * N) * activation_bytes + extra_bytes
    compute = _padded_work(M, N, K) * _short_k(K, k0) / (kernel_rate_flops_per_s() * eta_c)
    return _kernel(flops, nbytes, compute, _low_precision_memory_s(nbytes), _quantise_floor_s())


def grouped_gemm(experts: sp.Expr, tokens_per_expert: sp.Expr, N: sp.Expr, K: sp.Expr, *, touched: sp.Expr,
                 weight_bytes: sp.Expr, activation_bytes: sp.Expr) -> Kernel:
    """``experts`` products of ``M_e×K`` by ``K×N`` (MoE): the useful FLOPs are ``2·experts·M_e·N·K``;
    the weights of the ``touched`` fraction of experts are read, and the routed tokens' rows ``κ``
    times (``moe_token_passes``: 0 when a fused MoE keeps them on chip). Each expert's tokens pad to the tile
    ``m_t`` and the busiest expert holds ``ι·M_e`` of them."""
    mt, eta, k0, imb = sym("gemm_tile_m", "moe_gemm_efficiency", "gemm_k_half", "moe_imbalance")
    Me = tokens_per_expert
    flops = 2 * experts * Me * N * K
    # the routed tokens' trips through HBM between the MoE's kernels: κ (0 in a fully fused MoE) times
    # reading the input rows and writing the output rows of every expert
    trips = sym("moe_token_passes") * 2 * experts * Me * (K + N) * activation_bytes
    nbytes = touched * experts * N * K * weight_bytes + trips
    padded = 2 * experts * mt * sp.ceiling(imb * Me / mt) * N * K
    compute = padded * _short_k(K, k0) / (kernel_rate_flops_per_s() * eta)
    return _kernel(flops, nbytes, compute, _low_precision_memory_s(nbytes), sym("moe_floor_s"))


def decode_attention(seqs: sp.Expr, q_heads: sp.Expr, kv_heads: sp.Expr, head_dim: sp.Expr, context: sp.Expr,
                     queries: sp.Expr, *, kv_bytes: sp.Expr, activation_bytes: sp.Expr) -> Kernel:
    """Decode (or verify) attention of ``seqs`` sequences, ``queries`` new tokens each, over ``context``
    cached tokens: ``4·seqs·queries·q_heads·H·S`` FLOPs, the cache read once (``2·kv_heads·H`` per token)."""
    eta, P0, eta_c = sym("attention_decode_efficiency", "attention_decode_work_half", "flops_efficiency")
    flops = 4 * seqs * queries * q_heads * head_dim * context
    nbytes = seqs * context * 2 * kv_heads * head_dim * kv_bytes + 2 * seqs * queries * q_heads * head_dim * activation_bytes
    # a thread block serves at most g_t query heads of a KV head: larger groups read the cache again
    rereads = sp.ceiling(q_heads / (kv_heads * sym("attention_group_tile")))
    streamed = nbytes + (rereads - 1) * seqs * context * 2 * kv_heads * head_dim * kv_bytes
    C = sym("attention_flops_per_s")
    # 1 when the group is 1 (multi-head attention) or exceeds the grouped kernel's largest (whole
    # head counts), 0 otherwise
    group, gt = q_heads / kv_heads, sym("attention_group_tile")
    fallback = sp.Min(1, sp.Max(0, group - sym("attention_group_limit")) + sp.Max(0, 2 - group))
    # a thread block per (sequence, KV head) (per query head in the fallback), a softmax row per
    # query head padded to the tile: overlapping the KV stream
    rows = seqs * queries * (fallback * q_heads + (1 - fallback) * kv_heads * gt * sp.ceiling(group / gt))
    blocks = _blocks_s(seqs * (kv_heads + fallback * (q_heads - kv_heads)), sym("decode_attention_block_s")) + _blocks_s(
        rows, sym("decode_attention_row_s"))
    memory = _memory_s(streamed + P0, eta)  # = bytes/(W·η·P/(P + P_0)), finite at P = 0
    compute = flops / (C * (eta_c * (1 - fallback) + fallback * sym("attention_fallback_efficiency")))
    return _kernel(flops, nbytes, compute, sp.Max(memory, blocks), sym("attention_floor_s"))


def prefill_attention(seqs: sp.Expr, q_heads: sp.Expr, kv_heads: sp.Expr, width: sp.Expr, tokens: sp.Expr,
                      pairs: sp.Expr, *, kv_write_bytes: sp.Expr, activation_bytes: sp.Expr,
                      window: sp.Expr | None = None, kv_bytes: sp.Expr | None = None) -> Kernel:
    """Causal attention of ``seqs`` sequences of ``tokens`` new tokens over ``pairs`` (query, key) pairs
    each: ``2·q_heads·width·pairs`` FLOPs per sequence (``width``: ``2H``, or MLA's ``H_n + d_R + H_v``);
    reads q, k, v, writes the output and the new cache (``kv_write_bytes``).

    The kernel computes the causal diagonal in whole blocks of ``b_q`` tokens (``T·b_q/2`` more pairs;
    ``b_q = 1`` is the exact ``T(T+1)/2``), a sliding ``window`` of ``w`` keys with ``b_w`` more past
    its edge (``T·(w + b_w)`` pairs, at most the causal work), and every pair pays the softmax's exponentials, ``H_s`` head
    elements' worth of tensor-core time (FlashAttention-3, Shah et al. 2024, §3: the exponential
    runs on the special function units at a small fraction of the matmul rate).

    The attention kernel's query blocks of ``b_q`` tokens run in whole waves over the SMs. Before it
    runs the QKV preprocessing kernel (TensorRT-LLM's context attention: RoPE on the queries and keys,
    the new K and V written to the cache), a launch of its own that streams the queries in and out and
    the cache's new bytes; a cache of 8 bits or fewer (``kv_bytes``) adds one more launch, the new
    tokens quantised to the cache's format."""
    eta, Th, C, bq = sym("attention_prefill_efficiency", "attention_prefill_rows_half", "attention_flops_per_s",
                         "attention_block_tokens")
    Hs, bw = sym("attention_softmax_width", "attention_window_block_tokens")
    flops = 2 * seqs * q_heads * width * pairs
    nbytes = kv_write_bytes + seqs * tokens * (q_heads + kv_heads) * width * activation_bytes
    worked = pairs + tokens * bq / 2
    if window is not None:  # each query's window plus the key blocks past its edge, at most the causal work
        worked = sp.Min(tokens * (window + bw), tokens**2 / 2 + tokens * bq / 2)
    padded = 2 * seqs * q_heads * (width + Hs) * worked
    rows = seqs * q_heads * tokens
    # a query block of a head per thread block, in whole waves over the SMs; a cost per query row besides
    blocks = _waves_s(seqs * q_heads * sp.ceiling(tokens / bq), sym("prefill_attention_block_s")) + _blocks_s(
        rows, sym("prefill_attention_row_s"))
    compute = padded * (1 + Th / sp.Max(rows, 1)) / (C * eta)  # = padded/(C·η·R/(R + R_½)) for R >= 1
    # the QKV preprocessing kernel that runs first, a launch of its own: RoPE reads and writes the
    # queries (``width/2`` elements a head: ``H``), the new K and V are written to the cache
    pre = _memory_s(kv_write_bytes + 2 * seqs * tokens * q_heads * (width / 2) * activation_bytes)
    launches = 2 if kv_bytes is None else 2 + sp.Min(1, sp.Max(0, 2 - kv_bytes))  # + 1 for an 8-bit cache
    return _kernel(flops, nbytes, compute + blocks + pre, _memory_s(nbytes) + pre, sym("attention_floor_s"),
                   launches=launches)


def mla_decode_attention(seqs: sp.Expr, q_heads: sp.Expr, context: sp.Expr, queries: sp.Expr, *,
                         kv_bytes: sp.Expr, activation_bytes: sp.Expr) -> Kernel:
    """Absorbed MLA decode: every local query head attends the shared latent ``d_c + d_R``:
    ``2·seqs·queries·h·(2d_c + d_R)·S`` FLOPs, ``seqs·S·(d_c + d_R)·b_kv`` bytes. Heads pad to ``h_t``."""
    dc, dR = sym("kv_lora_rank", "qk_rope_head_dim")
    eta, ht, C = sym("mla_decode_efficiency", "mla_head_tile", "attention_flops_per_s")
    eta_m, P0 = sym("mla_hbm_efficiency", "attention_decode_work_half")
    flops = 2 * seqs * queries * q_heads * (2 * dc + dR) * context
    nbytes = seqs * context * (dc + dR) * kv_bytes + seqs * queries * q_heads * (2 * dc + dR) * activation_bytes
    padded = flops * ht * sp.ceiling(q_heads / ht) / q_heads
    blocks = _blocks_s(seqs * sp.ceiling(q_heads / ht), sym("decode_attention_block_s"))
    memory = _memory_s(nbytes + P0, eta_m)
    return _kernel(flops, nbytes, padded / (C * eta), sp.Max(memory, blocks), sym("mla_floor_s"))


def elementwise(nbytes: sp.Expr) -> Kernel:
    """A norm, activation or routing kernel: ``bytes/(W·η_m) + τ``."""
    zero = sp.Integer(0)
    return _kernel(zero, nbytes, zero, _memory_s(nbytes))


def all_reduce(nbytes: sp.Expr, group: Span, ranks: sp.Expr | None = None) -> Kernel:
    """All-reduce of ``nbytes`` per chip over ``group``: the faster of the one-shot kernel
    ``α_1 + (n-1)·V/W`` (each rank reads every peer's buffer; TensorRT-LLM's custom all-reduce) and
    NCCL's ``α + 2·steps·α_step + 2·(n-1)/n·V/W``. Zero on one chip. ``ranks`` is ``n`` as a plain
    count (default the group's), so that the scale-up test compares whole numbers."""
    a1 = sym("oneshot_allreduce_latency_s")
    n = group.chips if ranks is None else ranks
    ring = all_reduce_s(nbytes, group)
    oneshot = sp.Min(1, n - 1) * a1 + (n - 1) * nbytes / link_bytes_per_s(n)
    zero = sp.Integer(0)
    t = sp.Min(ring, oneshot)
    return Kernel(zero, zero, zero, t, zero, t)


def collective(time_s: sp.Expr) -> Kernel:
    """A collective whose time another module gives (all-to-all, pipeline hop, weight gathers)."""
    zero = sp.Integer(0)
    return Kernel(zero, zero, zero, time_s, zero, time_s)
