"""Fast and slow modes, and speculative decoding (docs/theory.md §11, §12).

Maths: on fixed chips a memory-bound step is ``T = a + b·B`` (``a = T_w``,
``b = ∂T_kv/∂B``). With the floor fraction ``f = a/t₀`` at the normal batch and a
speed-up ``s = t₀/t₁``, the cost per token ``T/B`` changes by
``c₁/c₀ = (1 − f)/(1 − s·f)``; "6x the price for 2.5x the speed" gives
``f = 5/14``. Speculation with draft length ``γ`` and acceptance ``a`` emits
``E[n] = Σ_{i=0}^{γ} a^i = (1 − a^{γ+1})/(1 − a)`` tokens per target step.
"""

from __future__ import annotations

import sympy as sp

from ..specs.model import ModelSpec, ModelStructure
from ..symbolic import outputs, sym
from . import _terms as T
from ._base import Derivation, Step, extra_symbol

__all__ = ["fast_mode_cost_ratio", "fast_mode_floor_fraction", "speculative_tokens_per_step",
           "speculative_cost"]

Model = str | ModelSpec | ModelStructure

f = extra_symbol("floor_fraction", "f", "weight floor over step time")
s = extra_symbol("speedup", "s", "speed-up t0/t1")
r = extra_symbol("price_ratio", "r", "cost ratio c1/c0")
acc = extra_symbol("acceptance", "a", "per-token acceptance probability")
gamma = extra_symbol("draft_tokens", r"\gamma", "draft length")


def _ratio_in_f() -> tuple[sp.Expr, list[Step]]:
    a, b, B0, B1 = sp.symbols("a b B_0 B_1", positive=True)
    t0 = a + b * B0
    b1 = sp.solve(sp.Eq(a + b * B1, t0 / s), B1)[0]
    ratio = (t0 / s / b1) / (t0 / B0)
    a_of_f = sp.solve(sp.Eq(f, a / t0), a)[0]
    in_f = sp.factor(sp.simplify(ratio.xreplace({a: a_of_f})))
    steps = [
        Step("Memory-bound step on fixed chips (docs/theory.md §11.1)", sp.Eq(sp.Symbol("T"), a + b * sp.Symbol("B"))),
        Step("Batch giving speed-up s", sp.Eq(B1, b1)),
        Step("Cost ratio (cost per token is T/B)", sp.Eq(r, sp.simplify(ratio))),
        Step("Substitute the floor fraction f = a/t0", sp.Eq(r, in_f)),
    ]
    return in_f, steps


def fast_mode_cost_ratio() -> Derivation:
    """Cost ratio of a fast mode: ``c₁/c₀ = (1 − f)/(1 − s·f)`` (docs/theory.md §11.1).

    Evaluate with ``floor_fraction`` and ``speedup``; ``speedup < 1`` is a slow mode, and
    its limit ``s → 0`` (infinite batch) saves at most ``f``: ``c_∞/c₀ = 1 − f`` (11.2).
    """
    in_f, steps = _ratio_in_f()
    steps.append(Step("The ceiling: cost diverges at", sp.Eq(s, sp.solve(sp.denom(sp.together(in_f)), s)[0])))
    steps.append(Step("Slow mode: an infinite batch (s -> 0) keeps", sp.Eq(sp.Limit(r, s, 0), sp.limit(in_f, s, 0))))
    return Derivation("fast_mode_cost_ratio", r, in_f, tuple(steps), None, {},
                      ("memory-bound step T = a + b B on a fixed set of chips",), "1", "docs/theory.md §11")


def fast_mode_floor_fraction() -> Derivation:
    """The floor fraction implied by a price ratio and a speed-up: ``f = (r − 1)/(r·s − 1)``.

    "6x the price for 2.5x the speed" gives ``f = 5/14`` exactly (docs/theory.md §11.1). Meaningful for
    a price ratio and a speed-up both above 1 (then ``0 < f < 1``); other values raise when evaluated.
    """
    in_f, steps = _ratio_in_f()
    sol = sp.factor(sp.solve(sp.Eq(in_f, r), f)[0])
    steps.append(Step("Invert for the floor fraction", sp.Eq(f, sol)))
    return Derivation("fast_mode_floor_fraction", f, sol, tuple(steps), None, {},
                      ("memory-bound step T = a + b B on a fixed set of chips",), "1", "docs/theory.md §11.1",
                      domain=(r > 1, s > 1))


def speculative_tokens_per_step() -> Derivation:
    """Expected tokens per target step: ``E[n] = (1 − a^{γ+1})/(1 − a)`` (docs/theory.md §12).

    Derived as the sum ``Σ_{i=0}^{γ} a^i`` (token ``i`` is kept when the first ``i`` drafts
    are accepted), for ``0 < a < 1``.
    """
    i = sp.Symbol("i", integer=True, nonnegative=True)
    n_tok = extra_symbol("tokens_per_step", r"E[n]", "expected tokens per target step")
    total = sp.summation(acc**i, (i, 0, gamma))
    closed = total.args[-1].expr if isinstance(total, sp.Piecewise) else total  # the a != 1 branch
    closed = sp.simplify(closed)
    steps = [Step("Token i is emitted when the first i drafts are accepted",
                  sp.Eq(n_tok, sp.Sum(acc**i, (i, 0, gamma)))),
             Step("Geometric sum (a < 1)", sp.Eq(n_tok, closed))]
    return Derivation("speculative_tokens_per_step", n_tok, closed, tuple(steps), None, {},
                      ("i.i.d. per-token acceptance 0 < a < 1",), "tokens", "docs/theory.md §12")


def speculative_cost(model: Model) -> Derivation:
    """USD per million tokens with speculative decoding (docs/theory.md §12).

    ``c = 10⁶·n·p·[T_target(B, γ+1) + γ·t_d]/(3600·B·E[n])``: the target model verifies
    ``γ + 1`` tokens per sequence in one step (``B·(γ+1)`` tokens of compute, one read
    of the weights and of each sequence's cache); ``t_d`` is the draft model's step
    (``draft_step_s``).
    """
    st = T.structure_of(model)
    terms = T.decode_terms(st)
    B = sym("batch")
    td = extra_symbol("draft_step_s", "t_{d}", "draft model step time (s)")
    cost = extra_symbol("usd_per_mtok_spec", r"c_{spec}", "USD per million tokens, speculative")
    target = sp.Max(terms["compute_s"].xreplace({B: B * (gamma + 1)}), terms["weights_s"] + terms["kv_s"])
    n_tok = speculative_tokens_per_step().expr
    out = outputs(st)
    per_step = T.single_replica(st, out["usd_per_mtok"] / out["step_time_s"]).xreplace(
        {sym("pp"): 1, sym("ep"): 1})  # 10^6 n p / (3600 B)
    expr = per_step * (target + gamma * td) / n_tok
    aggs = T.aggregates(st)
    tt = extra_symbol("T_target", r"T_{target}", "target verification step")
    steps = [
        Step("Target step verifying gamma + 1 tokens per sequence (docs/theory.md §12)",
             sp.Eq(tt, T.show(target, aggs), evaluate=False)),
        Step("Cost per million accepted tokens",
             sp.Eq(cost, T.show(per_step, aggs) * (tt + gamma * td) / n_tok, evaluate=False)),
    ]
    compact = T.show(per_step, aggs) * (tt + gamma * td) / n_tok
    return Derivation("speculative_cost", cost, expr, tuple(steps), compact, {**aggs, tt: target},
                      (T.ASSUME_SPLIT, "no communication; one KV read per sequence per verification"),
                      "USD/Mtok", "docs/theory.md §12")
