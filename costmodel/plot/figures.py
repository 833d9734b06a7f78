"""The figures: roofline, batch sweep, cost-latency frontier, step breakdown, sensitivities.

Each function returns a :class:`matplotlib.figure.Figure` (no pyplot state, no
window); save it with ``fig.savefig("x.png")``. Every axis is labelled with its
unit and every figure has a legend and a title.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..errors import ConfigError, CostModelError
from ..symbolic import fits_in_memory
from ._data import Setup, batch_grid, regions, sweep
from .kinds import FIGURES

__all__ = ["roofline", "batch_sweep", "pareto", "chip_frontiers", "step_breakdown", "operator_breakdown",
           "sensitivity_bars", "KINDS"]

_SHADE = {"memory-bound": "#dbe9f6", "compute-bound": "#fde0c5", "does not fit": "#e6e6e6"}
_TERMS = (("weights_s", "weight fetch", "#1f77b4"), ("kv_s", "KV fetch", "#17becf"),
          ("communication_s", "communication", "#9467bd"), ("overhead_s", "fixed overhead", "#7f7f7f"))


def roofline(setup: Setup, batches=(1, 4, 16, 64, 256, 1024)) -> Figure:
    """Achieved FLOP/s per chip against arithmetic intensity, with the chip's roofline."""
    b = np.asarray(batches, dtype=float)
    out = sweep(setup, b)
    x = setup.scenario().inputs()
    peak, bw = x["flops_per_s"], x["hbm_bytes_per_s"]
    n = out["chips_per_replica"]
    bytes_moved = (out["weights_s"] + out["kv_s"]) * bw * x["hbm_efficiency"] * n
    intensity = out["flops_per_step"] / bytes_moved
    achieved = out["flops_per_step"] / (out["step_time_s"] * n)
    grid = np.geomspace(min(intensity.min(), peak / bw) / 4, max(intensity.max(), peak / bw) * 4, 200)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.loglog(grid, np.minimum(peak, grid * bw), color="black", label="roofline: min(C, I·W)")
    ax.axvline(peak / bw, color="black", ls=":", lw=1, label=f"ridge C/W = {peak / bw:.0f} FLOP/byte")
    ax.scatter(intensity, achieved, color="#d62728", zorder=3, label="operating points (batch B)")
    for i, bb in enumerate(b):
        ax.annotate(f"B={bb:g}", (intensity[i], achieved[i]), textcoords="offset points", xytext=(5, -12),
                    fontsize=8)
    ax.set_xlabel("arithmetic intensity (FLOP per HBM byte)")
    ax.set_ylabel("achieved FLOP/s per chip")
    ax.set_title(f"Roofline\n{setup.title()}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _plain_log_ticks(axis) -> None:
    """Label a log axis with plain numbers (5, 10, 20) instead of powers of ten."""
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))


def _shade(ax, spans) -> None:
    seen = set()
    for label, lo, hi in spans:
        ax.axvspan(lo, hi, color=_SHADE[label], zorder=0, label=None if label in seen else label)
        seen.add(label)


def batch_sweep(setup: Setup, batches=None) -> Figure:
    """Time per output token and cost per million tokens against batch, regimes shaded."""
    b = batch_grid() if batches is None else np.asarray(batches, dtype=float)
    out = sweep(setup, b)
    spans = regions(b, out)
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for ax in (ax1, ax2):
        _shade(ax, spans)
    ax1.plot(b, out["step_time_s"] * 1e3, color="black", label="time per output token (all terms)")
    ax1.plot(b, (out["weights_s"] + out["kv_s"]) * 1e3, ls="--", color="#1f77b4", label="memory (weights + KV)")
    ax1.plot(b, out["compute_s"] * 1e3, ls="--", color="#ff7f0e", label="compute")
    ax1.set_yscale("log")
    ax1.set_ylabel("time per output token (ms)")
    ax1.legend(fontsize=8, loc="upper left")
    ax2.plot(b, out["usd_per_mtok"], color="black", label="cost")
    ax2.set_yscale("log")
    ax2.set_xscale("log")
    ax2.set_xlabel("batch B (sequences per replica)")
    ax2.set_ylabel("cost (USD per million output tokens)")
    ax2.legend(fontsize=8, loc="upper right")
    ax1.set_title(f"Latency and cost against batch\n{setup.title()}", fontsize=10)
    return fig


