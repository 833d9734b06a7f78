"""Closed forms in the latency: the floor, the cost-latency frontier, and the floor fraction.

Maths: the latency floor is the step at one sequence,
``ℓ_min = T_w(B=1) + T_kv(B=1) + T_comm(B=1) + T_oh`` (docs/theory.md §8). In the memory-bound
region ``ℓ = T_w + B·S·κ/(n·W·η_m)`` and ``c = 10⁶·n·p·ℓ/(3600·B)``; eliminating ``B``
gives the frontier ``c(ℓ) = (p·S·κ/W)/(1 − ℓ₀/ℓ)`` (in USD per token-second units,
docs/theory.md §10).
"""

from __future__ import annotations

import sympy as sp

from ..specs.model import ModelSpec, ModelStructure
from ..symbolic import outputs, sym
from . import _terms as T
from ._base import Derivation, Step, extra_symbol

__all__ = ["latency_floor", "cost_latency_frontier", "floor_fraction"]

B, S, tp = sym("batch", "context", "tp")
Model = str | ModelSpec | ModelStructure


def latency_floor(model: Model, *, kv: bool = True, communication: bool = True,
                  expert_fetch: str = "expected") -> Derivation:
    """The smallest time per output token: the step at batch 1 (docs/theory.md §8).

    ``ℓ_min = T_w + T_kv + T_comm + T_oh`` at ``B = 1``, memory-bound (valid while
    ``1 < B*``). With ``expert_fetch="expected"`` a MoE step at one token streams
    ``k/E`` of the routed experts (``P_fetch → P_act``); ``"all"`` is [R]'s ``P_tot``.

    Args:
        model: catalog name, spec or structure.
        kv: include the KV read of the one sequence (context ``S``); False gives the
            weight-only floor of docs/theory.md §8.
        communication: include the collectives and fixed overheads.
        expert_fetch: ``"expected"`` or ``"all"`` (MoE only).
    """
    st = T.structure_of(model)
    terms = T.decode_terms(st, expert_fetch=expert_fetch)
    aggs = T.aggregates(st, tokens=sp.Integer(1) if expert_fetch == "expected" and st.mlp == "moe" else None)
    names = ["weights_s"] + (["kv_s"] if kv else []) + (["communication_s", "overhead_s"] if communication else [])
    tsym = T.term_symbols()
    at_one = {n: terms[n].xreplace({B: sp.Integer(1)}) for n in names}
    floor = sp.Add(*at_one.values())
    lhs = extra_symbol("latency_floor", r"\ell_{min}", "latency floor")
    steps = [Step("Memory-bound step at one sequence (docs/theory.md §8)",
                  sp.Eq(lhs, sp.Add(*(tsym[n] for n in names)), evaluate=False))]
    shown = {}
    for n in names:
        shown[n] = T.show(at_one[n], aggs) if n != "communication_s" else tsym[n]
        if n != "communication_s":
            steps.append(Step("", sp.Eq(tsym[n], shown[n], evaluate=False)))
    defs = dict(aggs)
    if communication:
        defs[tsym["communication_s"]] = at_one["communication_s"]
    compact = sp.Add(*shown.values())
    assumptions = [T.ASSUME_SPLIT, "batch 1 is memory-bound (1 < B*)"]
    if communication:
        assumptions.append(T.ASSUME_LINK)
    if st.mlp == "moe":
        assumptions.append(f"MoE expert fetch: {expert_fetch}")
    return Derivation("latency_floor", lhs, floor, tuple(steps), compact, defs, tuple(assumptions), "s",
                      "docs/theory.md §8")


