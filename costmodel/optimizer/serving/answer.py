"""The answer of one mode: its configuration, cost, binding constraint and shadow prices, or for an
infeasible one the fastest achievable figures and the chips it would need; and why the winner wins."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...symbolic import usd_per_joule
from .candidates import agg_frame, decode_frame, prefill_frame
from .evaluate import aggregated_table, decode_table, pair_table
from .exact import Deployment, decode_problem, objective_achieved, watts_of
from .exact import usd_per_hour as usd_per_hour_of
from .exhaustive import all_points
from .pairs import pairs_of
from .problem import MODE_NAMES, ServingProblem, on_chip, pool_usd_per_hour, with_budget
from .search import Found, solve_mode
from .solution import ServingSolution

__all__ = ["mode_answer", "why", "answer_value", "BUDGET_FACTOR", "MAX_BUDGET"]


def _ms(t_s: float) -> str:
    """A duration for a message: milliseconds below a second, seconds above (never exponent notation)."""
    return f"{t_s * 1e3:.3g} ms" if t_s < 1.0 else f"{t_s:,.3g} s" if t_s < 100 else f"{t_s:,.0f} s"

#: the budget tried, as a multiple of the given one, to say how many chips an infeasible problem needs
BUDGET_FACTOR = 8
#: and at most this many chips
MAX_BUDGET = 4096
_H = 0.01  # relative step of the target for the shadow prices


def _config(problem: ServingProblem, d: Deployment, s) -> dict[str, Any]:
    prec = decode_problem(problem, d).precisions[d.prec]
    spec = problem.specs[d.spec]
    spec_d = None if spec is None else {"draft": spec.draft if isinstance(spec.draft, str) else spec.draft.name,
                                         "length": spec.length, "accept": spec.acceptance}
    tp, pp, ep = d.split
    if d.mode == "agg":
        n = tp * pp * ep
        return {"tp": tp, "pp": pp, "ep": ep, "attention": d.attention, "batch": round(float(s.decode_batch), 2),
                "replicas": d.replicas, "chips": d.replicas * n, "weights": prec.weights, "kv": prec.kv,
                "chunk": d.chunk, "spec": spec_d}
    a, b, c = d.prefill_split
    return {"prefill": {"tp": a, "pp": b, "ep": c, "batch": d.prefill_batch, "replicas": d.prefill_replicas,
                        "chips": d.prefill_replicas * a * b * c, "weights": prec.weights, "kv": prec.kv},
            "decode": {"tp": tp, "pp": pp, "ep": ep, "batch": round(float(s.decode_batch), 2), "replicas": d.replicas,
                       "chips": d.replicas * tp * pp * ep, "weights": prec.weights, "kv": prec.kv},
            "chunk": None, "spec": spec_d,
            "prefill_hardware": d.prefill_hardware or problem.hardware.name,
            "decode_hardware": d.decode_hardware or problem.hardware.name}


def _binding(problem: ServingProblem, d: Deployment) -> str | None:
    """What sets the size of ``d``: the constraint that stops one replica from serving more (of the pool with
    more chips), or ``None`` when one replica of each pool serves the rate with room to spare."""
    f = d.figures
    R = problem.rate_per_s
    spare = f.get("goodput_per_s", f.get("d_goodput_per_s", 0.0)) > R * (1 + 1e-6)
    if d.mode == "disagg":
        spare = spare and f.get("prefill_goodput_per_s", 0.0) > R * (1 + 1e-6)
    if spare and d.replicas == 1 and d.prefill_replicas <= 1:
        return None
    if d.mode == "agg":
        for key, name in (("stop_tpot", "tpot"), ("stop_ttft", "ttft"), ("stop_memory", "memory")):
            if f.get(key):
                return name
        return "demand"
    n_p = d.prefill_replicas * int(np.prod(d.prefill_split))
    n_d = d.replicas * int(np.prod(d.split))
    if n_d >= n_p:
        return "memory" if f.get("d_stop_memory") else ("tpot" if problem.tpot_s is not None else "demand")
    return "ttft" if problem.ttft_s is not None else "demand"


def answer_value(problem: ServingProblem, usd_per_hour, watts):
    """The objective in the answer's unit: USD per million tokens (:attr:`ServingProblem.tokens_per_s`), or
    for ``objective="energy"`` joules per request."""
    value = problem.objective_value(usd_per_hour, watts)
    if problem.objective == "energy":
        return value / problem.rate_per_s
    return value / 3600.0 / problem.tokens_per_s * 1e6


def _continuous_cost(problem: ServingProblem, d: Deployment, ttft_s, tpot_s) -> float:
    """The objective of ``d``'s configuration with its replicas continuous (rate over goodput), its watts per
    chip as the tables give them at its replicas (:func:`answer_value`'s unit)."""
    R = problem.rate_per_s
    split = np.array([d.split])
    prec = np.array([d.prec])
    if d.mode == "agg":
        t = aggregated_table(problem, split, prec, np.array([d.chunk]), d.attention, d.spec, ttft_s=ttft_s,
                             tpot_s=tpot_s)
        n = R / t["goodput_per_s"][0] * np.prod(d.split)
        return float(answer_value(problem, n * problem.usd_per_chip_hour, n * t["watts"][0] / t["chips"][0]))
    on_dec = decode_problem(problem, d)
    on_pre = problem if d.prefill_hardware is None else on_chip(problem, d.prefill_hardware)
    dec = decode_table(on_dec, split, prec, d.spec, tpot_s=tpot_s)
    pre = prefill_frame(on_pre, {(*d.prefill_split, on_pre.precisions.index(on_dec.precisions[d.prec]))})
    i = int(np.flatnonzero(pre["prefill_batch"] == d.prefill_batch)[0])
    pre = {k: v[i:i + 1] for k, v in pre.items()}
    pair = pair_table(on_dec, pre, dec, pre["prefill_batch"], ttft_s=ttft_s,
                      prefill=None if d.decode_hardware is None else on_pre)
    n_p = R / pair["prefill_goodput_per_s"][0] * np.prod(d.prefill_split)
    n_d = R / dec["goodput_per_s"][0] * np.prod(d.split)
    usd = pool_usd_per_hour(n_p, on_pre.usd_per_chip_hour, n_d, on_dec.usd_per_chip_hour)
    return float(answer_value(problem, usd, (n_p + n_d) * pair["watts"][0] / pair["chips"][0]))


def _shadow_prices(problem: ServingProblem, d: Deployment) -> dict[str, float]:
    """d(objective)/d(target) in USD per Mtok (``objective="energy"``: joules per request) per ms, by a
    one-sided difference at ``d``'s configuration."""
    out = {"ttft": 0.0, "tpot": 0.0}
    with np.errstate(all="ignore"):
        base = _continuous_cost(problem, d, problem.ttft_s, problem.tpot_s)
        for name in ("ttft", "tpot"):
            target = getattr(problem, f"{name}_s")
            if target is None:
                continue
            looser = {"ttft_s": problem.ttft_s, "tpot_s": problem.tpot_s, f"{name}_s": target * (1 + _H)}
            v = (_continuous_cost(problem, d, **looser) - base) / (target * _H * 1e3)
            out[name] = float(v) if np.isfinite(v) else 0.0
    return out


def _fastest(problem: ServingProblem, mode: str) -> dict[str, Any] | None:
    """The fastest TTFT and TPOT the tables give at the demand within the budget (no targets), and the chips
    of each, or ``None`` when nothing fits or keeps up."""
    pts = all_points(problem)
    M = problem.max_chips
    if mode == "agg":
        f = agg_frame(problem, pts, ttft_s=None, tpot_s=None, rate_per_s=("spread", M))
        if not f:
            return None
        ok = np.flatnonzero(f["feasible"] & (f["replicas"] == 1))  # one replica's share keeps up
        if not len(ok):
            return None
        held = (M // f["chips_per_replica"]) * f["chips_per_replica"]
        i, j = ok[np.argmin(f["ttft_s"][ok])], ok[np.argmin(f["tpot_s"][ok])]
        return {"ttft_s": float(f["ttft_s"][i]), "ttft_chips": int(held[i]),
                "tpot_s": float(f["tpot_s"][j]), "tpot_chips": int(held[j])}
    if problem.searches_pairs:  # the fastest of each pair of chips, each figure the best over the pairs
        found = [f for a, b in pairs_of(problem)
                 if (f := _fastest_disagg(on_chip(problem, b), on_chip(problem, a), True)) is not None]
        if not found:
            return None
        i = min(range(len(found)), key=lambda k: found[k]["ttft_s"])
        j = min(range(len(found)), key=lambda k: found[k]["tpot_s"])
        return {"ttft_s": found[i]["ttft_s"], "ttft_chips": found[i]["ttft_chips"],
                "tpot_s": found[j]["tpot_s"], "tpot_chips": found[j]["tpot_chips"]}
    return _fastest_disagg(problem, problem, False)


def _fastest_disagg(problem: ServingProblem, on_pre: ServingProblem, two_chips: bool) -> dict[str, Any] | None:
    """:func:`_fastest` of the disaggregated mode, the decode pool on ``problem``'s chip and the prefill pool on
    ``on_pre``'s."""
    M = problem.max_chips
    pre = prefill_frame(on_pre, all_points(on_pre))
    pts = all_points(problem)
    dec0 = decode_frame(problem, pts, tpot_s=None)
    if not pre or not pre["fits"].any() or not dec0 or not dec0["feasible"].any():
        return None
    min_pre = int(pre["chips_per_replica"][pre["fits"]].min())
    dec_chips = dec0["replicas"] * dec0["chips_per_replica"]
    min_dec = float(dec_chips[dec0["feasible"]].min())
    if min_pre + min_dec > M:
        return None
    dec = decode_frame(problem, pts, tpot_s=None, rate_per_s=("spread", M - min_pre))
    ok = np.flatnonzero(dec["feasible"] & (dec["replicas"] == 1) & (dec["chips_per_replica"] <= M - min_pre))
    if not len(ok):
        return None
    j = ok[np.argmin(dec["tpot_s"][ok])]
    best_dec = {k: v[[int(np.argmin(np.where(dec0["feasible"], dec_chips, np.inf)))]] for k, v in dec0.items()}
    room = M - min_dec
    fit = np.flatnonzero(pre["fits"] & (pre["chips_per_replica"] <= room))
    p = {k: v[fit] for k, v in pre.items()}
    r_max = np.maximum(room // p["chips_per_replica"], 1)
    pair = pair_table(problem, p, best_dec, p["prefill_batch"], ttft_s=None, rate_per_s=problem.rate_per_s / r_max,
                      prefill=on_pre if two_chips else None)
    if not pair["feasible"].any():
        return None
    ttft = np.where(pair["feasible"], pair["ttft_s"], np.inf)
    i = int(np.argmin(ttft))
    return {"ttft_s": float(ttft[i]), "ttft_chips": int(r_max[i] * p["chips_per_replica"][i] + min_dec),
            "tpot_s": float(dec["tpot_s"][j]),
            "tpot_chips": int((M - min_pre) // dec["chips_per_replica"][j] * dec["chips_per_replica"][j] + min_pre)}


def _min_chips(problem: ServingProblem, mode: str, method: str) -> int | None:
    """The fewest chips that make ``mode`` feasible, if a budget of ``BUDGET_FACTOR`` times the given one
    does: the answer there is the cheapest, so its chips are the fewest (``None`` otherwise)."""
    bigger = with_budget(problem, min(problem.max_chips * BUDGET_FACTOR, MAX_BUDGET))
    if bigger.max_chips <= problem.max_chips:
        return None
    try:
        found = solve_mode(bigger, mode, method)
    except ConfigError:  # too many splits at this budget
        return None
    return None if found.deployment is None else int(found.deployment.chips)


def _describe(problem: ServingProblem, mode: str, c: dict, chips: int) -> str:
    """The deployment and its chips: ``... on 8 h100-sxm``, or for pools on two chips each pool's."""
    hw = problem.hardware.name
    if mode == "agg":
        return (f"{c['replicas']} x (tp={c['tp']} pp={c['pp']} ep={c['ep']}, {c['attention']}-sharded attention, "
                f"chunk {c['chunk']}) on {chips} {hw}")
    p, d = c["prefill"], c["decode"]
    pre = f"prefill {p['replicas']} x (tp={p['tp']} pp={p['pp']} ep={p['ep']}, {p['batch']} per prefill)"
    dec = f"decode {d['replicas']} x (tp={d['tp']} pp={d['pp']} ep={d['ep']})"
    if c["prefill_hardware"] == c["decode_hardware"]:
        return f"{pre} + {dec} on {chips} {c['decode_hardware']}"
    return f"{pre} on {p['chips']} {c['prefill_hardware']} + {dec} on {d['chips']} {c['decode_hardware']}"


def _chips_searched(problem: ServingProblem, mode: str) -> str:
    """The chips a mode searched: ``h100-sxm``, or for pairs ``chips (prefill on a or b, decode on c)``."""
    if mode == "agg" or not problem.searches_pairs:
        return problem.hardware.name
    return (f"chips (prefill on {' or '.join(problem.prefill_hardware)}, "
            f"decode on {' or '.join(problem.decode_hardware)})")


def mode_answer(problem: ServingProblem, mode: str, found: Found, method: str, space: int, t0: float
                ) -> ServingSolution:
    """``found`` as a :class:`ServingSolution` of one mode (feasible, or the fastest figures and chips needed)."""
    name = MODE_NAMES[mode]
    hw = _chips_searched(problem, mode)
    if found.deployment is None:
        fastest = _fastest(problem, mode)
        need = _min_chips(problem, mode, method)
        targets = " and ".join(f"{k.upper()} {_ms(v)}" for k, v in
                               (("ttft", problem.ttft_s), ("tpot", problem.tpot_s)) if v is not None) or "the demand"
        if need is not None:
            binding = "chips"
            msg = (f"{name}: no deployment serves {problem.rate_per_s:.4g} req/s within {targets} on "
                   f"{problem.max_chips} {hw}; it needs {need} chips")
        else:
            miss = [k for k in ("ttft", "tpot") if fastest and getattr(problem, f"{k}_s") is not None
                    and fastest[f"{k}_s"] > getattr(problem, f"{k}_s")]
            meets = bool(found.frame and found.frame.get("meets", found.frame["feasible"]).any())
            binding = miss[0] if miss else ("chips" if meets else "memory" if fastest is None else "demand")
            msg = (f"{name}: no deployment serves {problem.rate_per_s:.4g} req/s within {targets} on "
                   f"{problem.max_chips} {hw}")
            if meets:
                msg += f" (nor on {min(problem.max_chips * BUDGET_FACTOR, MAX_BUDGET)})"
        if fastest:
            msg += (f"; the fastest achievable at this rate is TTFT {_ms(fastest['ttft_s'])} "
                    f"({fastest['ttft_chips']} chips) and TPOT {_ms(fastest['tpot_s'])} "
                    f"({fastest['tpot_chips']} chips)")
        elif need is None and not meets:
            msg += "; nothing fits in memory and keeps up with the rate within the budget: allow more chips or " \
                   "lower precision"
        return ServingSolution(
            feasible=False, mode=None, config=None, usd_per_mtok_output=None, usd_per_mtok_input=None,
            usd_per_mtok=None, usd_per_hour=None, ttft_s=None, tpot_s=None, output_tokens_per_s_per_chip=None,
            chips=None, binding=binding, shadow_prices={"ttft": 0.0, "tpot": 0.0}, method=method,
            wall_time_s=time.perf_counter() - t0, space_size=space, fastest=fastest, min_chips_needed=need,
            message=msg + ".", objective=problem.objective, model=problem.model.name)
    d, s = found.deployment, found.prediction
    chips = d.chips
    watts = watts_of(s)
    usd_per_hour = usd_per_hour_of(problem, d)
    if problem.electricity.owned:  # the chips' price excludes power: the electricity is part of the cost
        usd_per_hour += watts * 3600.0 * usd_per_joule(problem.electricity.pue, problem.electricity.usd_per_kwh)
    out_mtok_h = problem.rate_per_s * problem.requests.output_tokens * 3600 / 1e6
    in_mtok_h = problem.rate_per_s * problem.requests.input_tokens * 3600 / 1e6
    cfg = _config(problem, d, s)
    binding = _binding(problem, d)
    reason = (f"the {binding} constraint binds" if binding else
              f"this is the smallest deployment, and it meets the targets with headroom (up to "
              f"{_headroom(d):.3g} req/s at them)")
    energy = "" if problem.objective != "energy" else f" and {watts / problem.rate_per_s:.4g} J per request"
    msg = (f"{name}: {_describe(problem, mode, cfg, chips)} at ${usd_per_hour / out_mtok_h:.4g} per million "
           f"output tokens{energy}, {_figure(s, 'ttft', problem.ttft_percentile)}, "
           f"{_figure(s, 'tpot', problem.tpot_percentile)}; {reason}")
    return ServingSolution(
        feasible=True, mode=name, config=cfg, usd_per_mtok_output=usd_per_hour / out_mtok_h,
        usd_per_mtok_input=usd_per_hour / in_mtok_h,
        usd_per_mtok=float(usd_per_hour / 3600.0 / problem.tokens_per_s * 1e6),
        watts=watts, joules_per_request=None if watts is None else watts / problem.rate_per_s,
        usd_per_hour=usd_per_hour, ttft_s=float(s.ttft_s), tpot_s=float(s.tpot_s),
        output_tokens_per_s_per_chip=float(s.output_tokens_per_s_per_chip), chips=int(chips), binding=binding,
        shadow_prices=_shadow_prices(problem, d), method=method, wall_time_s=time.perf_counter() - t0,
        space_size=space, message=msg + ".", serving=s.to_dict(), objective=problem.objective,
        model=problem.model.name)


def _headroom(d: Deployment) -> float:
    """Requests/s the deployment's tables say it sustains within the targets (the least of its pools)."""
    f = d.figures
    rates = [f.get("goodput_per_s", f.get("d_goodput_per_s"))] + ([f.get("prefill_goodput_per_s")] if d.mode == "disagg"
                                                                   else [])
    return min(float(r) * (d.replicas if d.mode == "agg" else 1) for r in rates if r is not None)


def _figure(s, metric: str, q: int | None) -> str:
    """``"TTFT 212 ms"``, or with a percentile target ``"TTFT P99 640 ms (mean 212 ms)"``."""
    if q is None:
        return f"{metric.upper()} {_ms(s.percentile(metric, None))}"
    return f"{metric.upper()} P{q} {_ms(s.percentile(metric, q))} (mean {_ms(s.percentile(metric, None))})"


def tie_break(problem: ServingProblem, a: ServingSolution) -> tuple[float, ...]:
    """How answers rank: by the objective (cost; ``objective="energy"``: joules per request, then cost), then
    (a tie) by mean end-to-end latency ``TTFT + (O - 1)·TPOT``, so that a mode with several times the TTFT does
    not win a tie on a slightly lower TPOT."""
    first = (a.joules_per_request,) if problem.objective == "energy" else ()
    return *first, a.usd_per_mtok, a.ttft_s + max(problem.requests.output_tokens - 1.0, 0.0) * a.tpot_s


def why(problem: ServingProblem, answers: dict[str, ServingSolution]) -> str:
    """Every mode's answer in a sentence, then the winner, by how much, and what the loser would need."""
    ok = {m: a for m, a in answers.items() if a.feasible}
    parts = [a.message.rstrip(".") for a in answers.values()]
    if len(ok) == 2 and problem.objective == "energy":
        win, lose = sorted(ok.values(), key=lambda a: tie_break(problem, a))
        if win.joules_per_request == lose.joules_per_request:
            return ("; ".join(parts) + f". Both modes use the same energy; {win.mode} costs less or has the lower "
                    "latency.")
        saving = 1 - win.joules_per_request / lose.joules_per_request
        return ("; ".join(parts) + f". {win.mode.capitalize()} wins, {saving:.1%} less energy per request: "
                f"{lose.mode} would need to draw {(lose.watts - win.watts) / 1e3:.3g} kW less to match.")
    if len(ok) == 2:
        win, lose = sorted(ok.values(), key=lambda a: tie_break(problem, a))
        if win.usd_per_hour == lose.usd_per_hour:
            return "; ".join(parts) + f". Both modes cost the same; {win.mode} has the lower end-to-end latency."
        saving = 1 - win.usd_per_mtok / lose.usd_per_mtok
        price = lose.shadow_prices.get(lose.binding, 0.0) if lose.binding in ("ttft", "tpot") else 0.0
        extra = (f"; each ms of {lose.binding.upper()} target is worth ${-price:.3g}/Mtok to it" if price < 0 else "")
        limit = (f"its {lose.binding} constraint binds" if lose.binding else
                 "it is already its smallest deployment, with headroom")
        if not math.isclose(win.usd_per_hour / win.chips, lose.usd_per_hour / lose.chips, rel_tol=1e-9):
            # chips at different prices (a pair of chips): fewer chips is not what the loser needs
            more = lose.usd_per_hour - win.usd_per_hour
            return ("; ".join(parts) + f". {win.mode.capitalize()} wins, {saving:.1%} cheaper: {lose.mode} would "
                    f"need to cost ${more:.4g} less per hour to match ({limit}{extra}).")
        return ("; ".join(parts) + f". {win.mode.capitalize()} wins, {saving:.1%} cheaper: {lose.mode} would need "
                f"{lose.chips - win.chips} fewer chips to match ({limit}{extra}).")
    if len(ok) == 1:
        (win,) = ok.values()
        return "; ".join(parts) + f". {win.mode.capitalize()} is the only mode that meets the targets."
    return "; ".join(parts) + "."


