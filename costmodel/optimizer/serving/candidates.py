"""Candidate deployments of a set of splits, evaluated by the tables, ranked, and the size of the space.

A *point* is ``(tp, pp, ep, precision index)``. An aggregated point expands to every attention
sharding, speculation option and chunk budget; a disaggregated candidate is a prefill point with
a prefill batch ``b_p`` paired with a decode point of the same precision and a speculation option.
Replicas are not enumerated: for a fixed configuration every constraint is met at a lighter load
per replica, so the cheapest replica count is the fewest that meet the targets, which the tables
compute (:mod:`.evaluate`). The space counted by :func:`space_size` includes every replica count
within the budget.
"""

from __future__ import annotations

import itertools

import numpy as np

from ...errors import CostModelError
from .evaluate import BLOCK, aggregated_table, decode_table, pair_table, prefill_table
from .exact import Deployment
from .problem import ATTENTION_OPTIONS, PREFILL_BATCHES, ServingProblem, on_chip

__all__ = ["agg_frame", "decode_frame", "prefill_frame", "disagg_frame", "ranked", "space_size", "Frame"]

Frame = dict[str, np.ndarray]
#: candidates per evaluation call (each padded to this size, so one compilation serves every call)
CHUNK = BLOCK
_OVER = 1e9
_BIG = 1e15


def _chunked(fn, n: int, *cols):
    out: dict[str, list] = {}
    for lo in range(0, n, CHUNK):
        part = fn(*(c[lo: lo + CHUNK] for c in cols))
        for k, v in part.items():
            out.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in out.items()}


def _points(points) -> np.ndarray:
    return np.array(sorted(points), dtype=np.int64).reshape(-1, 4)


def agg_frame(problem: ServingProblem, points, *, ttft_s=..., tpot_s=..., rate_per_s=None) -> Frame:
    """Every aggregated candidate of ``points`` (one row per point x attention x speculation x chunk)."""
    pts = _points(points)
    frames = []
    for a, attention in enumerate(ATTENTION_OPTIONS):
        for s in range(len(problem.specs)):
            rows = np.array(list(itertools.product(range(len(pts)), problem.chunks)), dtype=np.int64).reshape(-1, 2)
            if not len(rows):
                continue
            p, chunk = pts[rows[:, 0]], rows[:, 1]
            def table(sp, pr, ch, attention=attention, s=s):
                return aggregated_table(problem, sp, pr, ch, attention, s, ttft_s=ttft_s, tpot_s=tpot_s,
                                        rate_per_s=rate_per_s)

            try:
                t = _chunked(table, len(p), p[:, :3], p[:, 3], chunk)
            except CostModelError:  # this sharding does not apply to the model
                continue
            t.update(tp=p[:, 0], pp=p[:, 1], ep=p[:, 2], prec=p[:, 3], chunk=chunk, attention=np.full(len(p), a),
                     spec=np.full(len(p), s))
            frames.append(t)
    return _concat(frames)


def decode_frame(problem: ServingProblem, points, *, tpot_s=..., rate_per_s=None) -> Frame:
    """Decode-pool candidates of ``points`` for every speculation option."""
    pts = _points(points)
    frames = []
    for s in range(len(problem.specs)):
        if not len(pts):
            break
        def table(sp, pr, s=s):
            return decode_table(problem, sp, pr, s, tpot_s=tpot_s, rate_per_s=rate_per_s)

        t = _chunked(table, len(pts), pts[:, :3], pts[:, 3])
        t.update(tp=pts[:, 0], pp=pts[:, 1], ep=pts[:, 2], prec=pts[:, 3], spec=np.full(len(pts), s))
        frames.append(t)
    return _concat(frames)


def prefill_frame(problem: ServingProblem, points) -> Frame:
    """Prefill-pool candidates of ``points`` for every prefill batch."""
    pts = _points(points)
    rows = np.array(list(itertools.product(range(len(pts)), PREFILL_BATCHES)), dtype=np.int64).reshape(-1, 2)
    if not len(rows):
        return {}
    p, b = pts[rows[:, 0]], rows[:, 1]
    t = _chunked(lambda sp, pr, bb: prefill_table(problem, sp, pr, bb), len(p), p[:, :3], p[:, 3], b)
    t.update(tp=p[:, 0], pp=p[:, 1], ep=p[:, 2], prec=p[:, 3], prefill_batch=b)
    return t


def disagg_frame(problem: ServingProblem, pre: Frame, dec: Frame, *, ttft_s=..., prefill: ServingProblem | None = None
                 ) -> Frame:
    """Every prefill candidate paired with every decode candidate of the same precision (``prec``: the
    decode chip's index of it; ``p_prec``: the prefill chip's). ``problem`` is the decode pool's; ``prefill``,
    the prefill pool's for a pair of chips (:func:`.evaluate.pair_table`)."""
    if not pre or not dec:
        return {}
    key = pre.get("pair_prec", pre["prec"])  # a pair of chips: the prefill precision as the decode chip counts it
    i, j = np.nonzero(key[:, None] == dec["prec"][None, :])
    if not len(i):
        return {}
    p = {k: v[i] for k, v in pre.items()}
    d = {k: v[j] for k, v in dec.items()}
    t = pair_table(problem, p, d, p["prefill_batch"], ttft_s=ttft_s, prefill=prefill)
    out = {f"p_{k}": p[k] for k in ("tp", "pp", "ep", "prec", "prefill_batch", "prefill_time_s")}
    out.update({f"d_{k}": d[k] for k in ("tp", "pp", "ep", "replicas", "batch", "tpot_s", "stop_memory",
                                          "memory_bytes_per_chip", "goodput_per_s")})
    out.update(prec=d["prec"], spec=d["spec"], **t)
    out["tpot_s"] = d["tpot_s"]
    return out


