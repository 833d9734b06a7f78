"""The formulas of the theory page, produced by ``costmodel.symbolic`` and ``costmodel.derive``.

Three kinds of block:

- ``symbols``: the table of model inputs (name, LaTeX, unit, meaning);
- ``formula NAME``: one expression of :mod:`costmodel.symbolic`, as ``lhs = LaTeX``;
- ``derivation NAME``: one :class:`costmodel.derive.Derivation`, step by step, with its assumptions.

Formulas are for the generic structures (GQA/MHA/MQA or MLA attention, dense or
MoE MLP), not for a particular model: every number stays a symbol.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import sympy as sp

from costmodel import derive
from costmodel.specs.model import ModelStructure
from costmodel.symbolic import (
    SYMBOLS,
    Rules,
    all_reduce_s,
    all_to_all_s,
    architecture as arch,
    latex_names,
    outputs,
    step_terms,
)
from costmodel.symbolic.power import power_terms

DENSE = ModelStructure("gqa", "dense")
MOE = ModelStructure("gqa", "moe")
MLA = ModelStructure("mla", "moe", q_compressed=True)

_T = {name: sp.Symbol(name) for name in ("T_comp", "T_w", "T_kv", "T_comm", "T_oh", "T_roof", "T_step", "P_chip",
                                          "c_E")}
_DISPLAY = {
    _T["T_comp"]: "T_{comp}", _T["T_w"]: "T_{w}", _T["T_kv"]: "T_{kv}", _T["T_comm"]: "T_{comm}",
    _T["T_oh"]: "T_{oh}", _T["T_roof"]: "T_{roof}", _T["T_step"]: "T_{step}", _T["P_chip"]: "P",
    _T["c_E"]: "c_{E}",
}
_V, _N, _W, _BTOK = sp.symbols("V n W_link B_tok", positive=True)
_DISPLAY.update({_V: "V", _N: "n", _W: r"W_{link}", _BTOK: "B_{tok}"})


def tex(e: sp.Basic) -> str:
    """LaTeX with the house symbol names (``costmodel.symbolic.latex_names``)."""
    return sp.latex(e, symbol_names=latex_names() | _DISPLAY, mul_symbol="dot")


def _combined(rules: Rules) -> sp.Expr:
    """``T_roof`` under ``rules`` in the named terms (checked against the code)."""
    t = step_terms(DENSE, rules)
    named = t["roofline_s"].xreplace({t["compute_s"]: _T["T_comp"], t["weights_s"]: _T["T_w"],
                                      t["kv_s"]: _T["T_kv"]})
    if named.free_symbols - set(_T.values()):
        raise ValueError(f"the roofline under {rules} is not a combination of T_comp, T_w, T_kv: {named}")
    return named


def _step_total() -> sp.Expr:
    t = step_terms(DENSE, Rules())
    claimed = t["roofline_s"] + t["communication_s"] + t["overhead_s"]
    if sp.expand(claimed - t["step_time_s"]) != 0:
        raise ValueError("step_time_s is no longer T_roof + T_comm + T_oh under the default rules")
    return _T["T_roof"] + _T["T_comm"] + _T["T_oh"]


def _per_step(name: str) -> sp.Expr:
    """Output ``name`` in the named step terms: the board power ``P``, the electricity ``c_E``, ``T_step``."""
    t = step_terms(DENSE, Rules())
    named = {**t, "compute_s": _T["T_comp"], "weights_s": _T["T_w"], "kv_s": _T["T_kv"], "step_time_s": _T["T_step"]}
    o = outputs(DENSE, Rules())
    chips, tokens = o["chips_per_replica"], o["tokens_per_step"]
    energy = power_terms(named, chips, tokens)
    if name == "power_w_per_chip":
        return energy[name]
    if name in ("joules_per_token", "usd_per_mtok_energy"):
        return energy[name].subs(energy["power_w_per_chip"], _T["P_chip"])
    out = o[name].subs(o["usd_per_mtok_energy"], _T["c_E"])
    return out.xreplace({t["step_time_s"]: _T["T_step"]})


#: name -> (left-hand side in LaTeX, expression)
FORMULAS: dict[str, tuple[str, Callable[[], sp.Expr]]] = {
    "attention_params_gqa": ("P_{attn}", lambda: arch.attention_params_per_layer(DENSE)),
    "attention_params_mla": ("P_{attn}", lambda: arch.attention_params_per_layer(MLA)),
    "params_total_dense": ("P_{tot}", lambda: arch.param_counts(DENSE).total),
    "params_matmul_dense": ("P_{mm}", lambda: arch.param_counts(DENSE).matmul),
    "params_total_moe": ("P_{tot}", lambda: arch.param_counts(MOE).total),
    "params_active_moe": ("P_{act}", lambda: arch.param_counts(MOE).active),
    "expert_touch_fraction": (r"\phi(B_{tok})", lambda: arch.expert_touch_fraction(_BTOK)),
    "kv_bytes_per_token_gqa": (r"\kappa", lambda: arch.kv_bytes_per_token(DENSE)),
    "kv_bytes_per_token_mla": (r"\kappa", lambda: arch.kv_bytes_per_token(MLA)),
    "kv_replication_gqa": ("r_{kv}", lambda: arch.kv_heads_replication(DENSE)),
    "decode_attention_flops_gqa": ("A_{att}", lambda: arch.decode_attention_flops_per_token(DENSE)),
    "decode_attention_flops_mla": ("A_{att}", lambda: arch.decode_attention_flops_per_token(MLA)),
    "all_reduce": (r"T_{AR}(V, n)", lambda: all_reduce_s(_V, _N, _W)),
    "all_to_all": (r"T_{A2A}(V, n)", lambda: all_to_all_s(_V, _N, _W)),
    "combine_max": ("T_{roof}", lambda: _combined(Rules(combine="max"))),
    "combine_sum": ("T_{roof}", lambda: _combined(Rules(combine="sum"))),
    "step_time": ("T_{step}", _step_total),
    "usd_per_mtok": (r"c_{Mtok}", lambda: _per_step("usd_per_mtok")),
    "tokens_per_s": ("\\text{tokens/s}", lambda: _per_step("tokens_per_s")),
    "power_w_per_chip": ("P", lambda: _per_step("power_w_per_chip")),
    "joules_per_token": ("E_{tok}", lambda: _per_step("joules_per_token")),
    "usd_per_mtok_energy": ("c_{E}", lambda: _per_step("usd_per_mtok_energy")),
}

#: name -> the derivation (structure-level: every number stays a symbol)
DERIVATIONS: dict[str, Callable[[], derive.Derivation]] = {
    "critical_batch": lambda: derive.critical_batch(DENSE),
    "critical_batch_moe": lambda: derive.critical_batch(MOE),
    "critical_batch_kv": lambda: derive.critical_batch(DENSE, kv=True),
    "context_wall": lambda: derive.context_wall(DENSE),
    "max_batch": lambda: derive.max_batch(DENSE),
    "latency_floor": lambda: derive.latency_floor(DENSE),
    "floor_fraction": lambda: derive.floor_fraction(DENSE),
    "cost_latency_frontier": lambda: derive.cost_latency_frontier(DENSE),
    "fast_mode_cost_ratio": derive.fast_mode_cost_ratio,
    "fast_mode_floor_fraction": derive.fast_mode_floor_fraction,
    "speculative_tokens_per_step": derive.speculative_tokens_per_step,
    "static_batch_latency": lambda: derive.static_batch_latency(DENSE),
    "aggregated_step": lambda: derive.aggregated_step(DENSE),
    "prefill_share": lambda: derive.prefill_share(DENSE),
    "speculative_break_even": lambda: derive.speculative_break_even(DENSE),
}


def _symbols_table() -> str:
    rows = ["| input | symbol | unit | meaning |", "|---|---|---|---|"]
    for name, info in SYMBOLS.items():
        rows.append(f"| `{name}` | ${info.latex}$ | {info.unit} | {info.meaning} |")
    return "\n".join(rows)


def _formula(name: str) -> str:
    lhs, make = FORMULAS[name]
    return f"$$\n{lhs} = {tex(make())}\n$$"


def _derivation(name: str) -> str:
    d = DERIVATIONS[name]()
    out: list[str] = []
    for step in d.steps:
        if step.text:
            out += [step.text.rstrip(":. ") + ":", ""]
        out += ["$$", step.latex, "$$", ""]
    if d.assumptions:
        out += ["Assumptions: " + "; ".join(d.assumptions) + ".", ""]
    if d.source:
        out += [f"Source: {d.source}.", ""]
    return "\n".join(out)


def _aggregates() -> str:
    defs: dict[str, str] = {}
    for name in ("critical_batch_kv", "max_batch"):
        for line in DERIVATIONS[name]().definitions_latex:
            defs.setdefault(line.split(" = ", 1)[0], line)
    return "\n".join(f"$$\n{line}\n$$" for line in defs.values())


@functools.cache
def render(arg: str | None) -> str:
    """The body of a theory block: ``symbols``, ``aggregates``, a formula or a derivation name."""
    if arg == "symbols":
        return _symbols_table()
    if arg == "aggregates":
        return _aggregates()
    if arg in FORMULAS:
        return _formula(arg)
    if arg in DERIVATIONS:
        return _derivation(arg)
    known = ["symbols", "aggregates", *FORMULAS, *DERIVATIONS]
    raise ValueError(f"unknown theory block {arg!r}; known: {', '.join(known)}")
