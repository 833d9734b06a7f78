"""Closed forms of serving: the static-batch latency sum, the aggregated step, speculative break-even.

Each function builds on the model's own step terms (:mod:`costmodel.derive._terms`,
:func:`costmodel.symbolic.step_terms` in decode and in prefill) and returns a
:class:`~costmodel.derive.Derivation`.

Maths (docs/theory.md §12, §18):

- *Static batch* (vLLM ``benchmark_latency``, TensorRT-LLM static batching): ``B`` requests
  of ``I`` prompt tokens start together; the prefill of the ``B`` prompts emits the first
  token and ``O − 1`` decode steps follow, step ``t`` reading a context of ``I + t`` tokens.
  Every decode term is affine in the context, so each sum over ``t`` is a closed form
  (``Σ t = n(n+1)/2``); the roofline ``max(T_comp, T_w + T_kv)`` switches regime at most
  once along ``t``, at the root of an affine function, which the closed form locates with
  a floor.
- *Aggregated step* (continuous batching with chunked prefill, Sarathi-Serve, Agrawal et al.
  2024): in steady state each output token brings ``I/O`` prompt tokens, so a step of ``B``
  decoding sequences also prefills ``c = min(B·I/O, C)`` prompt tokens (``C`` the chunk
  budget). Weights are fetched once; compute, KV traffic and collectives grow with the
  chunk. The prefill share is the fraction of the mixed step the chunk adds.
- *Speculative break-even* (Leviathan et al. 2023): with draft length ``γ`` and acceptance
  ``a``, a target step verifies ``γ + 1`` tokens per sequence (compute ``×(γ+1)``, weight and
  KV fetch unchanged) and emits ``E[n] = (1 − a^{γ+1})/(1 − a)`` tokens. Speculation costs
  more per token than plain decoding once verification is compute-bound: the break-even
  batch solves ``(γ+1)·T_comp(B) + γ·t_d = E[n]·(T_w + T_kv(B))``.
"""

from __future__ import annotations

import sympy as sp

from ..specs.model import ModelSpec, ModelStructure
from ..symbolic import Rules, step_terms, sym
from . import _terms as T
from ._base import Derivation, Step, extra_symbol
from .modes import speculative_tokens_per_step

__all__ = ["static_batch_latency", "aggregated_step", "prefill_share", "speculative_break_even"]

B, S, I = sym("batch", "context", "prompt")
Model = str | ModelSpec | ModelStructure

O_ = extra_symbol("output_tokens", "O", "output tokens per request")
C_ = extra_symbol("chunk_tokens", "C_{chunk}", "prefill chunk budget per step (tokens)")
GAMMA = extra_symbol("draft_tokens", r"\gamma", "draft length")
ACC = extra_symbol("acceptance", "a", "per-token acceptance probability")
TD = extra_symbol("draft_step_s", "t_{d}", "draft model step time (s)")

_T = {n: extra_symbol(n, tex, meaning) for n, tex, meaning in (
    ("T_pre", r"T_{pre}", "prefill time of the batch's prompts"),
    ("T_e2e", r"T_{e2e}", "end-to-end latency of a static batch"),
    ("T_agg", r"T_{agg}", "aggregated (mixed decode + prefill chunk) step time"),
    ("T_dec", r"T_{dec}", "decode-only step time"),
    ("prefill_chunk", "c", "prompt tokens prefilled per step"),
    ("prefill_share", r"\pi_{pre}", "fraction of the aggregated step added by the prefill chunk"),
    ("spec_break_even", r"B_{spec}", "batch past which speculation costs more per token"),
)}

_ASSUME_ROOF = "roofline max(T_comp, T_w + T_kv) plus communication and overhead, not overlapped (docs/theory.md §5.4)"


def _prefill_terms(st: ModelStructure) -> dict[str, sp.Expr]:
    """Prefill terms of one replica: ``B`` prompts of ``I`` tokens (docs/theory.md §6)."""
    return {k: T.single_replica(st, v) for k, v in step_terms(st, Rules("prefill", "max", "none", "all")).items()}


