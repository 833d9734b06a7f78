"""A Markdown or LaTeX report for one model, chip and workload.

Sections: the model and chip numbers with their sources; each closed form of
:mod:`costmodel.derive` step by step (symbols, then numbers substituted); the
predicted operating points; the optimiser's answer; the figures of
:mod:`costmodel.plot`. The document is a list of blocks rendered by
:mod:`costmodel._render`.
"""

from __future__ import annotations

from pathlib import Path

from . import derive
from ._render import Figure_, Heading, Math, Para, Table, render
from .config import DEFAULT_EFFICIENCY, Efficiency, Parallel, Precision, Workload
from .errors import ConfigError
from .inputs import Scenario, scenario
from .symbolic import SYMBOLS

__all__ = ["write_report", "report_blocks"]

_SPEC_ROWS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size", "n_experts",
              "experts_per_token", "flops_per_s", "hbm_bytes_per_s", "hbm_bytes", "scale_up_bytes_per_s",
              "usd_per_chip_hour", "weight_bytes", "kv_bytes")


def _fmt(v: float) -> str:
    if abs(v) >= 1e7:
        return f"{v:.4g}"
    return f"{v:,.0f}" if abs(v) >= 100 and float(v).is_integer() else f"{v:.4g}"


def _spec_table(sc: Scenario) -> Table:
    vals = sc.inputs()
    srcs = {**{k: v for k, v in sc.hardware.sources.items() if "." not in k}, **sc.model.sources}
    srcs["flops_per_s"] = sc.hardware.sources.get(f"flops_per_s.{sc.math}", "")
    rows = []
    for name in _SPEC_ROWS:
        if name not in vals or (name.startswith(("n_experts", "experts")) and not vals[name]):
            continue
        info = SYMBOLS[name]
        src = srcs.get(name, sc.model.source if info.group == "model" else "precision format")
        rows.append([f"${info.latex}$", info.meaning, _fmt(vals[name]), info.unit, src[:90]])
    return Table(["symbol", "meaning", "value", "unit", "source"], rows)


def _derivation_blocks(d: derive.Derivation, sc: Scenario, title: str, extra: dict) -> list:
    blocks: list = [Heading(title, 3), Para(f"Source: {d.source}. Assumptions: {'; '.join(d.assumptions)}.")]
    for step in d.steps:
        if step.text:
            blocks.append(Para(step.text.rstrip(":") + ":"))
        blocks.append(Math(step.latex))
    shown = d.compact if d.compact is not None else d.expr
    used = [s for s in d.definitions if s in shown.free_symbols]
    short = [tex for s, tex in zip(d.definitions, d.definitions_latex) if s in used and len(tex) < 260]
    if short:
        blocks.append(Para("where"))
        blocks += [Math(tex) for tex in short]
    blocks.append(Para("Numbers substituted:"))
    blocks.append(Math(d.substituted_latex(sc, **extra)))
    if d.name == "critical_batch_kv" and d.evaluate(sc, **extra) <= 0:
        blocks.append(Para("No positive root: the context is beyond the wall below, so decode is memory-bound "
                           "at every batch."))
    return blocks


def _derivations(sc: Scenario, tpot_s: float) -> list:
    m = sc.model
    out: list = [Heading("Derivations", 2)]
    items = [
        (derive.critical_batch(m), "Critical batch (no KV)", {}),
        (derive.critical_batch(m, kv=True), "Critical batch with the KV fetch", {}),
        (derive.context_wall(m), "Context beyond which decode is memory-bound at every batch", {}),
        (derive.latency_floor(m, kv=False, communication=False), "Weight-only latency floor", {}),
        (derive.latency_floor(m), "Latency floor with KV, communication and overhead", {}),
        (derive.max_batch(m), "Largest batch that fits", {}),
        (derive.cheapest_batch(m), f"Cheapest batch for a {tpot_s * 1e3:g} ms target", {"tpot_s": tpot_s}),
        (derive.cost_latency_frontier(m), "Memory-bound cost-latency frontier", {"tpot_s": tpot_s}),
        (derive.fast_mode_cost_ratio(), "Fast mode: cost ratio", {"floor_fraction": 5 / 14, "speedup": 2.5}),
        (derive.fast_mode_floor_fraction(), "Fast mode: the floor fraction implied by a price",
         {"price_ratio": 6.0, "speedup": 2.5}),
        (derive.speculative_tokens_per_step(), "Speculative decoding: tokens per target step",
         {"acceptance": 0.8, "draft_tokens": 4.0}),
    ]
    for d, title, extra in items:
        out += _derivation_blocks(d, sc, title, extra)
    return out


