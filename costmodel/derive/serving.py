"""Closed forms of serving: the static-batch latency sum, the aggregated step, speculative break-even.

Each function starts from the serving closed forms of :mod:`costmodel.symbolic.serving`
(the mixed decode + prefill step, the sum of a maximum of two lines) and the prefill
terms of :func:`costmodel.symbolic.step_terms`, under the single-replica simplifications
of :mod:`costmodel.derive._terms`, and returns a :class:`~costmodel.derive.Derivation`.

Maths (docs/theory.md §12, docs/serving.md §19):

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
  budget), each attending to ``I/2`` positions on average. Weights are fetched once;
  compute, KV traffic and collectives grow with the chunk. The prefill share is the
  fraction of the mixed step the chunk adds.
- *Speculative break-even* (Leviathan et al. 2023): with draft length ``γ`` and acceptance
  ``a``, a target step verifies ``γ + 1`` tokens per sequence (compute and collectives
  ``×(γ+1)``, weight and KV fetch unchanged) and emits ``E[n] = (1 − a^{γ+1})/(1 − a)``
  tokens. Speculation costs more per token than plain decoding once verification is
  compute-bound; every term is affine in ``B`` there, so the break-even batch is the root
  of one linear equation.
"""

from __future__ import annotations

import sympy as sp

from ..specs.model import ModelSpec, ModelStructure
from ..symbolic import Rules, step_terms, sym
from ..symbolic.serving import mixed_step_terms, serving_sym, speculative_tokens_per_step, sum_of_max_of_lines
from . import _terms as T
from ._base import Derivation, Step, extra_symbol

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
_SERVING = serving_sym("steps", "prefill_tokens", "prefill_position", "draft_length", "acceptance")


def _rules(expert_fetch: str, phase: str = "decode") -> Rules:
    return Rules(phase, "max", "none", expert_fetch)


def _prefill_terms(st: ModelStructure, expert_fetch: str) -> dict[str, sp.Expr]:
    """Prefill terms of one replica: ``B`` prompts of ``I`` tokens (docs/theory.md §6)."""
    return {k: T.single_replica(st, v) for k, v in step_terms(st, _rules(expert_fetch, "prefill")).items()}


def _mixed_terms(st: ModelStructure, expert_fetch: str, *, chunk: sp.Expr = sp.Integer(0),
                 position: sp.Expr = sp.Integer(0), draft: sp.Expr = sp.Integer(0)) -> dict[str, sp.Expr]:
    """:func:`costmodel.symbolic.serving.mixed_step_terms` of one replica, its serving symbols set."""
    _, c, a_pos, g, _ = _SERVING
    subs = {c: chunk, a_pos: position, g: draft}
    return {k: T.single_replica(st, v.xreplace(subs)) for k, v in mixed_step_terms(st, _rules(expert_fetch)).items()}


def _affine(e: sp.Expr, x: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """``(e(0), de/dx)`` of an expression affine in ``x`` (raises otherwise)."""
    second = sp.diff(e, x, 2)
    if second != 0 and sp.simplify(second) != 0:
        raise RuntimeError(f"expected an expression affine in {x}, got {e}")
    return e.xreplace({x: 0}), sp.diff(e, x)


def _same_at_a_point(a: sp.Expr, b: sp.Expr) -> bool:
    """``a == b`` at one generic point (distinct irrational-ish values), to 1e-12 relative."""
    free = sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)
    point = {s: sp.Float(1 + 0.37 * i + 0.011 * i * i, 30) for i, s in enumerate(free, start=1)}
    va, vb = sp.N(a.xreplace(point), 25), sp.N(b.xreplace(point), 25)
    return abs(va - vb) <= 1e-12 * max(abs(va), abs(vb), 1e-300)


