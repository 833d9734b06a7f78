"""From continuous answers to admissible ones: rounding, then a local search with the exact model.

For a fixed split and precision every constraint that depends on the batch
(TPOT, TTFT, memory) only tightens as the batch grows, while the cost per token
only falls (the weight fetch and collective latencies are amortised over more
tokens). The cheapest batch of a split is therefore the largest one meeting
those constraints, found by bisection on the exact model
(:func:`~costmodel.optimizer.exact.largest_feasible_batch`).

Splits live on lattices (the divisors of heads, layers, experts). The relaxed
optimum is rounded to the lattice points around it; then a hill climb moves to
the best neighbouring split while that lowers the objective. Neighbours are one
lattice step in any combination of tp, pp and ep, every value along each single
axis (a coordinate line search: cost along one axis can dip twice, e.g. expert
parallelism trading replicated attention weights against KV room), and
exchanges that move chips from one axis to another at about the same count, or
half or twice it (pipeline stages traded for expert groups), each with every
allowed precision. Cost is nearly flat across splits
in the memory-bound regime, so the climb matters: it is what turns a good
region into the best point.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from .exact import Metrics, exact_metrics, largest_feasible_batch
from .problem import Problem

__all__ = ["lattice_neighbours", "round_to_lattice", "local_search", "MAX_CLIMB_STEPS"]

MAX_CLIMB_STEPS = 32
_INFEASIBLE = 1e12  # scores above this are infeasible; smaller excess ranks closer to feasible
_DIMS = ("tp", "pp", "ep")


def lattice_neighbours(values: tuple[int, ...], x: float, width: int = 1) -> list[int]:
    """Admissible values bracketing ``x`` (floor and ceiling in ``values``), plus ``width`` more each side."""
    v = np.asarray(values)
    floor = max(int(np.searchsorted(v, x, side="right")) - 1, 0)
    ceil = min(int(np.searchsorted(v, x, side="left")), len(v) - 1)
    return [int(a) for a in v[max(floor - width, 0): ceil + width + 1]]


def round_to_lattice(problem: Problem, u: np.ndarray, prec: np.ndarray, budget: int) -> set[tuple[int, ...]]:
    """Admissible (tp, pp, ep, precision) points bracketing each continuous solution."""
    pts = set()
    for row, p in zip(u, prec):
        opts = [lattice_neighbours(problem.degrees[d], float(np.exp(row[i + 1])), 0) for i, d in enumerate(_DIMS)]
        pts.update((t, q, e, int(p)) for t, q, e in itertools.product(*opts) if t * q * e <= budget)
    return pts


def _neighbours(problem: Problem, pt: tuple[int, ...], budget: int) -> set[tuple[int, ...]]:
    """One lattice step in any combination of tp, pp, ep, every value along each single axis (a
    coordinate line search) and the exchanges between two axes, each with every allowed precision."""
    splits = _split_neighbours(tuple(tuple(problem.degrees[d]) for d in _DIMS), tuple(pt[:3]))
    return {(t, q, e, p) for t, q, e in splits if t * q * e <= budget for p in range(len(problem.precisions))}


@functools.lru_cache(maxsize=4096)
def _split_neighbours(degrees: tuple[tuple[int, ...], ...], pt: tuple[int, int, int]) -> frozenset:
    """The neighbouring splits of ``pt`` on the lattice ``degrees`` (tp, pp, ep values): they depend on
    nothing else, so they are kept across problems of the same model."""
    idx = [degrees[i].index(pt[i]) for i in range(3)]
    steps = [range(max(i - 1, 0), min(i + 2, len(degrees[d]))) for d, i in enumerate(idx)]
    splits = {tuple(degrees[d][j] for d, j in enumerate(js)) for js in itertools.product(*steps)}
    for axis in range(3):
        for v in degrees[axis]:
            splits.add(tuple(v if a == axis else pt[a] for a in range(3)))
    return frozenset(splits | _exchanges(degrees, pt))


def _exchanges(degrees: tuple[tuple[int, ...], ...], pt: tuple[int, ...]) -> set[tuple[int, int, int]]:
    """Moves that shift chips from one axis to another at about the same chip count (or half or
    twice it): for each pair of axes (a, b) and each value of a, the values of b bracketing
    ``g·pt[a]·pt[b] / a`` for ``g`` in 1/2, 1, 2."""
    out = set()
    for (a, b), g in itertools.product(itertools.permutations(range(3), 2), (0.5, 1.0, 2.0)):
        pair = g * pt[a] * pt[b]
        for va in degrees[a]:
            for vb in lattice_neighbours(degrees[b], pair / va, 0):
                new = list(pt[:3])
                new[a], new[b] = va, vb
                out.add(tuple(new))
    return out


def _evaluate(problem: Problem, pts: list[tuple[int, ...]], objective: str, tpot_s: float | None):
    arr = np.array(pts, dtype=np.int64).reshape(-1, 4)
    splits, prec = arr[:, :3], arr[:, 3]
    if objective == "latency":  # the smallest batch: one sequence per pipeline micro-batch
        m = exact_metrics(problem, *(splits[:, i] for i in range(3)), splits[:, 1], prec, tpot_s=1e30)
        batch = splits[:, 1].astype(float)
        score = np.where(m["fits"] & m["ok_chips"], m["step_time_s"], _INFEASIBLE + _violation(problem, m, None))
    else:
        batch, m = largest_feasible_batch(problem, splits, prec, tpot_s=tpot_s)
        if problem.demand_tokens_per_s and (problem.objective == "energy" or problem.base.electricity.owned):
            batch, m = _fewest_for_replicas(problem, splits, prec, batch, m, tpot_s)
        target = problem.tpot_s if tpot_s is None else tpot_s
        score = np.where((batch > 0) & m["feasible"], m[problem.objective_key],
                         _INFEASIBLE + _violation(problem, m, target))
    return batch, m, score


def _fewest_for_replicas(problem: Problem, splits: np.ndarray, prec: np.ndarray, batch: np.ndarray, m: Metrics,
                         tpot_s: float | None) -> tuple[np.ndarray, Metrics]:
    """At a demand, the smallest batch (a multiple of pp) that needs no more replicas than the largest
    feasible one: the replicas serve the demand either way, and a less busy chip draws less power
    (docs/theory.md §21), so that is where the energy per token, and the cost of owned chips, are least.
    Bisection, all splits at once."""
    tp, pp, ep = (splits[:, i] for i in range(3))
    ok0 = (batch > 0) & m["feasible"]
    lo, hi = np.ones(len(batch), dtype=np.int64), np.maximum(batch // pp, 1).astype(np.int64)
    lo = np.where(ok0, lo, hi)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        mm = exact_metrics(problem, tp, pp, ep, (mid * pp).astype(float), prec, tpot_s=tpot_s)
        ok = mm["feasible"] & (mm["replicas"] <= m["replicas"])
        hi, lo = np.where(ok & (lo < hi), mid, hi), np.where(~ok & (lo < hi), mid + 1, lo)
    new = np.where(ok0, hi * pp, batch).astype(batch.dtype)
    mm = exact_metrics(problem, tp, pp, ep, new.astype(float), prec, tpot_s=tpot_s)
    out = {k: np.where(ok0, mm[k], v) if k in mm else v for k, v in m.items()}
    return new, out


def _violation(problem: Problem, m: Metrics, tpot_s: float | None) -> np.ndarray:
    """How far an infeasible split is from feasibility (sum of log excesses), to steer the climb.

    ``tpot_s=None`` measures fitting alone (memory and chip budget), for the fastest-split search.
    """
    excess = [np.log(m["memory_bytes_per_chip"] / m["usable_bytes_per_chip"]), np.where(m["ok_chips"], 0.0, 1.0)]
    if tpot_s is not None:
        excess.append(np.log(m["step_time_s"] / tpot_s))
        if problem.ttft_s is not None:
            excess.append(np.log(m["ttft_s"] / problem.ttft_s))
    return sum(np.maximum(0.0, e) for e in excess)


def local_search(problem: Problem, start: set[tuple[int, ...]], objective: str = "cost",
                 tpot_s: float | None = None, budget: int | None = None) -> tuple[dict, Metrics]:
    """Hill-climb over splits from ``start``; returns every evaluated candidate and its exact metrics.

    ``objective="cost"`` (or ``"energy"``) scores a split by the problem's objective at its largest feasible batch;
    ``"latency"`` by its step time at the smallest batch (fitting and within budget).
    """
    budget = budget or problem.max_chips
    seen: dict[tuple[int, ...], int] = {}
    rows: list[tuple] = []
    frontier = sorted(start)
    best, best_score = None, np.inf
    for _ in range(MAX_CLIMB_STEPS):
        frontier = [pt for pt in frontier if pt not in seen]
        if not frontier:
            break
        batch, m, score = _evaluate(problem, frontier, objective, tpot_s)
        for i, pt in enumerate(frontier):
            seen[pt] = len(rows)
            rows.append((pt, batch[i], {k: v[i] for k, v in m.items()}, score[i]))
        i = int(np.argmin(score))
        if score[i] >= best_score:
            break
        best, best_score = frontier[i], score[i]
        frontier = sorted(_neighbours(problem, best, budget))
    cands = {
        "tp": np.array([r[0][0] for r in rows]), "pp": np.array([r[0][1] for r in rows]),
        "ep": np.array([r[0][2] for r in rows]), "prec": np.array([r[0][3] for r in rows]),
        "batch": np.array([r[1] for r in rows], dtype=float),
    }
    metrics = {k: np.array([r[2][k] for r in rows]) for k in rows[0][2]} if rows else {}
    if objective != "latency" and rows:
        metrics["feasible"] = metrics["feasible"] & (cands["batch"] > 0)
    return cands, metrics
