"""The optimiser's picks, their step composed from measured kernel latencies, against our operator step.

For each problem the decode optimiser (``cm.optimize``, calibrated profile) picks a configuration;
for that configuration this script lists the operators of the step (docs/theory.md §20), looks up
each one's measured latency in the kernel tables (aiconfigurator-core 0.12.0, TensorRT-LLM
1.3.0rc20; :class:`costmodel.kernels.lookup.Lookup`, interpolated between measured shapes) and
adds them up, operators without a table (norms, activations, routing, embedding) taken from the
model and counted apart. It prints the composed step, the operator step under the ``kernels``
profile and the single-roofline step under the ``calibrated`` profile, and their ratios.

Problems (the issue's): Llama-3.1-70B on up to 8 H100 at 1024 input and 1024 output tokens (mean
decode context 1536) within TPOT 15, 30 and 50 ms; DeepSeek-V3 on up to 8 H200 within 50 ms.

Needs the kernels extra (``pip install -e '.[kernels]'``). Run: ``python experiments/kernel_composition.py``.
"""

from __future__ import annotations

import sympy as sp

import costmodel as cm
from costmodel.inputs import scenario
from costmodel.kernels import read_table
from costmodel.kernels.lookup import Lookup
from costmodel.symbolic.operators import Tokens, operators
from costmodel.symbolic.symbols import SYMBOLS, sym

PROBLEMS = [("llama-3.1-70b", "h100-sxm", 1536, 0.015), ("llama-3.1-70b", "h100-sxm", 1536, 0.030),
            ("llama-3.1-70b", "h100-sxm", 1536, 0.050), ("deepseek-v3", "h200", 1536, 0.050)]
_DTYPE = {"bf16": "bfloat16", "fp8": "fp8"}


def measured_ops(sc, lookup: Lookup) -> tuple[list[tuple[str, float, float, str]], float, float]:
    """``[(name, count, seconds per step composed, ours, "table" or "model")]``, the table total and the
    model total."""
    st = sc.model.structure
    B, S, pp = sym("batch", "context", "pp")
    ops = operators(st, cm.Rules(step="operators"), Tokens(decode_seqs=B / pp, context=S))
    x = {sym(k): v for k, v in sc.inputs().items() if k in SYMBOLS}
    pred = cm.evaluate(sc, cm.Rules(step="operators")).values
    wdt, kvdt = _DTYPE.get(sc.weights, sc.weights), _DTYPE.get(sc.kv, sc.kv)
    rows, table, model = [], 0.0, 0.0
    for op in ops:
        n = float(sp.sympify(op.count).xreplace(x))
        if n == 0:
            continue
        shape = {k: float(sp.sympify(v).xreplace(x)) for k, v in op.shape}
        t = None
        if op.kind == "gemm" and shape["M"] >= 1:
            t = lookup.gemm(shape["M"], shape["N"], shape["K"], wdt)
        elif op.kind == "attention_decode":
            t = lookup.decode_attention(shape["sequences"], shape["context"], shape["heads"], shape["kv_heads"],
                                        sc.model.d_head, kvdt)
        elif op.kind == "mla_decode":
            t = lookup.mla_decode(shape["sequences"], shape["context"], shape["heads"], kvdt)
        elif op.name == "moe_up_gemm":
            m = sc.model
            args = (shape["tokens_per_expert"] * m.n_experts / m.experts_per_token, m.d_model, m.d_ff_expert,
                    m.experts_per_token, m.n_experts, sc.parallel.tp, sc.parallel.ep)
            try:
                t = lookup.moe(*args, wdt)
            except cm.CostModelError:  # DeepSeek's experts are measured with block-scaled fp8 only
                t = lookup.moe(*args, "fp8_block" if wdt == "fp8" else wdt)
        elif op.name in ("moe_routing", "moe_down_gemm", "moe_finalize"):
            t = 0.0  # inside the fused MoE kernel the table measures
        elif op.name == "tp_all_reduce" and sc.parallel.tp > 1:
            t = lookup.allreduce(shape["bytes"], sc.parallel.tp)
        ours = pred[f"op_{op.name}_s"]
        if t is None:
            rows.append((op.name, n, ours, ours, "model"))
            model += ours
        else:
            rows.append((op.name, n, n * t, ours, "table"))
            table += n * t
    return rows, table, model


def main() -> None:
    print("| problem | pick | composed from tables (ms) | of which modelled (ms) | operator step, kernels (ms) | ratio | "
          "roofline step, calibrated (ms) | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    lookups: dict[str, Lookup] = {}
    for model, hw, ctx, tpot in PROBLEMS:
        s = cm.optimize(model, hw, context=ctx, tpot_s=tpot, max_chips=8, weights="bf16,fp8", kv="bf16,fp8",
                        efficiency="calibrated")
        if not s.feasible:
            print(f"| {model} on {hw}, TPOT {tpot * 1e3:g} ms | infeasible: {s.message} | | | | | | |")
            continue
        c = s.config
        par = cm.Parallel(tp=c["tp"], pp=c["pp"], ep=c["ep"])
        prec = cm.Precision(weights=c["weights"], kv=c["kv"])
        sc = scenario(model, hw, cm.Workload(batch=c["batch"], context=ctx), par, prec, "kernels")
        if hw not in lookups:
            lookups[hw] = Lookup({k: read_table(k, hw) for k in ("gemm", "attention_generation", "mla_generation",
                                                                   "moe", "allreduce")})
        rows, table, modelled = measured_ops(sc, lookups[hw])
        composed = table + modelled
        ours = cm.evaluate(sc, cm.Rules(step="operators")).step_time_s
        roof = cm.predict(model, hw, cm.Workload(batch=c["batch"], context=ctx), parallel=par, precision=prec,
                          efficiency="calibrated").step_time_s
        pick = f"tp{par.tp} pp{par.pp} ep{par.ep}, batch {c['batch']:g}, {c['weights']} weights, {c['kv']} KV"
        print(f"| {model} on {hw}, TPOT {tpot * 1e3:g} ms | {pick} | {composed * 1e3:.2f} | {modelled * 1e3:.2f} | "
              f"{ours * 1e3:.2f} | {ours / composed:.3f} | {roof * 1e3:.2f} | {roof / composed:.3f} |")
        for name, n, sec, mine, how in rows:
            print(f"|   | {name} x{n:g} ({how}) | {sec * 1e3:.3f} | | {mine * 1e3:.3f} | {mine / sec if sec else 1:.3f} | | |")


if __name__ == "__main__":
    main()
