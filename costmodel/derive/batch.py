"""Closed forms in the batch: critical batch, context wall, largest batch, cheapest batch.

Each function solves an equation between the model's own decode terms
(:mod:`costmodel.derive._terms`) with :func:`sympy.solve` and returns a
:class:`~costmodel.derive.Derivation`.

Maths (docs/theory.md §7): with ``T_comp = B·(2·P_mm + A_att·S)/(n·C·η_c)``,
``T_w = b_w·P_w/(n·W·η_m)`` and ``T_kv = B·S·κ/(n·W·η_m)``, the balance
``T_comp = T_w + T_kv`` gives the critical batch; it diverges at the context
``S_wall`` where the compute and KV slopes in ``B`` are equal.
"""

from __future__ import annotations

import sympy as sp

from ..specs.model import ModelSpec, ModelStructure
from ..symbolic import sym
from . import _terms as T
from ._base import Derivation, Step, extra_symbol

__all__ = ["critical_batch", "context_wall", "max_batch", "cheapest_batch"]

B, S = sym("batch", "context")
Model = str | ModelSpec | ModelStructure

_MOE_NOTE = ("MoE: every routed expert is fetched (phi = 1 - (1 - k/E)^B -> 1 as B -> oo, "
             "the large-batch limit, [R]'s P_tot form)")


def _solve_one(eq: sp.Equality, x: sp.Symbol) -> sp.Expr:
    sols = sp.solve(eq, x)
    if len(sols) != 1:  # the terms are affine in x: exactly one root is expected
        raise RuntimeError(f"expected one solution for {x} in {eq}, got {sols}")
    return sp.factor_terms(sols[0])


def critical_batch(model: Model, *, kv: bool = False) -> Derivation:
    """The decode batch at which compute time equals memory time (docs/theory.md §7.1-7.3).

    Without KV (``kv=False``, context 0): ``B* = C·η_c·b_w·P_w/(2·W·η_m·P_mm)``, which is
    ``R = C·b_w/(2W)`` for a dense model (``P_w ≈ P_mm``) and ``R·σ`` for a MoE model.
    With KV: ``B*_KV = T_w/(∂T_comp/∂B − ∂T_kv/∂B)``, finite only below :func:`context_wall`.

    Args:
        model: catalog name, :class:`ModelSpec` or :class:`ModelStructure`.
        kv: include the KV fetch and attention FLOPs at context ``S``.

    Returns:
        A Derivation in sequences per replica.
    """
    st = T.structure_of(model)
    terms = T.decode_terms(st)
    aggs = T.aggregates(st)
    if not kv:
        terms = {k: v.xreplace({S: sp.Integer(0)}) for k, v in terms.items()}
    names = ("compute_s", "weights_s", "kv_s") if kv else ("compute_s", "weights_s")
    eq = sp.Eq(terms["compute_s"], terms["weights_s"] + terms["kv_s"])
    sol = _solve_one(eq, B)
    lhs = extra_symbol("critical_batch_kv" if kv else "critical_batch", "B^{*}_{KV}" if kv else "B^{*}",
                       "critical batch")
    steps = T.term_steps(terms, names, aggs, "The model's decode terms (docs/theory.md §5.1-5.3)")
    steps.append(Step("Balance compute against memory and solve for B", T.show(eq, aggs)))
    steps.append(Step("Solution", sp.Eq(lhs, T.show(sol, aggs), evaluate=False)))
    assumptions = [T.ASSUME_SPLIT, "roofline max(T_comp, T_w + T_kv) (docs/theory.md §5.4)"]
    if not kv:
        assumptions.append("context S = 0: no KV fetch, no attention FLOPs (docs/theory.md §7.1)")
    if st.mlp == "moe":
        assumptions.append(_MOE_NOTE)
    return Derivation("critical_batch_kv" if kv else "critical_batch", lhs, sol, tuple(steps),
                      T.show(sol, aggs), aggs, tuple(assumptions), "sequences",
                      "docs/theory.md §7.3" if kv else "docs/theory.md §7.1-7.2")


def context_wall(model: Model) -> Derivation:
    """The context beyond which decode is memory-bound at every batch (docs/theory.md §7.3).

    ``T_w + T_kv − T_comp`` is affine in ``B`` and positive at ``B = 0``; it stays positive
    for all ``B`` iff its slope is ``>= 0``. Solving ``∂T_comp/∂B = ∂T_kv/∂B`` for ``S``:
    ``S_wall = 2·P_mm·W·η_m/(C·η_c·κ − A_att·W·η_m)`` (docs/theory.md §7.3: ``2·P_act·W/(C·κ)``).
    """
    st = T.structure_of(model)
    terms = T.decode_terms(st)
    aggs = T.aggregates(st)
    slope_c, slope_kv = sp.diff(terms["compute_s"], B), sp.diff(terms["kv_s"], B)
    eq = sp.Eq(slope_c, slope_kv)
    sol = _solve_one(eq, S)
    lhs = extra_symbol("context_wall", r"S_{wall}", "context wall")
    steps = T.term_steps(terms, ("compute_s", "weights_s", "kv_s"), aggs,
                         "The model's decode terms (docs/theory.md §5.1-5.3)")
    steps += [
        Step("T_w + T_kv - T_comp is affine in B and equals T_w > 0 at B = 0; it is positive at every B "
             "iff the KV slope is at least the compute slope. Equal slopes:", T.show(eq, aggs)),
        Step("Solve for S", sp.Eq(lhs, T.show(sol, aggs), evaluate=False)),
    ]
    assumptions = (T.ASSUME_SPLIT, "roofline max(T_comp, T_w + T_kv) (docs/theory.md §5.4)")
    return Derivation("context_wall", lhs, sol, tuple(steps), T.show(sol, aggs), aggs, assumptions,
                      "tokens", "docs/theory.md §7.3")


