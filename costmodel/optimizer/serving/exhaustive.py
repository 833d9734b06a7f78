"""The exhaustive path: every admissible deployment of a mode, evaluated in fixed-size chunks. The oracle.

Aggregated: every split x precision x attention sharding x speculation option x chunk budget.
Disaggregated: every prefill split x precision x prefill batch paired with every decode split
x speculation option of the same precision (over pairs of chips, each chip's pools tabled once and
paired per pair: :mod:`.pairs`). Replicas follow in closed form (the fewest that
meet the targets; :mod:`.candidates`), so the space of every replica count is covered.
"""

from __future__ import annotations

import itertools

from .candidates import Frame, agg_frame, decode_frame, disagg_frame, prefill_frame
from .problem import ServingProblem

__all__ = ["all_points", "exhaustive_frame"]


def all_points(problem: ServingProblem, budget: int | None = None) -> set[tuple[int, ...]]:
    """Every admissible ``(tp, pp, ep, precision)`` within ``budget`` chips."""
    splits = problem.splits(budget)
    return {(int(a), int(b), int(c), p) for (a, b, c), p in itertools.product(splits, range(len(problem.precisions)))}


def exhaustive_frame(problem: ServingProblem, mode: str, *, ttft_s=..., tpot_s=...) -> Frame:
    """Every candidate of ``mode`` evaluated by the tables."""
    if mode == "disagg" and problem.searches_pairs:
        from .pairs import exhaustive_pairs

        return exhaustive_pairs(problem, ttft_s=ttft_s, tpot_s=tpot_s)
    pts = all_points(problem)
    if mode == "agg":
        return agg_frame(problem, pts, ttft_s=ttft_s, tpot_s=tpot_s)
    dec = decode_frame(problem, pts, tpot_s=tpot_s)
    pre = prefill_frame(problem, pts)
    dec = {k: v[dec["feasible"]] for k, v in dec.items()} if dec else dec
    pre = {k: v[pre["fits"]] for k, v in pre.items()} if pre else pre
    return disagg_frame(problem, pre, dec, ttft_s=ttft_s)