def _affine(e: sp.Expr, x: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """``(e(0), de/dx)`` of an expression affine in ``x`` (raises otherwise)."""
    e = sp.expand(e)
    if sp.diff(e, x, 2) != 0:
        raise RuntimeError(f"expected an expression affine in {x}, got {e}")
    return sp.simplify(e.xreplace({x: 0})), sp.simplify(sp.diff(e, x))


def _sum_positive_part(alpha: sp.Expr, beta: sp.Expr, n: sp.Expr) -> sp.Expr:
    """``Σ_{t=1}^{n} max(0, α + β·t)`` in closed form (``α + β·t`` changes sign at most once).

    ``β > 0``: the terms ``t >= t₀ = min(n+1, max(1, ⌊−α/β⌋ + 1))`` are positive;
    ``β < 0``: the terms ``t <= t₁ = min(n, max(0, ⌈−α/β⌉ − 1))``; ``β = 0``: all or none.
    """
    t = sp.Symbol("t", integer=True, positive=True)
    root = -alpha / beta
    t0 = sp.Min(n + 1, sp.Max(1, sp.floor(root) + 1))
    t1 = sp.Min(n, sp.Max(0, sp.ceiling(root) - 1))
    rising = sp.summation(alpha + beta * t, (t, t0, n))
    falling = sp.summation(alpha + beta * t, (t, 1, t1))
    return sp.Piecewise((rising, beta > 0), (falling, beta < 0), (n * sp.Max(0, alpha), True))


def static_batch_latency(model: Model) -> Derivation:
    """End-to-end latency of a static batch: prefill plus the sum of the decode steps.

    ``T_e2e = T_pre(B, I) + Σ_{t=1}^{O−1} T_dec(B, S = I + t)``: the prefill of the ``B``
    prompts emits the first token, then ``O − 1`` decode steps follow at contexts
    ``I + 1 ... I + O − 1``. Evaluate with ``batch``, ``prompt`` (``I``) and
    ``output_tokens`` (``O``, a whole number >= 1); ``context`` is not used. Output
    tokens per second of the batch are ``B·O/T_e2e``.
    """
    st = T.structure_of(model)
    dec = T.decode_terms(st)
    pre = _prefill_terms(st)
    aggs = T.aggregates(st)
    t = sp.Symbol("t", integer=True, positive=True)
    n = O_ - 1
    at_t = {k: v.xreplace({S: I + t}) for k, v in dec.items()}
    mem = at_t["weights_s"] + at_t["kv_s"]
    comp = at_t["compute_s"]
    fixed = at_t["communication_s"] + at_t["overhead_s"]
    if t in fixed.free_symbols:
        raise RuntimeError("communication or overhead depends on the context; the sum below assumes not")
    alpha, beta = _affine(comp - mem, t)
    sum_mem = sp.summation(mem, (t, 1, n))
    mean_mem = mem.xreplace({t: O_ / 2})  # affine in t: the sum is n times the term at the mean t = O/2
    if sp.simplify(sum_mem - n * mean_mem) != 0:
        raise RuntimeError("the memory-bound sum is not (O - 1) times its value at t = O/2")
    excess = _sum_positive_part(alpha, beta, n)
    total = pre["step_time_s"] + n * fixed + sum_mem + excess
    tsym, lhs = T.term_symbols(), _T["T_e2e"]
    tpre, tdec = _T["T_pre"], _T["T_dec"]
    ex = extra_symbol("static_compute_excess", r"\Delta", "time compute-bound decode steps add to the memory sum")
    al, be = sp.Symbol("alpha", real=True), sp.Symbol("beta", real=True)  # the gap at t = 0 and its slope in t
    mem_sum_shown = (O_ - 1) * T.show(mean_mem, aggs)
    comm_pre = extra_symbol("T_comm_pre", r"T_{comm}^{pre}", "communication time of the prefill step")
    steps = [
        Step("The batch's prompts are prefilled in one step (docs/theory.md §6) and emit the first token",
             sp.Eq(tpre, sp.Max(T.show(pre["compute_s"], aggs), T.show(pre["weights_s"] + pre["kv_s"], aggs),
                                evaluate=False) + comm_pre + tsym["overhead_s"], evaluate=False)),
        Step("Decode step t reads a context of I + t tokens; the memory and compute terms are affine in t",
             sp.Eq(tdec, sp.Max(T.show(comp, aggs), T.show(mem, aggs), evaluate=False)
                   + tsym["communication_s"] + tsym["overhead_s"], evaluate=False)),
        Step("End-to-end latency: prefill plus O - 1 decode steps",
             sp.Eq(lhs, tpre + sp.Sum(tdec, (t, 1, n)), evaluate=False)),
        Step("Memory-bound part summed in closed form (sum of t = n(n+1)/2)",
             sp.Eq(sp.Sum(tsym["weights_s"] + tsym["kv_s"], (t, 1, n)), mem_sum_shown, evaluate=False)),
        Step("Steps where compute exceeds memory add the positive part of the gap alpha + beta t, affine in t "
             "(it changes sign at most once, at t = -alpha/beta; a floor locates the crossing)",
             sp.Eq(ex, sp.Sum(sp.Max(0, al + be * t), (t, 1, n)), evaluate=False)),
        Step("", sp.Eq(al, T.show(alpha, aggs), evaluate=False)),
        Step("", sp.Eq(be, T.show(beta, aggs), evaluate=False)),
        Step("Total", sp.Eq(lhs, tpre + (O_ - 1) * (tsym["communication_s"] + tsym["overhead_s"])
                            + mem_sum_shown + ex, evaluate=False)),
    ]
    compact = tpre + (O_ - 1) * (tsym["communication_s"] + tsym["overhead_s"]) + mem_sum_shown + ex
    defs = {**aggs, tpre: pre["step_time_s"], comm_pre: pre["communication_s"],
            tsym["communication_s"]: dec["communication_s"], tsym["overhead_s"]: dec["overhead_s"], ex: excess}
    assumptions = (T.ASSUME_SPLIT, T.ASSUME_LINK, _ASSUME_ROOF,
                   "static batch: all B requests start together and finish together (no request joins or leaves)",
                   "the prefill step emits the first output token; decode step t reads I + t cached tokens",
                   "MoE: every routed expert is fetched in prefill and decode")
    return Derivation("static_batch_latency", lhs, total, tuple(steps), compact, defs, assumptions, "s",
                      "docs/theory.md §6, §18", domain=(O_ >= 1,))


def _mixed_terms(st: ModelStructure) -> tuple[dict[str, sp.Expr], dict[str, sp.Expr], sp.Expr]:
    """Decode terms, mixed-step terms and the chunk ``c`` (tokens) of the aggregated step."""
    dec = T.decode_terms(st)
    pre = _prefill_terms(st)
    chunk = sp.Min(B * I / O_, C_)
    # the chunk is c/I prompts' worth of prefill: same FLOPs and KV writes per token as a whole prompt
    pre_c = {k: v.xreplace({B: chunk / I}) for k, v in pre.items()}
    mixed = {
        "compute_s": dec["compute_s"] + pre_c["compute_s"],
        "weights_s": dec["weights_s"],
        "kv_s": dec["kv_s"] + pre_c["kv_s"],
        # collectives carry B + c token rows (decode's per-token volume at B + c)
        "communication_s": dec["communication_s"].xreplace({B: B + chunk}),
        "overhead_s": dec["overhead_s"],
    }
    mixed["step_time_s"] = (sp.Max(mixed["compute_s"], mixed["weights_s"] + mixed["kv_s"])
                            + mixed["communication_s"] + mixed["overhead_s"])
    return dec, mixed, chunk


def aggregated_step(model: Model) -> Derivation:
    """Step time of continuous batching with chunked prefill: ``B`` decode tokens plus a prefill chunk.

    ``c = min(B·I/O, C)`` prompt tokens join each step of ``B`` decoding sequences (``I/O``
    prompt tokens per output token; ``C`` = ``chunk_tokens``). The mixed step fetches the
    weights once, computes for ``B + c`` tokens (plus the chunk's causal attention), reads
    the decoding sequences' KV at context ``S`` and writes the chunk's KV. This is the time
    per output token (TPOT) of aggregated serving. Evaluate with ``batch``, ``context``
    (mean cached tokens of the decoding sequences, ``I + O/2`` in steady state), ``prompt``,
    ``output_tokens`` and ``chunk_tokens``.
    """
    st = T.structure_of(model)
    dec, mixed, chunk = _mixed_terms(st)
    aggs = T.aggregates(st)
    tsym, lhs, c = T.term_symbols(), _T["T_agg"], _T["prefill_chunk"]
    shown = {k: T.show(v.xreplace({chunk: c}), aggs) for k, v in mixed.items() if k != "step_time_s"}
    steps = [
        Step("Each output token brings I/O prompt tokens; a step of B decode tokens prefills a chunk "
             "(Sarathi-Serve), at most the budget C", sp.Eq(c, chunk, evaluate=False)),
        *[Step("Mixed step terms: compute for B decode tokens and the chunk (with its causal attention), "
               "weights once, KV read of the decoding sequences and write of the chunk" if i == 0 else "",
               sp.Eq(tsym[k], shown[k], evaluate=False))
          for i, k in enumerate(("compute_s", "weights_s", "kv_s"))],
        Step("Aggregated step (the time per output token)",
             sp.Eq(lhs, sp.Max(tsym["compute_s"], tsym["weights_s"] + tsym["kv_s"], evaluate=False)
                   + tsym["communication_s"] + tsym["overhead_s"], evaluate=False)),
    ]
    compact = (sp.Max(shown["compute_s"], shown["weights_s"] + shown["kv_s"], evaluate=False)
               + tsym["communication_s"] + tsym["overhead_s"])
    defs = {**aggs, c: chunk, tsym["communication_s"]: mixed["communication_s"],
            tsym["overhead_s"]: mixed["overhead_s"]}
    assumptions = (T.ASSUME_SPLIT, T.ASSUME_LINK, _ASSUME_ROOF,
                   "steady state: prompts arrive as fast as sequences finish, I/O prompt tokens per output token "
                   "(when B·I/O > C the chunk is capped and the prompt queue grows)",
                   "no prefix cache: every prompt token is prefilled",
                   "the chunk's attention and KV writes per token equal those of a whole prompt of I tokens",
                   "MoE: every routed expert is fetched")
    return Derivation("aggregated_step", lhs, mixed["step_time_s"], tuple(steps), compact.xreplace({chunk: c}),
                      defs, assumptions, "s", "docs/theory.md §18 (Sarathi-Serve, Agrawal et al. 2024)")


def prefill_share(model: Model) -> Derivation:
    """The fraction of the aggregated step the prefill chunk adds: ``π = 1 − T_dec/T_agg``.

    ``T_dec`` is the decode-only step of the same ``B`` sequences at context ``S``
    (what ``costmodel predict`` gives); ``T_agg`` is :func:`aggregated_step`. The
    aggregated TPOT is ``T_dec/(1 − π)``.
    """
    st = T.structure_of(model)
    dec, mixed, chunk = _mixed_terms(st)
    lhs, tagg, tdec = _T["prefill_share"], _T["T_agg"], _T["T_dec"]
    expr = 1 - dec["step_time_s"] / mixed["step_time_s"]
    steps = [Step("Share of the mixed step added by the prefill chunk", sp.Eq(lhs, 1 - tdec / tagg, evaluate=False))]
    return Derivation("prefill_share", lhs, expr, tuple(steps), 1 - tdec / tagg,
                      {tdec: dec["step_time_s"], tagg: mixed["step_time_s"]},
                      aggregated_step(st).assumptions, "1", "docs/theory.md §18")


def speculative_break_even(model: Model) -> Derivation:
    """The batch past which speculative decoding costs more per token than plain decoding.

    Cost per token is step time over tokens emitted: plain ``T_dec(B)/B``, speculative
    ``(T_target(B, γ+1) + γ·t_d)/(B·E[n])`` (docs/theory.md §12). Below ``B*/(γ+1)`` both
    steps are memory-bound and speculation wins by ``E[n]`` less the draft; past it
    verification becomes compute-bound and grows ``γ + 1`` times faster in ``B``. The
    break-even solves ``(γ+1)·T_comp(B) + γ·t_d = E[n]·(T_w + T_kv(B))``:
    ``B_spec = (E[n]·T_w − γ·t_d)/((γ+1)·k_comp − E[n]·k_kv)`` with ``k_x = ∂T_x/∂B``.
    Meaningful while ``B*/(γ+1) <= B_spec <= B*`` (verification compute-bound, plain decode
    memory-bound) and ``E[n]·T_w > γ·t_d`` (speculation wins at small batch at all).
    Evaluate with ``context``, ``draft_tokens``, ``acceptance`` (``0 < a < 1``) and
    ``draft_step_s``.
    """
    st = T.structure_of(model)
    terms = T.decode_terms(st)
    aggs = T.aggregates(st)
    n_tok = speculative_tokens_per_step().expr
    verify = terms["compute_s"] * (GAMMA + 1)  # compute_s is linear in B: B -> B(γ+1)
    if sp.simplify(verify - terms["compute_s"].xreplace({B: B * (GAMMA + 1)})) != 0:
        raise RuntimeError("the decode compute term is not proportional to the batch")
    eq = sp.Eq(verify + GAMMA * TD, n_tok * (terms["weights_s"] + terms["kv_s"]))
    sols = sp.solve(eq, B)
    if len(sols) != 1:
        raise RuntimeError(f"expected one break-even batch, got {sols}")
    sol = sp.factor_terms(sols[0])
    lhs, tsym = _T["spec_break_even"], T.term_symbols()
    en = extra_symbol("tokens_per_step", r"E[n]", "expected tokens per target step")
    kc = extra_symbol("slope_compute_s", r"k_{comp}", "d T_comp/dB")
    kkv = extra_symbol("slope_kv_s", r"k_{kv}", "d T_kv/dB")
    compact = (en * tsym["weights_s"] - GAMMA * TD) / ((GAMMA + 1) * kc - en * kkv)
    defs = {en: n_tok, tsym["weights_s"]: terms["weights_s"], kc: sp.diff(terms["compute_s"], B),
            kkv: sp.diff(terms["kv_s"], B)}
    if sp.simplify(compact.xreplace(defs) - sol) != 0:
        raise RuntimeError("the break-even batch does not reduce to the slope form")
    cost_plain = extra_symbol("cost_per_token_plain", r"c_{plain}", "seconds of the replica per token, plain")
    cost_spec = extra_symbol("cost_per_token_spec", r"c_{spec}", "seconds of the replica per token, speculative")
    steps = [
        Step("Tokens per target step (docs/theory.md §12)", sp.Eq(en, n_tok, evaluate=False)),
        Step("Replica time per token, plain decoding", sp.Eq(cost_plain, sp.Max(
            tsym["compute_s"], tsym["weights_s"] + tsym["kv_s"], evaluate=False) / B, evaluate=False)),
        Step("Speculative: verify gamma + 1 tokens per sequence (compute x(gamma+1), one weight and KV fetch) "
             "plus gamma draft steps", sp.Eq(cost_spec, (sp.Max((GAMMA + 1) * tsym["compute_s"],
                                                               tsym["weights_s"] + tsym["kv_s"], evaluate=False)
                                                        + GAMMA * TD) / (B * en), evaluate=False)),
        Step("Past B*/(gamma+1) verification is compute-bound while plain decoding is still memory-bound; "
             "equal cost per token", sp.Eq((GAMMA + 1) * tsym["compute_s"] + GAMMA * TD,
                                           en * (tsym["weights_s"] + tsym["kv_s"]), evaluate=False)),
        Step("Every term is affine in B: T_comp = k_comp B, T_kv = k_kv B, T_w constant",
             sp.Eq(kc, T.show(defs[kc], aggs), evaluate=False)),
        Step("", sp.Eq(kkv, T.show(defs[kkv], aggs), evaluate=False)),
        Step("Solve for B", sp.Eq(lhs, compact, evaluate=False)),
    ]
    assumptions = (T.ASSUME_SPLIT, "roofline max(T_comp, T_w + T_kv); no communication or per-step overhead",
                   "i.i.d. per-token acceptance 0 < a < 1; the draft step t_d does not depend on the batch",
                   "valid while B*/(gamma+1) <= B_spec <= B* (verification compute-bound, plain memory-bound)",
                   "MoE: every routed expert is fetched")
    return Derivation("speculative_break_even", lhs, sol, tuple(steps), compact, defs, assumptions, "sequences",
                      "docs/theory.md §12 (Leviathan et al. 2023)",
                      domain=(ACC < 1, GAMMA >= 1, sol > 0,
                              (GAMMA + 1) * terms["compute_s"].xreplace({B: sol})
                              >= (terms["weights_s"] + terms["kv_s"]).xreplace({B: sol}),
                              terms["compute_s"].xreplace({B: sol})
                              <= (terms["weights_s"] + terms["kv_s"]).xreplace({B: sol})))
