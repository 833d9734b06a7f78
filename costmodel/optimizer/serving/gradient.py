r"""The gradient path: the decode optimiser's relaxation for starting splits, then a local search.

The serving problem is relaxed to the decode problem of :mod:`costmodel.optimizer.gradient`:
decoding sequences at the mean context ``S̄ = I + O/2`` within the TPOT target at the demand
``R·O`` output tokens/s, with TTFT as one prompt's prefill and a step, in log variables
``(log B, log tp, log pp, log ep)``, solved by the augmented Lagrangian with optax for every
precision. It leaves out the prompts' chunks in the decode steps and their queue, so it is a
relaxation: it cannot cost more than the serving problem. Its optimum is rounded to the split lattice
(:func:`costmodel.optimizer.search.round_to_lattice`) and a hill climb with the vectorised
deployment model (:mod:`.evaluate`) moves to the best neighbouring split
(:func:`costmodel.optimizer.search._neighbours`: one lattice step in any combination, every value
along each axis, chip exchanges between axes, every precision; those of the three best points seen)
while that lowers the objective (the chips' USD per hour, or the watts:
:meth:`~.problem.ServingProblem.objective_value`), and across up to ``PLATEAU_STEPS`` steps that only
match it (chip counts tie across neighbouring splits):

* aggregated: a split scores the lowest objective over its attention shardings, chunk budgets and
  speculation options;
* disaggregated: the decode pool climbs on its own chips (its TPOT does not depend on the prefill
  pool), then the prefill pool on the chips of both pools with the best decode pool of its
  precision, from the relaxed splits, the widest tensor-parallel split of one scale-up domain (a
  prompt's prefill is a compute-bound step that wants chips, not memory) and the best decode pools'
  splits; the pairs of the best visited splits of each
  pool are evaluated together (the KV hand-over couples them); over pairs of chips, the decode pool
  climbs once on each decode chip and the prefill pool once for each pair (:mod:`.pairs`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..gradient import relaxed_solve
from ..problem import make_problem
from ..search import MAX_CLIMB_STEPS, _neighbours, round_to_lattice
from .candidates import Frame, _concat, agg_frame, decode_frame, disagg_frame, prefill_frame, score
from .problem import ServingProblem

__all__ = ["gradient_frame", "relaxed_starts", "forget_relaxations", "decode_climb", "best_decode", "prefill_climb",
           "paired"]

#: best visited splits of each pool paired at the end (disaggregated)
PAIR_TOP = 6
#: points whose neighbourhoods the climb visits at each step (a beam: cost is nearly flat across splits, and
#: the relaxation, which leaves the prompts out, can start far from the best split for long prompts)
BEAM = 3
#: climb steps in a row that only match the best score before the climb stops
PLATEAU_STEPS = 2


def relaxed_starts(problem: ServingProblem):
    """The decode relaxation's problem and its optima rounded to the split lattice (solved once per problem:
    both modes, and every pair of chips that names the problem's chip, start from it)."""
    kept = _LAST.get(id(problem))
    if kept is not None and kept[0] is problem:
        return kept[1]
    value = _relaxed_starts(problem)
    if len(_LAST) >= _KEEP:
        _LAST.pop(next(iter(_LAST)))
    _LAST[id(problem)] = (problem, value)
    return value


#: the relaxations kept (one per chip of a pair search, and a few problems besides)
_KEEP = 16
_LAST: dict = {}


#: the relaxation is solved at the demand rounded to this fraction of an octave: it only gives the climb its
#: starting points, so problems a few percent apart in rate (the trial rates of ``max_rate``) share one solve
DEMAND_STEPS_PER_OCTAVE = 16


def _relaxed_starts(problem: ServingProblem):
    r = problem.requests
    weights, kv = problem.precision_args
    steps = round(DEMAND_STEPS_PER_OCTAVE * math.log2(problem.rate_per_s * r.output_tokens))
    key = (problem.model, problem.hardware, r.input_tokens, r.output_tokens, r.prefill_tokens, problem.tpot_s,
           problem.ttft_s, problem.max_chips, weights, kv, problem.usd_per_chip_hour, problem.efficiency, steps,
           problem.rules())
    try:
        return _relaxed_at(*key)
    except TypeError:  # something unhashable (e.g. a custom spec holding a list): solved without keeping it
        return _relaxed_at.__wrapped__(*key)