def static_batch_latency(model: Model, *, expert_fetch: str = "expected") -> Derivation:
    """End-to-end latency of a static batch: prefill plus the sum of the decode steps.

    ``T_e2e = T_pre(B, I) + Σ_{t=1}^{O−1} T_dec(B, S = I + t)``: the prefill of the ``B``
    prompts emits the first token, then ``O − 1`` decode steps follow at contexts
    ``I + 1 ... I + O − 1``. Evaluate with ``batch``, ``prompt`` (``I``) and
    ``output_tokens`` (``O``, a whole number >= 1); ``context`` is not used. Output
    tokens per second of the batch are ``B·O/T_e2e``.

    Args:
        model: catalog name, spec or structure.
        expert_fetch: MoE routed experts streamed per step, ``"expected"`` (the compiled
            model's default) or ``"all"``.
    """
    st = T.structure_of(model)
    dec = _mixed_terms(st, expert_fetch)
    pre = _prefill_terms(st, expert_fetch)
    aggs = T.aggregates(st)
    t = sp.Symbol("t", integer=True, positive=True)
    n = O_ - 1
    at_t = {k: v.xreplace({S: I + t}) for k, v in dec.items()}
    mem = at_t["weights_s"] + at_t["kv_s"]
    comp = at_t["compute_s"]
    fixed = at_t["communication_s"] + at_t["overhead_s"]
    if t in fixed.free_symbols:
        raise RuntimeError("communication or overhead depends on the context; the sum below assumes not")
    (a1, b1), (a2, b2) = _affine(comp, t), _affine(mem, t)
    total = pre["step_time_s"] + sum_of_max_of_lines(a1, b1, a2, b2, sp.Integer(1), n) + n * fixed
    mean_mem = mem.xreplace({t: O_ / 2})  # affine in t: the sum is n times the term at the mean t = O/2
    if not _same_at_a_point(sp.summation(mem, (t, 1, n)), n * mean_mem):
        raise RuntimeError("the memory-bound sum is not (O - 1) times its value at t = O/2")
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
        Step("", sp.Eq(al, T.show(sp.simplify(a1 - a2), aggs), evaluate=False)),
        Step("", sp.Eq(be, T.show(sp.simplify(b1 - b2), aggs), evaluate=False)),
        Step("Total", sp.Eq(lhs, tpre + (O_ - 1) * (tsym["communication_s"] + tsym["overhead_s"])
                            + mem_sum_shown + ex, evaluate=False)),
    ]
    compact = tpre + (O_ - 1) * (tsym["communication_s"] + tsym["overhead_s"]) + mem_sum_shown + ex
    excess = sum_of_max_of_lines(a1, b1, a2, b2, sp.Integer(1), n) - sp.summation(mem, (t, 1, n))
    defs = {**aggs, tpre: pre["step_time_s"], comm_pre: pre["communication_s"],
            tsym["communication_s"]: dec["communication_s"], tsym["overhead_s"]: dec["overhead_s"], ex: excess}
    assumptions = (T.ASSUME_SPLIT, T.ASSUME_LINK, _ASSUME_ROOF,
                   "static batch: all B requests start together and finish together (no request joins or leaves)",
                   "the prefill step emits the first output token; decode step t reads I + t cached tokens",
                   f"MoE routed experts fetched per step: {expert_fetch}")
    return Derivation("static_batch_latency", lhs, total, tuple(steps), compact, defs, assumptions, "s",
                      "docs/theory.md §6, docs/serving.md §19.1", domain=(O_ >= 1,))


def _aggregated(st: ModelStructure, expert_fetch: str) -> tuple[dict[str, sp.Expr], dict[str, sp.Expr], sp.Expr]:
    """Decode-only terms, mixed-step terms and the chunk ``c`` (tokens) of the aggregated step."""
    chunk = sp.Min(B * I / O_, C_)
    dec = _mixed_terms(st, expert_fetch)
    mixed = _mixed_terms(st, expert_fetch, chunk=chunk, position=I / 2)
    return dec, mixed, chunk