def pareto(setup: Setup, chips=(1, 2, 4, 8), price_tiers: dict[str, float] | None = None) -> Figure:
    """Cost per million tokens against time per token, one curve per tensor-parallel size.

    Each curve sweeps the batch up to what fits; the black line is the lower envelope
    over all chip counts (the "fast mode" curve, docs/theory.md §10). ``price_tiers`` maps a
    label to a price in USD per million tokens, drawn as horizontal lines.
    """
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    pts = []
    for n in chips:
        try:
            out = sweep(setup, batch_grid(), tp=n)
        except CostModelError:
            continue  # a split the model does not allow (e.g. tp not dividing the heads)
        ok = fits_in_memory(out)
        if not ok.any():
            continue
        lat, cost = out["step_time_s"][ok] * 1e3, out["usd_per_mtok"][ok]
        ax.plot(lat, cost, lw=1.2, label=f"{n} chip{'s' if n > 1 else ''} (batch 1 to {batch_grid()[ok][-1]:.0f})")
        pts.append(np.stack([lat, cost], axis=1))
    if not pts:
        raise ConfigError(f"no chip count in {tuple(chips)} fits {setup.title()}; try larger counts")
    allp = np.concatenate(pts)
    allp = allp[np.argsort(allp[:, 0])]
    front = allp[np.minimum.accumulate(allp[:, 1]) == allp[:, 1]]
    ax.plot(front[:, 0], front[:, 1], color="black", lw=2.5, alpha=0.6, label="Pareto frontier", zorder=0)
    for i, (name, price) in enumerate((price_tiers or {}).items()):
        ax.axhline(price, color="#d62728", ls=(0, (4, 2 + i)), lw=1, label=f"price tier: {name} (${price:g}/Mtok)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time per output token (ms)")
    ax.set_ylabel("cost (USD per million output tokens)")
    ax.set_title(f"Cost-latency frontier over chip counts\n{setup.title()}".replace(f"{setup.tp}x ", "n x "),
                 fontsize=10)
    _plain_log_ticks(ax.xaxis)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def _frontier(setup: Setup, chips) -> np.ndarray | None:
    """``[tokens/s per user, USD per Mtok]`` of the configurations no other beats on both (faster and
    cheaper), over the batch grid and the tensor-parallel sizes ``chips``; ``None`` when none fits."""
    pts = []
    for n in chips:
        try:
            out = sweep(setup, batch_grid(), tp=n)
        except CostModelError:
            continue  # a split the model does not allow on this chip
        ok = fits_in_memory(out)
        pts.append(np.stack([out["tokens_per_s_per_user"][ok], out["usd_per_mtok"][ok]], axis=1))
    allp = np.concatenate(pts) if pts else np.zeros((0, 2))
    if not len(allp):
        return None
    allp = allp[np.argsort(-allp[:, 0])]  # fastest first: keep a point when it is cheaper than every faster one
    return allp[np.minimum.accumulate(allp[:, 1]) == allp[:, 1]]


def chip_frontiers(setups, chips=(1, 2, 4, 8)) -> Figure:
    """Cost per million tokens against tokens/s per user, one frontier per chip type.

    Each curve is that chip's lower envelope over the batch and the chip count (``tp`` in ``chips``):
    the cheapest price at each speed a user sees, so the chips compare at every point of the "fast
    mode costs more" trade (docs/theory.md §10). ``setups`` is one :class:`Setup` per chip (the same
    model, context and precision).
    """
    setups = [setups] if isinstance(setups, Setup) else list(setups)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    drawn = []
    for s in setups:
        front = _frontier(s, chips)
        name = s.scenario().hardware.name
        if front is None:
            continue
        ax.plot(front[:, 0], front[:, 1], lw=1.8, label=name)
        drawn.append(name)
    if not drawn:
        raise ConfigError(f"no chip count in {tuple(chips)} fits {setups[0].scenario().model.name} on "
                          f"{', '.join(s.scenario().hardware.name for s in setups)}; try larger counts")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens/s per user")
    ax.set_ylabel("cost (USD per million output tokens)")
    sc = setups[0].scenario()
    ax.set_title(f"Cost against speed per user, one frontier per chip (1 to {max(chips)} chips)\n"
                 f"{sc.model.name}, {sc.weights} weights, {sc.kv} KV, context {setups[0].context:,.0f}", fontsize=10)
    _plain_log_ticks(ax.xaxis)
    ax.legend(fontsize=8, loc="upper left", title="chip")
    return fig