def _concat(frames: list[Frame]) -> Frame:
    frames = [f for f in frames if f]
    if not frames:
        return {}
    return {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}


def score(frame: Frame) -> np.ndarray:
    """The objective of each candidate (:meth:`ServingProblem.objective_value`: USD per hour, or watts, at
    the fixed demand) when feasible; after every feasible one, those meeting the targets with more chips
    than the budget (fewer chips first), then those that cannot meet them at any load (closer to meeting
    them first: the summed log excess over the targets and memory at a vanishing load), to steer a climb."""
    if not frame:
        return np.zeros(0)
    value = np.where(np.isfinite(frame["objective"]), frame["objective"], _OVER)
    chips = np.where(np.isfinite(frame["chips"]), frame["chips"], _OVER)
    meets = frame.get("meets", frame["feasible"])
    violation = np.nan_to_num(frame.get("violation", np.zeros_like(chips)), nan=_OVER, posinf=_OVER)
    return np.where(frame["feasible"], np.minimum(value, _OVER),
                    np.where(meets, _OVER + np.minimum(chips, _OVER), _BIG + np.minimum(violation, _OVER)))


def slack(problem: ServingProblem, frame: Frame) -> np.ndarray:
    """The smaller relative margin of each candidate to its targets, ``min(1 - TTFT/target, 1 - TPOT/target)``."""
    out = np.ones(len(frame["chips"]))
    for key, target in (("ttft_s", problem.ttft_s), ("tpot_s", problem.tpot_s)):
        if target is not None:
            out = np.minimum(out, 1 - frame[key] / target)
    return out


def ranked(problem: ServingProblem, mode: str, frame: Frame, limit: int = 64) -> list[Deployment]:
    """Feasible candidates of ``frame`` as :class:`Deployment` objects, the lowest objective first (the
    cheapest, or the fewest watts); among equally good ones the widest margin to the targets first (the
    likeliest to hold under ``cm.serve``), then the lower TPOT."""
    if not frame:
        return []
    idx = np.flatnonzero(frame["feasible"])
    if not len(idx):
        return []
    margin = np.round(slack(problem, frame)[idx], 6)
    order = idx[np.lexsort((frame["tpot_s"][idx], -margin, frame["objective"][idx]))][:limit]
    names = problem.pair_chips
    out = []
    for i in order:
        fig = {k: float(v[i]) for k, v in frame.items()}
        if mode == "agg":
            out.append(Deployment("agg", int(frame["prec"][i]), int(frame["spec"][i]), int(frame["replicas"][i]),
                                  (int(frame["tp"][i]), int(frame["pp"][i]), int(frame["ep"][i])),
                                  attention=ATTENTION_OPTIONS[int(frame["attention"][i])],
                                  chunk=int(frame["chunk"][i]), figures=fig))
        else:
            out.append(Deployment("disagg", int(frame["prec"][i]), int(frame["spec"][i]), int(frame["d_replicas"][i]),
                                  (int(frame["d_tp"][i]), int(frame["d_pp"][i]), int(frame["d_ep"][i])),
                                  prefill_split=(int(frame["p_tp"][i]), int(frame["p_pp"][i]), int(frame["p_ep"][i])),
                                  prefill_batch=int(frame["p_prefill_batch"][i]),
                                  prefill_replicas=int(frame["prefill_replicas"][i]),
                                  prefill_hardware=names[int(frame["p_hw"][i])] if "p_hw" in frame else None,
                                  decode_hardware=names[int(frame["d_hw"][i])] if "d_hw" in frame else None,
                                  figures=fig))
    return out


def space_size(problem: ServingProblem, mode: str) -> int:
    """Configurations in the searched space of ``mode``, every replica count within the budget included."""
    M = problem.max_chips
    n = problem.splits().prod(axis=1)
    n_prec, n_spec = len(problem.precisions), len(problem.specs)
    if mode == "agg":
        return int((M // n).sum()) * n_prec * n_spec * len(ATTENTION_OPTIONS) * len(problem.chunks)
    sizes, counts = np.unique(n, return_counts=True)
    total = 0
    for a, ca in zip(sizes, counts):
        r_p = np.arange(1, M // a + 1)
        for b, cb in zip(sizes, counts):
            left = M - r_p * a
            total += int(ca) * int(cb) * int(np.maximum(left // b, 0).sum())
    if problem.searches_pairs:  # each pair of chips, with the precisions both chips run
        return total * n_spec * len(PREFILL_BATCHES) * sum(
            len(set(on_chip(problem, a).precisions) & set(on_chip(problem, b).precisions))
            for a in problem.prefill_hardware for b in problem.decode_hardware)
    return total * n_prec * n_spec * len(PREFILL_BATCHES)