def aggregated_step(model: Model, *, expert_fetch: str = "expected") -> Derivation:
    """Step time of continuous batching with chunked prefill: ``B`` decode tokens plus a prefill chunk.

    ``c = min(B·I/O, C)`` prompt tokens join each step of ``B`` decoding sequences (``I/O``
    prompt tokens per output token; ``C`` = ``chunk_tokens``), attending to ``I/2`` positions
    on average. The mixed step (:func:`costmodel.symbolic.serving.mixed_step_terms`) fetches
    the weights once, computes for ``B + c`` tokens plus attention, reads the decoding
    sequences' KV at context ``S`` and writes the chunk's KV. This is the time per output
    token (TPOT) of aggregated serving. Evaluate with ``batch``, ``context`` (mean cached
    tokens of the decoding sequences, ``I + O/2`` in steady state), ``prompt``,
    ``output_tokens`` and ``chunk_tokens``.
    """
    st = T.structure_of(model)
    _, mixed, chunk = _aggregated(st, expert_fetch)
    aggs = T.aggregates(st)
    tsym, lhs, c = T.term_symbols(), _T["T_agg"], _T["prefill_chunk"]
    shown = {k: T.show(sp.expand(v.xreplace({chunk: c})), aggs) for k, v in mixed.items()
             if k in ("compute_s", "weights_s", "kv_s")}
    steps = [
        Step("Each output token brings I/O prompt tokens; a step of B decode tokens prefills a chunk "
             "(Sarathi-Serve), at most the budget C", sp.Eq(c, chunk, evaluate=False)),
        *[Step("Mixed step terms (docs/serving.md §19.2): compute for B decode tokens and the chunk (each chunk "
               "token attends to I/2 positions on average), weights once, KV read of the decoding sequences and "
               "write of the chunk" if i == 0 else "", sp.Eq(tsym[k], shown[k], evaluate=False))
          for i, k in enumerate(("compute_s", "weights_s", "kv_s"))],
        Step("Aggregated step (the time per output token)",
             sp.Eq(lhs, sp.Max(tsym["compute_s"], tsym["weights_s"] + tsym["kv_s"], evaluate=False)
                   + tsym["communication_s"] + tsym["overhead_s"], evaluate=False)),
    ]
    compact = (sp.Max(shown["compute_s"], shown["weights_s"] + shown["kv_s"], evaluate=False)
               + tsym["communication_s"] + tsym["overhead_s"])
    defs = {**aggs, c: chunk, tsym["communication_s"]: mixed["communication_s"].xreplace({chunk: c}),
            tsym["overhead_s"]: mixed["overhead_s"]}
    assumptions = (T.ASSUME_SPLIT, T.ASSUME_LINK, _ASSUME_ROOF,
                   "steady state: prompts arrive as fast as sequences finish, I/O prompt tokens per output token "
                   "(when B·I/O > C the chunk is capped and the prompt queue grows)",
                   "no prefix cache: every prompt token is prefilled; a chunk token attends to I/2 positions "
                   "on average (causal attention over a whole prompt)",
                   f"MoE routed experts fetched per step: {expert_fetch}")
    return Derivation("aggregated_step", lhs, mixed["step_time_s"], tuple(steps), compact, defs, assumptions,
                      "s", "docs/serving.md §19.2 (Sarathi-Serve, Agrawal et al. 2024)")


def prefill_share(model: Model, *, expert_fetch: str = "expected") -> Derivation:
    """The fraction of the aggregated step the prefill chunk adds: ``π = 1 − T_dec/T_agg``.

    ``T_dec`` is the decode-only step of the same ``B`` sequences at context ``S``
    (what ``costmodel predict`` gives); ``T_agg`` is :func:`aggregated_step`. The
    aggregated TPOT is ``T_dec/(1 − π)``.
    """
    st = T.structure_of(model)
    dec, mixed, _ = _aggregated(st, expert_fetch)
    lhs, tagg, tdec = _T["prefill_share"], _T["T_agg"], _T["T_dec"]
    expr = 1 - dec["step_time_s"] / mixed["step_time_s"]
    steps = [Step("Share of the mixed step added by the prefill chunk", sp.Eq(lhs, 1 - tdec / tagg, evaluate=False))]
    return Derivation("prefill_share", lhs, expr, tuple(steps), 1 - tdec / tagg,
                      {tdec: dec["step_time_s"], tagg: mixed["step_time_s"]},
                      aggregated_step(st, expert_fetch=expert_fetch).assumptions, "1", "docs/serving.md §19.2")


