"""Serving figures: TTFT and TPOT against load, throughput per chip against interactivity.

Both compare aggregated serving (continuous batching with chunked prefill on every
replica) with disaggregated serving (a prefill pool and a decode pool) on the same
number of chips: ``2`` aggregated replicas of ``tp`` chips against one prefill and one
decode replica of ``tp`` chips each (docs/serving.md §19). Every point is one
:func:`costmodel.serve` call.

Example:
    >>> from costmodel.plot import Setup
    >>> from costmodel.plot.serving import load_sweep
    >>> fig = load_sweep(Setup("llama-3-70b", "h100-sxm", tp=8), isl=1024, osl=1024)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..config import Parallel
from ..errors import ConfigError
from ._data import Setup
from .figures import _plain_log_ticks
from .kinds import SERVING_FIGURES

__all__ = ["LOADS", "SERVING_KINDS", "load_sweep", "throughput_interactivity", "serving_curve"]

#: Load axes of :func:`load_sweep`.
LOADS = ("concurrency", "rate")

_STYLE = {"aggregated": ("#1f77b4", "o"), "disaggregated": ("#d62728", "s")}


@dataclass(frozen=True)
class Curve:
    """Serving figures along a load sweep (NaN where the load is past saturation)."""

    label: str
    load: np.ndarray
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    per_chip: np.ndarray
    per_user: np.ndarray
    fits: np.ndarray
    chips: int


def _modes(setup: Setup) -> dict[str, dict]:
    """``serve`` keywords of the two deployments on ``2·tp`` chips."""
    from .. import Disaggregated, Pool

    tp = setup.tp
    return {
        "aggregated": {"parallel": Parallel(tp=tp, replicas=2)},
        "disaggregated": {"disagg": Disaggregated(Pool(Parallel(tp=tp)), Pool(Parallel(tp=tp)))},
    }


def _label(mode: str, tp: int, chips: int) -> str:
    if mode == "aggregated":
        return f"aggregated: 2 replicas of tp={tp} ({chips} chips)"
    return f"disaggregated: prefill tp={tp} + decode tp={tp} ({chips} chips)"


def serving_curve(setup: Setup, mode: str, isl: float, osl: float, load: str, points) -> Curve:
    """:func:`costmodel.serve` at each load of ``points`` (requests in flight, or requests/s)."""
    from .. import Load, Requests, serve

    if load not in LOADS:
        raise ConfigError(f"load must be one of {', '.join(LOADS)}, got {load!r}")
    kw = _modes(setup)[mode]
    req = Requests(isl, osl)
    rows = []
    chips = 0
    for x in points:
        lo = Load.concurrency(float(x)) if load == "concurrency" else Load.rate(float(x))
        s = serve(setup.model, setup.hardware, req, lo, precision=setup.precision, efficiency=setup.efficiency,
                  usd_per_chip_hour=setup.usd_per_chip_hour, rules=setup.rules, **kw)
        chips = s.chips
        ok = not s.saturated and np.isfinite(s.ttft_s)
        rows.append((s.ttft_s if ok else np.nan, s.tpot_s if ok else np.nan,
                     s.output_tokens_per_s_per_chip if ok else np.nan, s.tokens_per_s_per_user if ok else np.nan,
                     s.fits))
    a = np.array(rows, dtype=float).reshape(-1, 5)
    return Curve(_label(mode, setup.tp, chips), np.asarray(points, dtype=float), a[:, 0], a[:, 1], a[:, 2], a[:, 3],
                 a[:, 4].astype(bool), chips)


def _max_rate(setup: Setup, mode: str, isl: float, osl: float) -> float:
    """The largest sustainable request rate of a deployment (the offline throughput)."""
    from .. import Load, Requests, serve

    s = serve(setup.model, setup.hardware, Requests(isl, osl), Load.offline(), precision=setup.precision,
              efficiency=setup.efficiency, usd_per_chip_hour=setup.usd_per_chip_hour, rules=setup.rules,
              **_modes(setup)[mode])
    return float(s.requests_per_s)


def _grid(setup: Setup, isl: float, osl: float, load: str, n: int) -> np.ndarray:
    if load == "concurrency":
        return np.unique(np.round(np.geomspace(1, 2048, n)))
    top = max(_max_rate(setup, m, isl, osl) for m in _modes(setup))
    return np.geomspace(top / 200, top, n)


def _log_ticks(ax) -> None:
    """Plain numbers on a log y axis; every minor tick labelled when the axis spans under a decade and a half."""
    _plain_log_ticks(ax.yaxis)
    lo, hi = ax.get_ylim()
    if hi / lo < 30:
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _title(setup: Setup, what: str, isl: float, osl: float) -> str:
    sc = setup.scenario()
    return (f"{what}\n{sc.model.name} on {sc.hardware.name}, {sc.weights} weights, {sc.kv} KV, "
            f"ISL {isl:,.0f}, OSL {osl:,.0f}, efficiency: {sc.efficiency.name}")


def load_sweep(setup: Setup, isl: float = 1024, osl: float = 1024, load: str = "concurrency",
               points=None) -> Figure:
    """TTFT and TPOT against load (requests in flight or requests/s), aggregated and disaggregated.

    Points past saturation (open loop) are left out; points whose KV cache does not fit
    are drawn hollow.
    """
    pts = _grid(setup, isl, osl, load, 15) if points is None else np.asarray(points, dtype=float)
    fig = Figure(figsize=(7, 6.5), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for mode, (color, marker) in _STYLE.items():
        c = serving_curve(setup, mode, isl, osl, load, pts)
        for ax, y in ((ax1, c.ttft_s), (ax2, c.tpot_s)):
            ax.plot(c.load, y * 1e3, color=color, marker=marker, ms=4, label=c.label)
            if (~c.fits).any():
                ax.plot(c.load[~c.fits], y[~c.fits] * 1e3, ls="none", marker=marker, ms=7, mfc="white",
                        color=color, label=f"{mode}: KV cache does not fit")
    ax1.set_ylabel("time to first token, TTFT (ms)")
    ax2.set_ylabel("time per output token, TPOT (ms)")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        _log_ticks(ax)
        ax.legend(fontsize=8, loc="upper left")
    _plain_log_ticks(ax2.xaxis)
    ax2.set_xlabel("concurrency (requests in flight)" if load == "concurrency"
                   else "request rate (requests/s, Poisson arrivals)")
    ax1.set_title(_title(setup, f"TTFT and TPOT against {load}", isl, osl), fontsize=9)
    return fig


def throughput_interactivity(setup: Setup, isl: float = 1024, osl: float = 1024, points=None) -> Figure:
    """Output tokens/s per chip against tokens/s per user, aggregated and disaggregated.

    Each curve sweeps the concurrency (annotated at a few points); up and to the right is
    better. Points whose KV cache does not fit are left out.
    """
    pts = np.unique(np.round(np.geomspace(1, 2048, 23))) if points is None else np.asarray(points, dtype=float)
    fig = Figure(figsize=(7, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for mode, (color, marker) in _STYLE.items():
        c = serving_curve(setup, mode, isl, osl, "concurrency", pts)
        ok = c.fits & np.isfinite(c.per_chip)
        ax.plot(c.per_user[ok], c.per_chip[ok], color=color, marker=marker, ms=4, label=c.label)
        below = mode == "disaggregated"
        for x, u, y in zip(c.load[ok], c.per_user[ok], c.per_chip[ok]):
            if x in (1, 16, 128) or x == c.load[ok][-1]:
                ax.annotate(f"N={x:g}", (u, y), textcoords="offset points", xytext=(4, -10 if below else 4),
                            fontsize=7, color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("interactivity (output tokens/s per user = 1/TPOT)")
    ax.set_ylabel("throughput (output tokens/s per chip)")
    ax.set_title(_title(setup, "Throughput per chip against interactivity (concurrency N swept)", isl, osl),
                 fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    return fig


#: Request-level figure kinds by the name the CLI uses -> the function that draws them
#: (see :data:`.kinds.SERVING_FIGURES`).
SERVING_KINDS = {kind: globals()[fn] for kind, (fn, _) in SERVING_FIGURES.items()}