def forget_relaxations() -> None:
    """Drop the kept relaxations (:func:`relaxed_starts`)."""
    _relaxed_at.cache_clear()
    _LAST.clear()


@functools.lru_cache(maxsize=64)
def _relaxed_at(model, hardware, input_tokens, output_tokens, prefill_tokens, tpot_s, ttft_s, max_chips, weights,
                kv, usd_per_chip_hour, efficiency, steps, rules):
    """:func:`relaxed_starts` at the demand ``2^(steps/DEMAND_STEPS_PER_OCTAVE)`` output tokens/s."""
    dp = make_problem(model, hardware, context=input_tokens + output_tokens / 2, prompt=prefill_tokens,
                      tpot_s=tpot_s or 1e3, ttft_s=ttft_s, max_chips=max_chips,
                      demand_tokens_per_s=2.0 ** (steps / DEMAND_STEPS_PER_OCTAVE), weights=weights, kv=kv,
                      usd_per_chip_hour=usd_per_chip_hour, efficiency=efficiency, rules=rules)
    cost = relaxed_solve(dp, "cost")
    return dp, round_to_lattice(dp, cost.u, cost.prec, max_chips)


def _widest(problem: ServingProblem) -> set[tuple[int, ...]]:
    """The widest tensor-parallel split within one scale-up domain and the budget, in every precision."""
    cap = min(problem.max_chips, problem.hardware.scale_up_domain_chips)
    tp = max([t for t in problem.degrees["tp"] if t <= cap] or [1])
    return {(tp, 1, 1, p) for p in range(len(problem.precisions))}


def _per_point(frame: Frame, points: list, keys=("tp", "pp", "ep", "prec")) -> np.ndarray:
    """The best score of each point over its rows in ``frame``."""
    s = score(frame)
    best: dict[tuple, float] = {}
    if frame:
        for row, v in zip(zip(*(frame[k].astype(int) for k in keys)), s):
            best[row] = min(best.get(row, np.inf), float(v))
    return np.array([best.get(tuple(p), np.inf) for p in points])


def _climb(dp, start: set, score_of, budget: int) -> tuple[dict, list[Frame]]:
    """Hill climb over points from ``start``, moving to the neighbours of the ``BEAM`` best points seen while
    that lowers the best score, and across up to ``PLATEAU_STEPS`` steps that only match it (the score
    counts chips, so neighbouring splits often tie: the newest of equal points lead, so the climb walks
    the plateau); returns every visited point's score and the evaluated frames."""
    seen: dict[tuple, tuple[float, int]] = {}
    frames: list[Frame] = []
    frontier = sorted(start)
    best_score, stalled = np.inf, 0
    for step in range(MAX_CLIMB_STEPS):
        frontier = [p for p in frontier if p not in seen]
        if not frontier:
            break
        scores, frame = score_of(frontier)
        frames.append(frame)
        seen.update((p, (float(v), -step)) for p, v in zip(frontier, scores))
        low = float(np.min(scores))
        if low > best_score or (low == best_score and (stalled := stalled + 1) > PLATEAU_STEPS) or \
                not np.isfinite(low):
            break
        if low < best_score:
            best_score, stalled = low, 0
        leaders = sorted(seen, key=seen.get)[:BEAM]
        frontier = sorted(set().union(*(_neighbours(dp, p, budget) for p in leaders)))
    return {p: v for p, (v, _) in seen.items()}, frames


def gradient_frame(problem: ServingProblem, mode: str) -> Frame:
    """Candidates of ``mode`` visited by the gradient path, evaluated by the tables."""
    if mode == "disagg" and problem.searches_pairs:
        from .pairs import gradient_pairs

        return gradient_pairs(problem)
    if mode == "disagg":
        dec_seen, dec = decode_climb(problem)
        best_dec = best_decode(dec)
        if best_dec is None:
            return {}
        pre_seen, pre = prefill_climb(problem, problem, best_dec)
        return paired(problem, problem, pre_seen, pre, dec_seen, dec)
    dp, cost_pts = relaxed_starts(problem)

    def score_agg(pts):
        f = agg_frame(problem, pts)
        return _per_point(f, pts), f

    _, frames = _climb(dp, cost_pts, score_agg, problem.max_chips)
    return _concat(frames)