def max_batch(model: Model) -> Derivation:
    """The largest decode batch whose weights, KV cache and activations fit (docs/theory.md §4.2, §7.4).

    Solves ``weights + KV + activations = u·M`` per chip for ``B``; the answer is real-valued
    (take the floor for whole sequences).
    """
    st = T.structure_of(model)
    mem = T.decode_memory(st)
    aggs = T.aggregates(st)
    eq = sp.Eq(mem["memory_bytes_per_chip"], mem["usable_bytes_per_chip"])
    sol = _solve_one(eq, B)
    lhs = extra_symbol("max_batch", r"B_{max}", "largest batch that fits")
    used = extra_symbol("bytes_per_chip", r"M_{used}", "bytes per chip")
    steps = [
        Step("Bytes per chip: weights, KV cache, activations (docs/theory.md §4.2)",
             sp.Eq(used, T.show(mem["memory_bytes_per_chip"], aggs), evaluate=False)),
        Step("Fill the usable HBM and solve for B", T.show(eq, aggs)),
        Step("Solution", sp.Eq(lhs, T.show(sol, aggs), evaluate=False)),
    ]
    return Derivation("max_batch", lhs, sol, tuple(steps), T.show(sol, aggs), aggs,
                      (T.ASSUME_SPLIT, "take the floor for a whole number of sequences"), "sequences",
                      "docs/theory.md §4.2, §7.4")


def cheapest_batch(model: Model) -> Derivation:
    """The cheapest decode batch whose step time meets a latency target ``ℓ`` (``tpot_s``).

    Cost per token ``T_step/B`` never rises with ``B`` (docs/theory.md §7.5), so the cheapest batch
    is the largest that meets the target and fits: ``min(B_mem(ℓ), B_comp(ℓ), B_max)`` where
    ``B_mem`` and ``B_comp`` solve ``T_w + T_kv + T_comm + T_oh = ℓ`` and
    ``T_comp + T_comm + T_oh = ℓ``. A value below 1 means ``ℓ`` is under the latency floor.
    """
    st = T.structure_of(model)
    terms = T.decode_terms(st)
    ell = extra_symbol("tpot_s", r"\ell", "latency target per output token (s)")
    lhs = extra_symbol("cheapest_batch", r"B_{\ell}", "cheapest batch meeting the latency target")
    for term in ("compute_s", "weights_s", "kv_s", "communication_s", "overhead_s"):
        if sp.diff(terms[term], B, 2) != 0:
            raise RuntimeError(f"{term} is not affine in the batch")
    # every term is affine in B: name its value at B = 0 and its slope, solve, substitute back
    tw, toh = T.term_symbols()["weights_s"], T.term_symbols()["overhead_s"]
    c0 = extra_symbol("T_comm0", r"T_{comm}^{0}", "communication time at B = 0")
    k = {n: extra_symbol(f"slope_{n}", rf"k_{{{n.split('_')[0][:4]}}}", f"d {n}/dB") for n in
         ("compute_s", "kv_s", "communication_s")}
    bmax_sym = extra_symbol("max_batch", r"B_{max}", "largest batch that fits")
    defs = {tw: terms["weights_s"], toh: terms["overhead_s"], c0: terms["communication_s"].xreplace({B: 0}),
            **{k[n]: sp.diff(terms[n], B) for n in k}, bmax_sym: max_batch(st).expr}
    eq_mem = sp.Eq(tw + k["kv_s"] * B + c0 + k["communication_s"] * B + toh, ell)
    eq_comp = sp.Eq(k["compute_s"] * B + c0 + k["communication_s"] * B + toh, ell)
    compact = sp.Min(_solve_one(eq_mem, B), _solve_one(eq_comp, B), bmax_sym, evaluate=False)
    sol = sp.Min(*(a.xreplace(defs) for a in compact.args))
    steps = [
        Step("Every decode term is affine in B (docs/theory.md §5.1-5.5): T_x = T_x(0) + k_x B, with "
             "T_w and T_oh constant", sp.Eq(T.term_symbols()["kv_s"], k["kv_s"] * B, evaluate=False)),
        Step("Memory side meets the target", eq_mem),
        Step("Compute side meets the target", eq_comp),
        Step("Cost per token T_step/B falls with B, so take the largest batch that meets both and fits",
             sp.Eq(lhs, compact, evaluate=False)),
    ]
    assumptions = (T.ASSUME_SPLIT, T.ASSUME_LINK, "roofline max(T_comp, T_w + T_kv) plus communication "
                   "and overhead, not overlapped (docs/theory.md §5.4)", "MoE: every routed expert is fetched")
    return Derivation("cheapest_batch", lhs, sol, tuple(steps), compact, defs, assumptions, "sequences",
                      "docs/theory.md §7.4-7.5, §10")
