"""``max_rate``: the highest request rate a chip budget serves within TTFT and TPOT targets.

The inverse of :func:`~costmodel.optimizer.serving.optimize_serving`: given ``max_chips`` and the
targets, the largest ``R`` at which the serving problem is feasible, in each mode, with the
deployment that serves it (the cheapest at that rate). Feasibility is monotone in the rate (a
higher rate never needs fewer chips), so the rate is found by bisection on ``log R`` with the
serving optimiser's own feasibility test at each trial rate (docs/optimizer.md, "The highest rate a
budget serves"):

1. bracket: from a starting rate, multiply by :data:`FIRST_STEP`, then its square, its fourth power
   and so on until infeasible (or divide until feasible, down to :data:`RATE_FLOOR`: a problem
   infeasible there is infeasible at any rate);
2. bisect at the geometric mean until ``hi / lo <= 1 + rtol``; ``lo`` (feasible) is the answer.

The starting rate is an estimate from the serving tables (:func:`estimate`): per candidate split the
per-replica goodput within the targets times the replicas the budget allows (aggregated), or the
best split of the chips between a prefill pool and a decode pool (disaggregated); the bisection
brackets it, so a poor estimate costs calls, never the answer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...config import DEFAULT_EFFICIENCY, Efficiency, Electricity
from ...errors import ConfigError, CostModelError, keywords_checked
from ...limits import check_number
from ...serving.workload import Requests
from ...symbolic import Rules
from .answer import _ms
from .api import METHODS, optimize_serving
from .problem import MODE_NAMES, ServingProblem, make_serving_problem
from .search import solve_mode
from .solution import _finite

__all__ = ["max_rate", "MaxRateAnswer", "ModeRate", "RATE_FLOOR", "RTOL", "estimate"]

#: the vanishing rate (requests/s): a mode infeasible here is infeasible at every rate
RATE_FLOOR = 1e-6
#: the largest rate tried (requests/s; the rate's admissible range ends at 1e9)
RATE_CEILING = 1e8
#: relative tolerance of the answer: the rate found is feasible and ``(1 + RTOL)`` times it is not
RTOL = 1e-3
#: factor of the first bracketing step from the starting rate (each later step squares it)
FIRST_STEP = 1.01


@dataclass(frozen=True)
class ModeRate:
    """The highest rate of one mode (SI units).

    Attributes:
        mode: ``"aggregated"`` or ``"disaggregated"``.
        feasible: some deployment meets the targets within the budget at a vanishing rate.
        rate_per_s: the highest request rate served (0 when infeasible).
        output_tokens_per_s: ``rate_per_s`` times the output tokens per request.
        config: the deployment at that rate (the serving optimiser's config dict), or ``None``.
        chips: its chips (both pools).
        ttft_s, tpot_s: its mean TTFT (queueing included) and TPOT at that rate, as ``cm.serve`` gives them.
        usd_per_mtok_output: its price (its chips', with the electricity of owned chips) over the output tokens it
            serves at that rate.
        infeasible_above_per_s: the lowest rate found infeasible (``rate_per_s`` times at most ``1 + rtol``),
            or ``None`` when the ceiling was reached.
        fastest: infeasible: the fastest TTFT and TPOT achievable at a vanishing rate within the budget, and
            the chips of each (as the serving optimiser reports them).
        message: the answer in words.
        evaluations: feasibility tests the search ran.
    """

    mode: str
    feasible: bool
    rate_per_s: float
    output_tokens_per_s: float
    config: dict[str, Any] | None
    chips: int | None
    ttft_s: float | None
    tpot_s: float | None
    usd_per_mtok_output: float | None
    infeasible_above_per_s: float | None
    fastest: dict[str, Any] | None
    message: str
    evaluations: int
    serving: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _finite({k: getattr(self, k) for k in (
            "mode", "feasible", "rate_per_s", "output_tokens_per_s", "config", "chips", "ttft_s", "tpot_s",
            "usd_per_mtok_output", "infeasible_above_per_s", "fastest", "message", "evaluations")})


@dataclass(frozen=True)
class MaxRateAnswer:
    """The highest request rate ``max_chips`` chips serve within the targets, each mode side by side.

    Attributes:
        feasible: some mode serves a positive rate.
        mode: the mode with the highest rate (``None`` when infeasible).
        rate_per_s, output_tokens_per_s, config, chips, ttft_s, tpot_s: the best mode's figures (rate 0 and
            ``None`` when infeasible).
        modes: ``"aggregated"``/``"disaggregated"`` -> :class:`ModeRate`.
        max_chips: the budget; ttft_s_target, tpot_s_target: the targets.
        rtol: the relative tolerance of the rates.
        method: the serving optimiser's method at each trial rate.
        message: the answer in words.
        wall_time_s: seconds the search took.
        model, hardware: names.
    """

    feasible: bool
    mode: str | None
    modes: dict[str, ModeRate]
    max_chips: int
    ttft_s_target: float | None
    tpot_s_target: float | None
    rtol: float
    method: str
    message: str
    wall_time_s: float
    model: str
    hardware: str

    def _best(self, key: str, none: Any = None) -> Any:
        """The best mode's ``key`` (``none`` when no mode serves a rate)."""
        return none if self.mode is None else getattr(self.modes[self.mode], key)

    rate_per_s = property(lambda self: self._best("rate_per_s", 0.0))
    output_tokens_per_s = property(lambda self: self._best("output_tokens_per_s", 0.0))
    config = property(lambda self: self._best("config"))
    chips = property(lambda self: self._best("chips"))
    ttft_s = property(lambda self: self._best("ttft_s"))
    tpot_s = property(lambda self: self._best("tpot_s"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (no NaN or infinity at any depth)."""
        d = {k: getattr(self, k) for k in ("feasible", "mode", "rate_per_s", "output_tokens_per_s", "config",
                                            "chips", "ttft_s", "tpot_s", "max_chips", "ttft_s_target",
                                            "tpot_s_target", "rtol", "method", "message", "wall_time_s", "model",
                                            "hardware")}
        d["modes"] = {k: v.to_dict() for k, v in self.modes.items()}
        return _finite(d)


@keywords_checked
def max_rate(
    model, hardware, requests: Requests = Requests(), *, max_chips: int, ttft_s: float | None = None,
    tpot_s: float | None = None, mode: str = "auto", weights: str | tuple[str, ...] | None = "bf16",
    kv: str | tuple[str, ...] | None = None, spec=None, efficiency: Efficiency | str = DEFAULT_EFFICIENCY,
    usd_per_chip_hour: float | None = None, method: str = "gradient", scheduler=None,
    ttft_percentile: int | None = None, tpot_percentile: int | None = None,
    prefill_hardware: str | list[str] | None = None, decode_hardware: str | list[str] | None = None,
    rtol: float = RTOL, start_rate_per_s: float | None = None, electricity: Electricity | None = None,
    step: str = Rules.step,
) -> MaxRateAnswer:
    """The highest request rate ``max_chips`` chips serve within TTFT and TPOT targets, per mode.

    The inverse of :func:`costmodel.optimize_serving`: bisection on the rate (log scale) with the serving
    optimiser's feasibility at ``max_chips`` (a higher rate never needs fewer chips), to a relative
    tolerance ``rtol``: the rate returned is feasible and ``(1 + rtol)`` times it is not.

    Args:
        model, hardware, requests: as :func:`costmodel.optimize_serving`.
        max_chips: the chip budget of the whole deployment (all replicas, both pools).
        ttft_s, tpot_s: targets (``None``: no target; the rate is then bounded by throughput alone).
        mode: ``"agg"``, ``"disagg"`` or ``"auto"`` (both, each reported).
        weights, kv, spec, efficiency: as :func:`costmodel.optimize_serving`.
        usd_per_chip_hour, method, scheduler: as :func:`costmodel.optimize_serving`.
        ttft_percentile, tpot_percentile: as :func:`costmodel.optimize_serving`.
        prefill_hardware, decode_hardware: as :func:`costmodel.optimize_serving` (pools on a pair of chips).
        rtol: relative tolerance of the rate (default 0.1%).
        start_rate_per_s: the first rate tried (default: an estimate from the serving tables).
        electricity: as :func:`costmodel.optimize_serving` (the deployment reported at the rate found is the
            cheapest there, the electricity of owned chips included).
        step: as :func:`costmodel.optimize_serving` (``"roofline"`` or ``"operators"``).

    Returns:
        A :class:`MaxRateAnswer`; a budget that serves nothing within the targets even at a vanishing rate is
        an answer too (rate 0, with the fastest TTFT and TPOT achievable and why).

    Raises:
        CostModelError: bad input.

    Example:
        >>> import costmodel as cm
        >>> a = cm.max_rate("llama-3-8b", "h100-sxm", cm.Requests(1024, 256), max_chips=2, ttft_s=0.5,
        ...                 tpot_s=0.05, mode="agg")
        >>> a.feasible, a.chips <= 2, a.tpot_s <= 0.05
        (True, True, True)
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r:.80}")
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 1e-6 <= rtol <= 0.5:
        raise ConfigError(f"rtol must be a number in [1e-6, 0.5], got {rtol!r:.80}")
    if start_rate_per_s is not None:
        check_number("rate_per_s", start_rate_per_s, label="start rate (requests/s)")
    t0 = time.perf_counter()
    kw = dict(ttft_s=ttft_s, tpot_s=tpot_s, max_chips=max_chips, weights=weights, kv=kv, spec=spec,
              efficiency=efficiency, usd_per_chip_hour=usd_per_chip_hour, scheduler=scheduler,
              ttft_percentile=ttft_percentile, tpot_percentile=tpot_percentile,
              prefill_hardware=prefill_hardware, decode_hardware=decode_hardware, electricity=electricity,
              step=step)
    base = make_serving_problem(model, hardware, requests, rate_per_s=1.0, mode=mode, **kw)
    modes = {}
    for m in base.modes:
        start = start_rate_per_s if start_rate_per_s is not None else estimate(base, m)
        modes[MODE_NAMES[m]] = _mode_rate(model, hardware, requests, kw, base, m, method, rtol, start)
    ok = [a for a in modes.values() if a.feasible]
    if ok:
        win = max(ok, key=lambda a: (a.rate_per_s, -(a.chips or 0), -(a.ttft_s or 0.0)))
    targets = _targets(base)
    hw = base.hardware.name
    parts = [a.message for a in modes.values()]
    if len(ok) == 2:
        lose = min(ok, key=lambda a: a is win)
        parts.append(f"{win.mode.capitalize()} serves the most, "
                     f"{win.rate_per_s / lose.rate_per_s - 1:.1%} more than {lose.mode}"
                     if win.rate_per_s > lose.rate_per_s * (1 + rtol) else
                     f"Both modes serve the same rate within the tolerance; {win.mode} is reported")
    elif len(ok) == 1:
        parts.append(f"{win.mode.capitalize()} is the only mode that meets the targets")
    message = ". ".join(p.rstrip(".") for p in parts) + "."
    if not ok:
        message = f"no deployment meets {targets} on {base.max_chips} {hw} at any rate: " + message
    return MaxRateAnswer(
        feasible=bool(ok), mode=win.mode if ok else None, modes=modes, max_chips=base.max_chips, ttft_s_target=base.ttft_s, tpot_s_target=base.tpot_s, rtol=float(rtol),
        method=method, message=message, wall_time_s=time.perf_counter() - t0, model=base.model.name, hardware=hw)


def _targets(problem: ServingProblem) -> str:
    def one(name, v, q):
        return f"{name}{'' if q is None else f' P{q}'} {_ms(v)}"

    return " and ".join(one(k.upper(), v, q) for k, v, q in
                        (("ttft", problem.ttft_s, problem.ttft_percentile),
                         ("tpot", problem.tpot_s, problem.tpot_percentile)) if v is not None) or "no latency target"


def _mode_rate(model, hardware, requests, kw: dict, base: ServingProblem, mode: str, method: str, rtol: float,
               start: float) -> ModeRate:
    """Bracket and bisect the highest feasible rate of one mode."""
    name = MODE_NAMES[mode]
    calls = 0

    def feasible(r: float) -> bool:
        # the serving optimiser's feasibility of this mode at rate r: a confirmed deployment exists
        nonlocal calls
        calls += 1
        p = make_serving_problem(model, hardware, requests, rate_per_s=r, mode=mode, **kw)
        try:
            return solve_mode(p, mode, method).deployment is not None
        except ConfigError:
            raise
        except CostModelError:
            return False

    start = min(max(float(start), RATE_FLOOR), RATE_CEILING)
    lo = hi = None
    step = FIRST_STEP  # each bracketing step squares the factor: the estimate is usually close
    if feasible(start):
        lo = start
        while lo < RATE_CEILING:
            r = min(lo * step, RATE_CEILING)
            if feasible(r):
                lo = r
            else:
                hi = r
                break
            step *= step
    else:
        hi = start
        while hi > RATE_FLOOR:
            r = max(hi / step, RATE_FLOOR)
            if feasible(r):
                lo = r
                break
            hi = r
            step *= step
    if lo is None:  # nothing at a vanishing rate: the serving optimiser's account of it
        s = optimize_serving(model, hardware, requests, rate_per_s=RATE_FLOOR, mode=mode, method=method, **kw)
        a = s.modes[name]
        return ModeRate(mode=name, feasible=False, rate_per_s=0.0, output_tokens_per_s=0.0, config=None, chips=None,
                        ttft_s=None, tpot_s=None, usd_per_mtok_output=None, infeasible_above_per_s=None,
                        fastest=a.fastest, message=f"{name}: serves no rate within {_targets(base)} on "
                        f"{base.max_chips} {base.hardware.name}: " + a.message.split(": ", 1)[-1].rstrip("."),
                        evaluations=calls + 1)
    while hi is not None and hi / lo > 1 + rtol:
        mid = math.sqrt(lo * hi)
        if feasible(mid):
            lo = mid
        else:
            hi = mid
    s = optimize_serving(model, hardware, requests, rate_per_s=lo, mode=mode, method=method, **kw)
    a = s.modes[name]
    if not a.feasible:  # cannot happen: the same test at the same rate (kept here against a silent mismatch)
        raise CostModelError(f"{name}: the rate {lo:.6g} req/s tested feasible but the serving optimiser refuses it")
    out = lo * base.requests.output_tokens
    limit = "" if hi is not None else f" (the ceiling of {RATE_CEILING:.3g} req/s tried)"
    msg = (f"{name}: up to {lo:.4g} req/s ({out:,.0f} output tok/s) within {_targets(base)} on {base.max_chips} "
           f"{base.hardware.name}{limit}, by {_describe(a.config, a.chips)}: TTFT {_ms(a.ttft_s)}, "
           f"TPOT {_ms(a.tpot_s)}")
    return ModeRate(mode=name, feasible=True, rate_per_s=float(lo), output_tokens_per_s=float(out), config=a.config,
                    chips=a.chips, ttft_s=a.ttft_s, tpot_s=a.tpot_s, usd_per_mtok_output=a.usd_per_mtok_output,
                    infeasible_above_per_s=None if hi is None else float(hi), fastest=None, message=msg,
                    evaluations=calls + 1, serving=a.serving)


def _describe(c: dict, chips: int) -> str:
    if "prefill" in c:
        p, d = c["prefill"], c["decode"]
        return (f"prefill {p['replicas']} x tp{p['tp']} pp{p['pp']} ep{p['ep']} + decode {d['replicas']} x "
                f"tp{d['tp']} pp{d['pp']} ep{d['ep']} ({chips} chips)")
    return f"{c['replicas']} x tp{c['tp']} pp{c['pp']} ep{c['ep']} ({chips} chips)"


def estimate(problem: ServingProblem, mode: str) -> float:
    """A starting rate from the serving tables (requests/s): the aggregated mode's best per-replica goodput
    within the targets times the replicas the budget holds; the disaggregated mode's best split of the budget
    between a prefill and a decode pool (each pool's goodput times its replicas, the smaller of the two).
    Only a start for the bisection (1 req/s when the tables give nothing)."""
    try:
        with np.errstate(all="ignore"):
            r = _agg_estimate(problem) if mode == "agg" else _disagg_estimate(problem)
    except CostModelError:
        r = None
    return float(r) if r is not None and np.isfinite(r) and r > 0 else 1.0


def _agg_estimate(problem: ServingProblem) -> float | None:
    from .candidates import agg_frame
    from .exhaustive import all_points

    f = agg_frame(problem, all_points(problem), rate_per_s=None)
    if not f:
        return None
    meets = f.get("meets", f["feasible"])
    g = np.where(meets & np.isfinite(f["goodput_per_s"]), f["goodput_per_s"], 0.0)
    n = f["chips_per_replica"]
    return float(np.max(g * (problem.max_chips // n)))


def _disagg_estimate(problem: ServingProblem) -> float | None:
    from .candidates import decode_frame, prefill_frame
    from .evaluate import pair_table
    from .exhaustive import all_points

    if problem.searches_pairs:
        return None
    pts = all_points(problem)
    dec = decode_frame(problem, pts)
    pre = prefill_frame(problem, pts)
    if not dec or not pre:
        return None
    ok = dec.get("meets", dec["feasible"]) & np.isfinite(dec["goodput_per_s"])
    if not ok.any():
        return None
    i = np.flatnonzero(ok)[np.argmax((dec["goodput_per_s"] / dec["chips_per_replica"])[ok])]
    best = {k: v[[i]] for k, v in dec.items()}
    fit = np.flatnonzero(pre["fits"])
    if not len(fit):
        return None
    p = {k: v[fit] for k, v in pre.items()}
    pair = pair_table(problem, p, {k: np.repeat(v, len(fit)) for k, v in best.items()}, p["prefill_batch"])
    gp = np.where(np.isfinite(pair["prefill_goodput_per_s"]), pair["prefill_goodput_per_s"], 0.0)
    gd = np.where(ok, dec["goodput_per_s"], 0.0)
    M = problem.max_chips
    # the best goodput of each replica size in each pool, then every split of the budget between the pools
    pre_best = _best_per_size(p["chips_per_replica"], gp)
    dec_best = _best_per_size(dec["chips_per_replica"], gd)
    best_rate = 0.0
    for a, g_p in pre_best.items():
        n_p = np.arange(1, M // a + 1)
        for b, g_d in dec_best.items():
            n_d = (M - n_p * a) // b
            best_rate = max(best_rate, float(np.max(np.minimum(n_p * g_p, n_d * g_d), initial=0.0)))
    return best_rate or None


def _best_per_size(chips: np.ndarray, goodput: np.ndarray) -> dict[int, float]:
    out: dict[int, float] = {}
    for n, g in zip(chips.astype(int), goodput):
        if g > 0:
            out[int(n)] = max(out.get(int(n), 0.0), float(g))
    return out
