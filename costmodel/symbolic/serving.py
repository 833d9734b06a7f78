"""Closed forms of serving: the mixed step, the static-batch latency sum, speculative tokens per step.

Everything here is SymPy in the model's symbols (:mod:`.symbols`) plus five
serving symbols (:data:`SERVING_SYMBOLS`); :func:`serving_outputs` is what
:func:`costmodel.compile.compiled_serving` turns into one JAX function
(docs/serving.md, section 19).

* **Mixed step** (:func:`mixed_step_terms`, docs/serving.md §19.2; Sarathi-Serve,
  Agrawal et al., OSDI 2024): one step of a replica that decodes ``B`` sequences
  at context ``S``, each verifying ``q = γ + 1`` tokens (``γ = 0`` without
  speculation), and prefills a chunk of ``c`` prompt tokens whose mean attended
  length is ``Ā``. Weights are fetched once for the ``B·q + c`` tokens; compute
  is ``2·P_mm`` per token plus each token's attention; KV reads are the decoding
  sequences' caches, and the chunk writes ``c`` tokens of cache. With
  ``c = 0, γ = 0`` it equals the decode step of :func:`.step.step_terms`.
* **Static-batch latency sum** (:func:`static_decode_sum`, §19.1): the time of
  ``n`` decode steps of a batch whose context grows by ``E`` tokens per step,
  ``Σ_{t=1..n} ℓ(S + E·t)``. Every term of the step is affine in ``t`` (the KV
  read and the attention FLOPs grow with the context; weights, matmul FLOPs,
  communication and overhead do not), so each roofline is a maximum of two
  lines ``max(α₁ + β₁t, α₂ + β₂t)``; its sum over the integers is the sum of one
  line plus the sum of the positive part of their difference, which is
  positive on one side of the crossover ``t* = -(α₁-α₂)/(β₁-β₂)``: a closed
  form with one ``floor``.
* **Speculative tokens per step** (:func:`speculative_tokens_per_step`, §19.5;
  Leviathan et al. 2023): ``E = (1 - a^(γ+1))/(1 - a)``.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import sympy as sp

from ..specs.model import ModelStructure
from . import architecture as arch
from .operators import Tokens, operator_terms
from .rules import Rules
from .step import _combine, achieved_flops_per_s, communication_terms, step_terms
from .symbols import SYMBOLS, SymbolInfo, sym

__all__ = ["SERVING_SYMBOLS", "serving_sym", "serving_latex_names", "mixed_step_terms", "static_decode_sum",
           "speculative_tokens_per_step", "sum_of_max_of_lines", "serving_outputs"]

#: The serving inputs, besides the model's: the rows of :data:`.symbols.SYMBOLS` in group ``"serving"``.
SERVING_SYMBOLS: dict[str, SymbolInfo] = {name: info for name, info in SYMBOLS.items() if info.group == "serving"}
serving_sym = sym


def serving_latex_names() -> dict[sp.Symbol, str]:
    """Map serving symbol -> LaTeX (a subset of :func:`costmodel.symbolic.latex_names`)."""
    return {info.symbol: info.latex for info in SERVING_SYMBOLS.values()}


def speculative_tokens_per_step() -> sp.Expr:
    """``E = (1 - a^(γ+1))/(1 - a)``: expected tokens a sequence advances per verified step.

    Leviathan et al. 2023 (eq. 1), i.i.d. acceptance ``a < 1``; ``γ = 0`` gives 1.
    """
    a, g = serving_sym("acceptance", "draft_length")
    return (1 - a ** (g + 1)) / (1 - a)


def mixed_step_terms(st: ModelStructure, rules: Rules = Rules()) -> dict[str, sp.Expr]:
    """Breakdown of one mixed (decode + prefill chunk) step of a replica, in seconds.

    Symbols: ``batch`` (``B`` decoding sequences), ``context`` (``S``), ``prefill_tokens``
    (``c``), ``prefill_position`` (``Ā``) and ``draft_length`` (``γ``; each decoding
    sequence verifies ``γ + 1`` tokens: compute and communication grow, weight and KV
    fetch do not). Pipelining splits both kinds of token into ``pp`` micro-batches,
    as the decode step does (:func:`.step.microbatch`).

    Returns ``compute_s``, ``compute_matmul_s``, ``weights_s``, ``kv_s``,
    ``communication_s``, ``overhead_s``, ``roofline_s`` and ``step_time_s``.
    """
    if rules.phase != "decode":
        rules = replace(rules, phase="decode")
    B, S, tp, pp, ep = sym("batch", "context", "tp", "pp", "ep")
    C, eta_c = achieved_flops_per_s(), 1
    c, A, g = serving_sym("prefill_tokens", "prefill_position", "draft_length")
    if rules.step == "operators":
        return operator_terms(st, rules, Tokens(decode_seqs=B / pp, queries=g + 1, context=S, chunk=c / pp,
                                                chunk_position=A))
    decode = step_terms(st, rules)
    tokens = B * (g + 1) + c  # tokens through the layers this step
    p = arch.param_counts(st)
    # attention FLOPs per prefilled token per attended position: 2·Nq·width·L (full attention)
    per_position = 2 * arch.prefill_attention_flops_per_sequence(replace(st, window="none"), sp.Integer(1))
    flops = (tokens * 2 * p.matmul
             + B * (g + 1) * arch.decode_attention_flops_per_token(st) * arch.attended_tokens(st, S)
             + c * per_position * arch.attended_tokens(st, A))
    denom = pp * tp * ep * C * eta_c
    t = {
        "compute_s": flops / denom,
        "compute_matmul_s": tokens * 2 * p.matmul / denom,
        "weights_s": decode["weights_s"].subs(B, tokens),
        # reads of the decoding sequences' caches, writes of the chunk's cache
        "kv_s": decode["kv_s"] + decode["kv_s"].subs({B: c, S: 1}),
    }
    roof = _combine(rules, t)
    parts = {k: v.subs(B, tokens) for k, v in communication_terms(st, rules).items()}
    comm = parts["communication_tp_s"] + parts["communication_ep_s"] + parts["communication_pp_s"]
    overhead = decode["overhead_s"]
    step = (roof + comm if rules.comm_overlap == "none" else sp.Max(roof, comm)) + overhead
    return {**t, "communication_s": comm, **parts, "overhead_s": overhead, "roofline_s": roof,
            "step_time_s": step}


def _line_sum(alpha: sp.Expr, beta: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    """``Σ_{t=lo..hi} (α + β·t)`` for integers ``lo <= hi + 1`` (0 terms when ``hi = lo - 1``)."""
    m = hi - lo + 1
    return m * alpha + beta * (lo + hi) * m / 2


def _positive_part_sum(d0: sp.Expr, d1: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    """``Σ_{t=lo..hi} max(d₀ + d₁·t, 0)``: the line is positive on one side of ``t* = -d₀/d₁``."""
    flat = (hi - lo + 1) * sp.Max(d0, 0)
    if d1.is_zero:
        return flat
    cross = -d0 / d1
    up = _line_sum(d0, d1, sp.Min(sp.Max(sp.floor(cross) + 1, lo), hi + 1), hi)       # d1 > 0: t > t*
    down = _line_sum(d0, d1, lo, sp.Max(sp.Min(sp.ceiling(cross) - 1, hi), lo - 1))   # d1 < 0: t < t*
    if d1.is_positive:
        return up
    if d1.is_negative:
        return down
    return sp.Piecewise((up, d1 > 0), (down, d1 < 0), (flat, True))


def sum_of_max_of_lines(a1: sp.Expr, b1: sp.Expr, a2: sp.Expr, b2: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    """``Σ_{t=lo..hi} max(a₁ + b₁·t, a₂ + b₂·t)`` over integers, in closed form.

    ``= Σ (a₂ + b₂·t) + Σ max((a₁ - a₂) + (b₁ - b₂)·t, 0)``: the second sum runs over the
    integers on the positive side of the crossover (docs/serving.md §19.1).
    """
    if sp.expand(a1 - a2) == 0 and sp.expand(b1 - b2) == 0:
        return _line_sum(a2, b2, lo, hi)
    return _line_sum(a2, b2, lo, hi) + _positive_part_sum(a1 - a2, b1 - b2, lo, hi)


def _first_at_least(alpha: sp.Expr, beta: sp.Expr, level: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    """First integer ``t`` in ``[lo, hi]`` with ``α + β·t >= level`` (``β >= 0``), ``hi + 1`` if none."""
    first = sp.Min(sp.Max(sp.ceiling((level - alpha) / beta), lo), hi + 1)
    return sp.Piecewise((first, beta > 0), (lo, alpha >= level), (hi + 1, True))


def _lines(rules: Rules, t: dict[str, sp.Expr]) -> tuple[sp.Expr, sp.Expr]:
    """The roofline as ``max(line₁, line₂)`` under each combining rule."""
    mem = t["weights_s"] + t["kv_s"]
    if rules.combine == "max":
        return t["compute_s"], mem
    if rules.combine == "sum":
        return t["compute_s"] + mem, t["compute_s"] + mem
    return t["kv_s"] + t["compute_matmul_s"], t["kv_s"] + t["weights_s"]


def static_decode_sum(st: ModelStructure, rules: Rules = Rules()) -> sp.Expr | None:
    """``Σ_{t=1..n} ℓ(S + E·t)``: ``n`` decode steps of a static batch, in closed form (seconds).

    ``S`` (``context``) is the context before the first step, ``E``
    (:func:`speculative_tokens_per_step`, 1 without speculation) the tokens a sequence
    gains per step, ``n`` (``steps``) a whole number of steps. The roofline is a
    maximum of two lines in ``t`` (:func:`sum_of_max_of_lines`); communication and
    overhead do not depend on ``t``. With overlapped communication the step is
    ``max(roofline, T_comm)``: the roofline is nondecreasing in ``t``, so the constant
    wins before the first ``t`` where either line reaches it and the roofline after.

    ``None`` for windowed attention (``min(S + E·t, W_a)`` bends the lines) and for the operator
    step (a sum of many maxima, with efficiencies that depend on the context): the serving layer then
    sums the compiled steps, vectorised over ``t``.
    """
    if st.window != "none" or rules.step == "operators":
        return None
    S = sym("context")
    n = serving_sym("steps")
    t = sp.Symbol("t", integer=True, positive=True)
    terms = mixed_step_terms(st, rules)
    zero = {serving_sym("prefill_tokens"): 0, serving_sym("prefill_position"): 0}
    E = speculative_tokens_per_step()
    lines = []
    for line in _lines(rules, terms):
        f = line.subs(zero).subs(S, S + E * t)
        beta = sp.diff(f, t)
        if sp.diff(beta, t) != 0:
            raise ValueError("a roofline term is not affine in the context")  # a model bug, not user input
        lines.append((f.subs(t, 0), beta))
    (a1, b1), (a2, b2) = lines
    comm, overhead = terms["communication_s"].subs(zero), terms["overhead_s"]
    one = sp.Integer(1)
    if rules.comm_overlap == "none":
        return sum_of_max_of_lines(a1, b1, a2, b2, one, n) + n * (comm + overhead)
    start = sp.Min(_first_at_least(a1, b1, comm, one, n), _first_at_least(a2, b2, comm, one, n))
    return (start - 1) * comm + sum_of_max_of_lines(a1, b1, a2, b2, start, n) + n * overhead


@functools.cache
def serving_outputs(st: ModelStructure, rules: Rules = Rules()) -> dict[str, sp.Expr]:
    """The serving closed forms of one replica, as SymPy expressions (what the compile layer compiles).

    Keys: the :func:`mixed_step_terms` (``step_time_s``, ``compute_s``, ...),
    ``static_decode_s`` (:func:`static_decode_sum`; absent for windowed attention) and ``tokens_per_step``
    (:func:`speculative_tokens_per_step`).
    """
    out = dict(mixed_step_terms(st, rules))
    total = static_decode_sum(st, rules)
    if total is not None:
        out["static_decode_s"] = total
    out["tokens_per_step"] = speculative_tokens_per_step()
    return out
