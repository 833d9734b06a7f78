"""The model's own decode terms, prepared for solving, and the aggregates used to display them.

Derivations start from :func:`costmodel.symbolic.step_terms` and
:func:`costmodel.symbolic.memory_terms` of the model's structure and make the
simplifications stated here (one replica of ``n = tp`` chips, ``pp = ep = 1``;
tensor parallelism within the KV heads, so no KV replication; collectives inside
one scale-up domain).
"""

from __future__ import annotations

import sympy as sp

from ..specs.catalog import load_model
from ..specs.model import ModelSpec, ModelStructure
from ..symbolic import Rules, memory_terms, step_terms, sym
from ..symbolic import architecture as arch
from ._base import Step, collapse, extra_symbol

__all__ = ["structure_of", "single_replica", "decode_terms", "decode_memory", "aggregates", "show", "term_symbols",
           "ASSUME_SPLIT", "ASSUME_LINK"]

ASSUME_SPLIT = ("one replica of n = n_tp chips (pp = ep = 1, no redundant experts, balanced expert load), "
                "n_tp <= N_kv so the KV cache is not replicated")
#: Substituted in every derivation: 16-bit math without weight-only dequantisation, decode steps
#: replayed from CUDA graphs, the KV cache filling u·M (the vLLM form of the memory rule, §4.3), and
#: experts placed once each with a balanced load (§3.2); chips priced at a rental price (the electricity in
#: it, §21).
_PLAIN = {"low_precision_math": 0, "weight_only_8bit": 0, "weight_only_4bit": 0, "cuda_graphs": 1,
          "kv_memory_fraction": 1, "activations_in_budget": 1, "redundant_experts": 0, "expert_imbalance": 1,
          "owned": 0}
ASSUME_LINK = "tensor-parallel collectives stay inside one scale-up domain (n_tp <= n_up)"

B, S, tp, pp, ep = sym("batch", "context", "tp", "pp", "ep")


def structure_of(model: str | ModelSpec | ModelStructure) -> ModelStructure:
    """The structure of a catalog name, a spec, or a structure."""
    if isinstance(model, ModelStructure):
        return model
    return load_model(model).structure


def single_replica(st: ModelStructure, e: sp.Expr) -> sp.Expr:
    """``e`` under :data:`ASSUME_SPLIT` and :data:`ASSUME_LINK`."""
    e = e.xreplace({pp: sp.Integer(1), ep: sp.Integer(1)} | {sym(k): sp.Integer(v) for k, v in _PLAIN.items()})
    if st.attention == "gqa":
        e = e.xreplace({arch.kv_heads_replication(st): sp.Integer(1)})
    # inside one scale-up domain: the link bandwidth is the first branch of link_bytes_per_s
    return e.replace(lambda x: isinstance(x, sp.Piecewise), lambda x: x.args[0].expr)


def decode_terms(st: ModelStructure, *, expert_fetch: str = "all") -> dict[str, sp.Expr]:
    """Decode step terms (docs/theory.md §5.1-5.5) of one replica under :data:`ASSUME_SPLIT`."""
    rules = Rules("decode", "max", "none", expert_fetch)
    return {k: single_replica(st, v) for k, v in step_terms(st, rules).items()}


def decode_memory(st: ModelStructure) -> dict[str, sp.Expr]:
    """Bytes per chip in decode (docs/theory.md §4.2) under :data:`ASSUME_SPLIT`."""
    return {k: single_replica(st, v) for k, v in memory_terms(st, Rules("decode")).items()}


def aggregates(st: ModelStructure, *, tokens: sp.Expr | None = None) -> dict[sp.Symbol, sp.Expr]:
    """Named aggregates of the structure, for display: symbol -> expression in input symbols.

    ``P_w`` is the fetched parameter count (all experts unless ``tokens`` is given, then the
    expected fraction for that many tokens), ``P_mm`` the parameters multiplied per token,
    ``P_tot`` all parameters, ``A_att`` the decode attention FLOPs per token per cached
    token, and ``κ`` the KV bytes per token.
    """
    p = arch.param_counts(st)
    fetch = "all" if tokens is None else "expected"
    return {
        extra_symbol("params_fetched", "P_{w}", "parameters streamed per step"):
            arch.fetched_params(st, tokens if tokens is not None else B, expert_fetch=fetch),
        extra_symbol("params_matmul", "P_{mm}", "parameters multiplied per token"): p.matmul,
        extra_symbol("params_total_", "P_{tot}", "all parameters"): p.total,
        extra_symbol("attention_flops_per_context", "A_{att}", "decode attention FLOPs per cached token"):
            arch.decode_attention_flops_per_token(st),
        extra_symbol("kv_bytes_per_token_", r"\kappa", "KV-cache bytes per token"): arch.kv_bytes_per_token(st),
    }


def term_symbols() -> dict[str, sp.Symbol]:
    """Display symbols of the step terms."""
    return {
        "compute_s": extra_symbol("T_comp", "T_{comp}", "compute time per step"),
        "weights_s": extra_symbol("T_w", "T_{w}", "weight-fetch time per step"),
        "kv_s": extra_symbol("T_kv", "T_{kv}", "KV-fetch time per step"),
        "communication_s": extra_symbol("T_comm", "T_{comm}", "communication time per step"),
        "overhead_s": extra_symbol("T_oh", "T_{oh}", "fixed overhead per step"),
    }


def show(e: sp.Basic, aggs: dict[sp.Symbol, sp.Expr]) -> sp.Basic:
    """``e`` with aggregates named where that is exact; equations side by side; Max/Min by argument."""
    if isinstance(e, sp.Equality):
        return sp.Eq(show(e.lhs, aggs), show(e.rhs, aggs), evaluate=False)
    if isinstance(e, (sp.Max, sp.Min)):
        return e.func(*(show(a, aggs) for a in e.args), evaluate=False)
    if isinstance(e, sp.Symbol) or e.is_number:
        return e
    if isinstance(e, sp.Add) and any(isinstance(a, (sp.Max, sp.Min)) for a in e.args):
        return sp.Add(*(show(a, aggs) for a in e.args), evaluate=False)
    used = {s: g for s, g in aggs.items() if g.free_symbols <= e.free_symbols}
    out = collapse(e, used) if used else None
    return e if out is None else out


def term_steps(terms: dict[str, sp.Expr], names: tuple[str, ...], aggs: dict[sp.Symbol, sp.Expr],
               text: str) -> list[Step]:
    """One step per named term: ``T_x = expression``."""
    tsym = term_symbols()
    return [Step(text if i == 0 else "", sp.Eq(tsym[n], show(terms[n], aggs), evaluate=False))
            for i, n in enumerate(names)]