def speculative_break_even(model: Model) -> Derivation:
    """The batch past which speculative decoding costs more per token than plain decoding.

    Replica time per token is step time over tokens emitted: plain ``T_dec(B)/B``,
    speculative ``(T_verify(B, γ) + γ·t_d)/(B·E[n])`` where the verification step is the
    mixed step with ``γ + 1`` tokens per sequence (docs/serving.md §19.5). Below
    ``B*/(γ+1)`` both steps are memory-bound and speculation wins by ``E[n]`` less the
    draft; past it verification becomes compute-bound and grows ``γ + 1`` times faster in
    ``B``. With ``T_comp = k_comp·B``, ``T_kv = k_kv·B`` and ``T_comm + T_oh = T_0 + k_comm·(tokens)``:
    ``B_spec = (E[n]·(T_w + T_0) − T_0 − γ·t_d)/((γ+1)·(k_comp + k_comm) − E[n]·(k_kv + k_comm))``.
    Defined where verification is compute-bound and plain decoding memory-bound at
    ``B_spec``, and ``B_spec > 0`` (else speculation never wins or never loses); other
    inputs raise. Evaluate with ``context``, ``draft_tokens``, ``acceptance``
    (``0 <= a < 1``) and ``draft_step_s``.
    """
    st = T.structure_of(model)
    plain = _mixed_terms(st, "all")
    verify = _mixed_terms(st, "all", draft=GAMMA)
    aggs = T.aggregates(st)
    n_tok = speculative_tokens_per_step().xreplace({_SERVING[3]: GAMMA, _SERVING[4]: ACC})
    fixed_plain = plain["communication_s"] + plain["overhead_s"]
    fixed_verify = verify["communication_s"] + verify["overhead_s"]
    for e in (verify["compute_s"], plain["weights_s"] + plain["kv_s"], fixed_plain, fixed_verify):
        _affine(e, B)
    en = extra_symbol("tokens_per_step", r"E[n]", "expected tokens per target step")
    # equal cost per token with verification compute-bound and plain decoding memory-bound: affine in B
    gap = verify["compute_s"] + fixed_verify + GAMMA * TD - en * (plain["weights_s"] + plain["kv_s"] + fixed_plain)
    g0, g1 = _affine(gap, B)
    sol_en = sp.factor_terms(-g0 / g1)
    sol = sol_en.xreplace({en: n_tok})
    lhs, tsym = _T["spec_break_even"], T.term_symbols()
    kc = extra_symbol("slope_compute_s", r"k_{comp}", "d T_comp/dB")
    kkv = extra_symbol("slope_kv_s", r"k_{kv}", "d T_kv/dB")
    kcm = extra_symbol("slope_comm_s", r"k_{comm}", "d T_comm/d(tokens per step)")
    t0 = extra_symbol("fixed_step_s", r"T_{0}", "communication latency and overhead per step")
    compact = (en * (tsym["weights_s"] + t0) - t0 - GAMMA * TD) / ((GAMMA + 1) * (kc + kcm) - en * (kkv + kcm))
    defs = {tsym["weights_s"]: plain["weights_s"], kc: sp.diff(plain["compute_s"], B),
            kkv: sp.diff(plain["kv_s"], B), kcm: sp.diff(fixed_plain, B), t0: fixed_plain.xreplace({B: 0})}
    if not _same_at_a_point(compact.xreplace(defs), sol_en):
        raise RuntimeError("the break-even batch does not reduce to the slope form")
    defs = {en: n_tok, **defs}
    cost_plain = extra_symbol("cost_per_token_plain", r"c_{plain}", "seconds of the replica per token, plain")
    cost_spec = extra_symbol("cost_per_token_spec", r"c_{spec}", "seconds of the replica per token, speculative")
    tcomm_g = extra_symbol("T_comm_verify", r"T_{comm}^{\gamma}", "communication of the verification step")
    steps = [
        Step("Tokens per target step (docs/theory.md §12)", sp.Eq(en, n_tok, evaluate=False)),
        Step("Replica time per token, plain decoding", sp.Eq(cost_plain, (sp.Max(
            tsym["compute_s"], tsym["weights_s"] + tsym["kv_s"], evaluate=False) + tsym["communication_s"]
            + tsym["overhead_s"]) / B, evaluate=False)),
        Step("Speculative: verify gamma + 1 tokens per sequence (compute and collectives x(gamma+1), one weight "
             "and KV fetch) plus gamma draft steps",
             sp.Eq(cost_spec, (sp.Max((GAMMA + 1) * tsym["compute_s"], tsym["weights_s"] + tsym["kv_s"],
                                      evaluate=False) + tcomm_g + tsym["overhead_s"] + GAMMA * TD) / (B * en),
                   evaluate=False)),
        Step("Every term is affine in the tokens per step: T_comp = k_comp B, T_kv = k_kv B, "
             "T_comm + T_oh = T_0 + k_comm (tokens), T_w constant", sp.Eq(kc, T.show(defs[kc], aggs), evaluate=False)),
        Step("", sp.Eq(kkv, T.show(defs[kkv], aggs), evaluate=False)),
        Step("Past B*/(gamma+1) verification is compute-bound while plain decoding is still memory-bound; "
             "equal cost per token", sp.Eq((GAMMA + 1) * (kc + kcm) * B + t0 + GAMMA * TD,
                                           en * (tsym["weights_s"] + t0 + (kkv + kcm) * B), evaluate=False)),
        Step("Solve for B", sp.Eq(lhs, compact, evaluate=False)),
    ]
    assumptions = (T.ASSUME_SPLIT, T.ASSUME_LINK, _ASSUME_ROOF,
                   "i.i.d. per-token acceptance 0 <= a < 1; the draft step t_d does not depend on the batch",
                   "valid where verification is compute-bound and plain decoding memory-bound at B_spec",
                   "MoE: every routed expert is fetched")
    at = {B: sol}
    domain = (ACC < 1, GAMMA >= 1, sol > 0,
              verify["compute_s"].xreplace(at) >= (verify["weights_s"] + verify["kv_s"]).xreplace(at),
              plain["compute_s"].xreplace(at) <= (plain["weights_s"] + plain["kv_s"]).xreplace(at))
    return Derivation("speculative_break_even", lhs, sol, tuple(steps), compact, defs, assumptions, "sequences",
                      "docs/theory.md §12, docs/serving.md §19.5 (Leviathan et al. 2023)", domain=domain)