def decode_climb(problem: ServingProblem) -> tuple[dict, Frame]:
    """The decode pool's climb on its own chips (its TPOT does not depend on the prefill pool): every visited
    point's score and the evaluated candidates."""
    dp, cost_pts = relaxed_starts(problem)

    def score_dec(pts):
        f = decode_frame(problem, pts)
        if f:
            f["chips"] = f["replicas"] * f["chips_per_replica"]
            f["meets"] = f["feasible"].copy()
            f["feasible"] = f["feasible"] & (f["chips"] <= problem.max_chips)
        return _per_point(f, pts), f

    dec_seen, dec_frames = _climb(dp, cost_pts, score_dec, problem.max_chips)
    return dec_seen, _concat(dec_frames)


def best_decode(dec: Frame) -> Frame | None:
    """The feasible decode candidate of the lowest objective (the fewest chips, or watts) in each precision
    (the first of them), one row per precision, or ``None``: a prefill split is scored with the decode pool of
    its own precision."""
    if not dec or not dec["feasible"].any():
        return None
    rows = []
    for p in np.unique(dec["prec"][dec["feasible"]]):
        ok = dec["feasible"] & (dec["prec"] == p)
        rows.append(int(np.flatnonzero(ok & (dec["objective"] <= dec["objective"][ok].min()))[0]))
    return {k: v[rows] for k, v in dec.items()}


def prefill_climb(problem: ServingProblem, pre_problem: ServingProblem, best_dec: Frame, *, pair: bool = False,
                  evaluate=None) -> tuple[dict, Frame]:
    """The prefill pool's climb on ``pre_problem``'s chip, each split scored by the objective of the
    deployment it makes with ``best_dec``, the best decode pool of ``problem``'s chip in its
    precision; from the relaxed splits, the widest tensor-parallel split of one scale-up domain (a prompt's
    prefill is a compute-bound step that wants chips, not memory) and the best decode pools' splits.
    ``evaluate(points)``: the prefill candidates of ``points`` (default :func:`.candidates.prefill_frame`; a
    pair of chips gives them a ``pair_prec`` column, the precision as the decode chip counts it)."""
    dp, cost_pts = relaxed_starts(pre_problem)
    evaluate = evaluate or (lambda pts: prefill_frame(pre_problem, pts))

    def score_pre(pts):
        f = evaluate(pts)
        if not f:
            return np.full(len(pts), np.inf), f
        pair_frame = disagg_frame(problem, f, best_dec, prefill=pre_problem if pair else None)
        return _per_point(pair_frame, pts, ("p_tp", "p_pp", "p_ep", "p_prec")), f

    start = cost_pts | _widest(pre_problem)
    for i in range(len(best_dec["prec"])):
        own = _own_precision(problem, pre_problem, int(best_dec["prec"][i]))
        if own is not None:
            start.add((*(int(best_dec[k][i]) for k in ("tp", "pp", "ep")), own))
    pre_seen, pre_frames = _climb(dp, start, score_pre, problem.max_chips)
    return pre_seen, _concat(pre_frames)


def _own_precision(problem: ServingProblem, pre_problem: ServingProblem, i: int) -> int | None:
    """The index on ``pre_problem``'s chip of ``problem``'s precision ``i`` (``None``: that chip lacks it)."""
    if pre_problem is problem:
        return i
    choice = problem.precisions[i]
    return pre_problem.precisions.index(choice) if choice in pre_problem.precisions else None


def paired(problem: ServingProblem, pre_problem: ServingProblem, pre_seen: dict, pre: Frame, dec_seen: dict,
           dec: Frame, *, pair: bool = False) -> Frame:
    """The best visited splits of each pool (``PAIR_TOP``), every prefill one with every decode one (the KV
    hand-over couples them)."""
    if not pre or not dec:
        return {}
    pre_best = {p for p, _ in sorted(pre_seen.items(), key=lambda kv: kv[1])[:PAIR_TOP]}
    dec_best = {p for p, _ in sorted(dec_seen.items(), key=lambda kv: kv[1])[:PAIR_TOP]}
    keep_p = np.array([(int(a), int(b), int(c), int(d)) in pre_best for a, b, c, d in
                       zip(pre["tp"], pre["pp"], pre["ep"], pre["prec"])]) & pre["fits"]
    keep_d = np.array([(int(a), int(b), int(c), int(d)) in dec_best for a, b, c, d in
                       zip(dec["tp"], dec["pp"], dec["ep"], dec["prec"])]) & dec["feasible"]
    return disagg_frame(problem, {k: v[keep_p] for k, v in pre.items()}, {k: v[keep_d] for k, v in dec.items()},
                        prefill=pre_problem if pair else None)