def _operating_points(sc: Scenario, tpot_s: float, rules) -> list:
    from .prediction import evaluate

    m = sc.model
    bmax = derive.max_batch(m).evaluate(sc)
    cands = {"batch 1 (latency floor)": 1.0,
             "critical batch (no KV)": derive.critical_batch(m).evaluate(sc),
             f"cheapest batch for {tpot_s * 1e3:g} ms": derive.cheapest_batch(m).evaluate(sc, tpot_s=tpot_s),
             "largest batch that fits": bmax}
    rows = []
    for label, b in cands.items():
        b = max(1.0, float(int(b)))
        p = evaluate(scenario(m, sc.hardware, Workload(batch=b, context=sc.workload.context), sc.parallel,
                              Precision(sc.weights, sc.kv, sc.math, sc.activations, sc.dispatch), sc.efficiency,
                              sc.usd_per_chip_hour), rules)
        rows.append([label, f"{b:,.0f}", f"{p.step_time_s * 1e3:.3g}", f"{p.tokens_per_s_per_user:,.0f}",
                     f"{p.usd_per_mtok:.3g}", p.bound, "yes" if p.fits else "no"])
    return [Heading("Predicted operating points", 2),
            Para(f"The compiled model at {sc.parallel.chips_per_replica} chips per replica "
                 f"(rules: {rules.combine} combine, communication overlap {rules.comm_overlap})."),
            Table(["operating point", "batch", "ms per token", "tokens/s per user", "USD per Mtok", "bound", "fits"],
                  rows)]


def _optimiser(sc: Scenario, tpot_s: float, max_chips: int) -> list:
    import costmodel

    blocks: list = [Heading("The optimiser's answer", 2)]
    sol = costmodel.optimize(sc.model, sc.hardware, context=sc.workload.context, tpot_s=tpot_s,
                             max_chips=max_chips, usd_per_chip_hour=sc.usd_per_chip_hour, efficiency=sc.efficiency)
    blocks.append(Para(f"Cheapest configuration with at most {tpot_s * 1e3:g} ms per output token and at most "
                       f"{max_chips} chips: {sol.message}"))
    if sol.feasible:
        rows = [[k, str(v)] for k, v in sol.config.items()]
        rows += [["USD per Mtok", f"{sol.usd_per_mtok:.4g}"], ["step time", f"{sol.step_time_s * 1e3:.4g} ms"],
                 ["binding", str(sol.binding)]]
        blocks.append(Table(["", "value"], rows))
    return blocks


def report_blocks(sc: Scenario, *, tpot_s: float = 0.05, max_chips: int = 64, figures: dict[str, str] | None = None,
                  optimise: bool = True, rules=None) -> list:
    """The report as a list of blocks (see :mod:`costmodel._render`)."""
    from .symbolic import Rules

    rules = rules or Rules()
    blocks: list = [
        Heading(f"Inference cost report: {sc.model.name} on {sc.hardware.name}", 1),
        Para(f"Decode at context {sc.workload.context:,.0f} on {sc.parallel.chips_per_replica} chips per replica "
             f"(tp={sc.parallel.tp}); weights {sc.weights}, KV {sc.kv}, math {sc.math}; "
             f"USD {sc.usd_per_chip_hour:g} per chip-hour. Formulas follow docs/theory.md; every closed form below was "
             "derived by SymPy from the model's own expressions."),
        Heading("Model and chip", 2), _spec_table(sc),
    ]
    blocks += _derivations(sc, tpot_s)
    blocks += _operating_points(sc, tpot_s, rules)
    if optimise:
        blocks += _optimiser(sc, tpot_s, max_chips)
    if figures:
        blocks.append(Heading("Figures", 2))
        blocks += [Figure_(path, caption) for caption, path in figures.items()]
    return blocks


def write_report(model, hardware, out_dir: str | Path, *, fmt: str = "md", context: float = 8192, tp: int = 8,
                 tpot_s: float = 0.05, max_chips: int = 64, precision: Precision = Precision(),
                 usd_per_chip_hour: float | None = None, efficiency: Efficiency | str = DEFAULT_EFFICIENCY,
                 figure_format: str = "png", optimise: bool = True) -> Path:
    """Write ``report.md`` (or ``report.tex``) and its figures into ``out_dir``; return the report's path.

    Raises:
        ConfigError: an unknown format; CostModelError for a bad model, chip or split.
    """
    if fmt not in ("md", "tex"):
        raise ConfigError(f"report format must be 'md' or 'tex', got {fmt!r}")
    from .plot import FIGURES, KINDS, Setup

    sc = scenario(model, hardware, Workload(batch=1, context=context), Parallel(tp=tp), precision,
                  efficiency, usd_per_chip_hour=usd_per_chip_hour)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    setup = Setup(sc.model, sc.hardware, context=context, tp=tp, precision=precision, efficiency=efficiency,
                  usd_per_chip_hour=usd_per_chip_hour)
    figures = {}
    for kind, draw in KINDS.items():
        name = f"{kind}.{figure_format}"
        draw(setup).savefig(out / name, dpi=110)
        figures[FIGURES[kind][1]] = name
    text = render(report_blocks(sc, tpot_s=tpot_s, max_chips=max_chips, figures=figures, optimise=optimise), fmt)
    path = out / f"report.{fmt}"
    path.write_text(text, encoding="utf-8")
    return path