def step_breakdown(setup: Setup, batches=(1, 16, 64, 256)) -> Figure:
    """Stacked step-time terms per batch, with the (overlapped) compute time beside them."""
    b = np.asarray(batches, dtype=float)
    out = sweep(setup, b)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    pos = np.arange(len(b))
    bottom = np.zeros(len(b))
    for key, label, color in _TERMS:
        ax.bar(pos - 0.18, out[key] * 1e3, 0.34, bottom=bottom, color=color, label=label)
        bottom += out[key] * 1e3
    ax.bar(pos + 0.18, out["compute_s"] * 1e3, 0.34, color="#ff7f0e", hatch="//", label="compute (overlaps memory)")
    ax.scatter(pos, out["step_time_s"] * 1e3, marker="_", s=600, color="black", zorder=3, label="step time")
    fits = fits_in_memory(out)
    ax.set_xticks(pos, [f"B={x:g}" + ("" if ok else "\n(does not fit)") for x, ok in zip(b, fits)])
    ax.set_xlabel("batch (sequences per replica)")
    ax.set_ylabel("time per decode step (ms)")
    ax.set_title(f"Step-time breakdown\n{setup.title()}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def operator_breakdown(setup: Setup, batches=(1, 8, 32, 128, 512), shown: int = 8) -> Figure:
    """The operator-level step (docs/theory.md §20) stacked by operator at each batch: the ``shown``
    operators that take the most time over the batches, the rest as "other"."""
    from dataclasses import replace

    from ..prediction import ops_of

    b = np.asarray(batches, dtype=float)
    ops_setup = replace(setup, rules=replace(setup.rules, step="operators"))
    out = sweep(ops_setup, b)
    rows = [ops_of({k: float(v[i]) for k, v in out.items()}) for i in range(len(b))]
    names = list(dict.fromkeys(o["name"] for r in rows for o in r))
    times = {n: np.array([next((o["time_s"] for o in r if o["name"] == n), 0.0) for r in rows]) for n in names}
    top = sorted(names, key=lambda n: -times[n].sum())[:shown]
    series = [(n, times[n]) for n in top] + [("other", sum((times[n] for n in names if n not in top), np.zeros(len(b))))]
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    pos = np.arange(len(b))
    bottom = np.zeros(len(b))
    colors = [f"C{i}" for i in range(len(series) - 1)] + ["#bbbbbb"]
    for (name, t), color in zip(series, colors):
        ax.bar(pos, t * 1e3, 0.6, bottom=bottom, color=color, label=name.replace("_", " "))
        bottom += t * 1e3
    fits = fits_in_memory(out)
    ax.set_xticks(pos, [f"B={x:g}" + ("" if ok else "\n(does not fit)") for x, ok in zip(b, fits)])
    ax.set_xlabel("batch (sequences per replica)")
    ax.set_ylabel("time per decode step (ms)")
    ax.set_title(f"The step by operator\n{setup.title()}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncols=2)
    return fig


_LABELS = {"flops_per_s": "peak FLOP/s", "hbm_bytes_per_s": "HBM bandwidth", "hbm_bytes": "HBM capacity",
           "scale_up_bytes_per_s": "scale-up bandwidth", "collective_latency_s": "collective latency",
           "usd_per_chip_hour": "price per chip-hour"}


def sensitivity_bars(setup: Setup, batch: float = 64) -> Figure:
    """Elasticities ``∂log y/∂log x`` of cost and step time to each hardware number (JAX autodiff)."""
    from ..config import Parallel, Workload
    from ..derive.sensitivity import sensitivities

    sens = sensitivities(setup.model, setup.hardware, Workload(batch=batch, context=setup.context),
                         parallel=Parallel(tp=setup.tp), precision=setup.precision, efficiency=setup.efficiency,
                         usd_per_chip_hour=setup.usd_per_chip_hour, rules=setup.rules)
    names = list(_LABELS)
    pos = np.arange(len(names))
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for off, (key, label, color) in zip((-0.2, 0.2), (("usd_per_mtok", "cost per token", "#2ca02c"),
                                                       ("step_time_s", "time per token", "#1f77b4"))):
        vals = [sens[key].elasticity[n] for n in names]
        bars = ax.barh(pos + off, vals, 0.38, color=color, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)  # zeros are shown, not left blank
    ax.axvline(0, color="black", lw=0.8)
    ax.margins(x=0.12)
    ax.set_yticks(pos, [_LABELS[n] for n in names])
    ax.set_xlabel("elasticity: % change of the output per +1% of the input (dimensionless)")
    ax.set_ylabel("hardware number")
    ax.set_title(f"Sensitivities to hardware numbers at batch {batch:g}\n{setup.title()}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


#: Figure kinds by the name the CLI uses -> the function that draws them (see :data:`.kinds.FIGURES`).
KINDS = {kind: globals()[fn] for kind, (fn, _) in FIGURES.items()}