def cost_latency_frontier(model: Model) -> Derivation:
    """USD per million output tokens as a function of the time per token ``ℓ`` (docs/theory.md §10).

    Eliminates the batch from ``ℓ = T_w + T_kv(B)`` and ``c = 10⁶·n·p·ℓ/(3600·B)``:
    ``c(ℓ) = (10⁶/3600)·(p·S·κ/(W·η_m))/(1 − ℓ₀/ℓ)`` with ``ℓ₀ = T_w``. Memory-bound, no
    communication (the docs/theory.md §10 closed form); clip it below by the compute floor.
    """
    st = T.structure_of(model)
    terms = T.decode_terms(st)
    aggs = T.aggregates(st)
    ell = extra_symbol("tpot_s", r"\ell", "latency target per output token (s)")
    cost_sym = extra_symbol("usd_per_mtok_", r"c", "USD per million tokens")
    usd = T.single_replica(st, outputs(st)["usd_per_mtok"].xreplace({outputs(st)["step_time_s"]: ell}))
    usd = usd.xreplace({sym("pp"): 1, sym("ep"): 1})
    eq_l = sp.Eq(terms["weights_s"] + terms["kv_s"], ell)
    b_of_l = sp.solve(eq_l, B)[0]
    c_of_l = sp.factor_terms(sp.simplify(usd.xreplace({B: b_of_l})))
    ell0 = extra_symbol("latency_floor_w", r"\ell_{0}", "weight-fetch floor")
    p, W, eta = sym("usd_per_chip_hour", "hbm_bytes_per_s", "hbm_efficiency")
    kappa = [s for s in aggs if s.name == "kv_bytes_per_token_"][0]
    theory = sp.Rational(10**6, 3600) * (p * S * kappa / (W * eta)) / (1 - ell0 / ell)
    defs = dict(aggs)
    defs[ell0] = terms["weights_s"]
    if sp.simplify(theory.xreplace(defs) - c_of_l) != 0:
        raise RuntimeError("the frontier does not reduce to docs/theory.md §10's hyperbola")
    steps = [
        Step("Memory-bound time per token (docs/theory.md §10)", T.show(eq_l, aggs)),
        Step("Solve for the batch", sp.Eq(B, T.show(b_of_l, aggs), evaluate=False)),
        Step("Cost per million tokens at that batch", sp.Eq(cost_sym, T.show(c_of_l, aggs), evaluate=False)),
        Step("With the weight floor T_w named, SymPy confirms docs/theory.md §10's hyperbola",
             sp.Eq(cost_sym, theory, evaluate=False)),
        Step("Large latency: the KV floor", sp.Eq(sp.Limit(cost_sym, ell, sp.oo),
                                                 sp.limit(theory, ell, sp.oo), evaluate=False)),
        Step("At the weight floor cost diverges", sp.Eq(sp.Limit(cost_sym, ell, ell0, "+"),
                                                         sp.limit(theory, ell, ell0, "+"), evaluate=False)),
    ]
    return Derivation("cost_latency_frontier", cost_sym, c_of_l, tuple(steps), theory, defs,
                      (T.ASSUME_SPLIT, "memory-bound (B < B*), no communication or overhead",
                       "MoE: every routed expert is fetched"), "USD/Mtok", "docs/theory.md §10")


def floor_fraction(model: Model) -> Derivation:
    """The weight floor's share of a memory-bound step, ``f = T_w/(T_w + T_kv)`` (docs/theory.md §11.1).

    The input of :func:`~costmodel.derive.fast_mode_cost_ratio` at a model's operating point.
    """
    st = T.structure_of(model)
    terms = T.decode_terms(st)
    aggs = T.aggregates(st)
    f = extra_symbol("floor_fraction", "f", "weight floor over step time")
    tsym = T.term_symbols()
    expr = sp.factor_terms(sp.cancel(terms["weights_s"] / (terms["weights_s"] + terms["kv_s"])))
    steps = [Step("Floor fraction of a memory-bound step (docs/theory.md §11.1)",
                  sp.Eq(f, tsym["weights_s"] / (tsym["weights_s"] + tsym["kv_s"]), evaluate=False)),
             Step("With the model's terms", sp.Eq(f, T.show(expr, aggs), evaluate=False))]
    return Derivation("floor_fraction", f, expr, tuple(steps), T.show(expr, aggs), aggs,
                      (T.ASSUME_SPLIT, "memory-bound step (B < B*)"), "1", "docs/theory.md §11.1")
