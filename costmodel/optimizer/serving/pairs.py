"""Disaggregated pools on a pair of chips: the prefill pool on one chip of ``prefill_hardware``, the decode
pool on one of ``decode_hardware`` (docs/serving.md §19.4).

Each pool's candidates are evaluated once per chip: the decode pool's TPOT, memory and goodput depend on its
own chip alone, and so do the prefill pool's step time and memory. A pair of chips only couples them through
the KV hand-over (the link: the slower of the two chips' scale-out links when the chips differ) and the
price (each pool at its own chip's). So the exhaustive path tables every prefill candidate of each prefill
chip and every decode candidate of each decode chip once, and pairs them per pair of chips; the gradient
path climbs the decode pool once per decode chip and the prefill pool once per pair, each prefill split
tabled once per chip. Candidates of one precision pair up (the same weights, KV and math on both chips);
the frames carry ``p_hw`` and ``d_hw``, indices into :attr:`ServingProblem.pair_chips`, and ``cost``,
USD per hour.
"""

from __future__ import annotations

import numpy as np

from .candidates import Frame, _concat, decode_frame, disagg_frame, prefill_frame
from .exhaustive import all_points
from .gradient import best_decode, decode_climb, paired, prefill_climb
from .problem import ServingProblem, on_chip

__all__ = ["pairs_of", "exhaustive_pairs", "gradient_pairs"]


def pairs_of(problem: ServingProblem) -> list[tuple[str, str]]:
    """Every (prefill chip, decode chip) of the two lists."""
    return [(a, b) for a in problem.prefill_hardware for b in problem.decode_hardware]


def _as_decode_counts(pre: Frame, pre_problem: ServingProblem, dec_problem: ServingProblem) -> Frame:
    """``pre`` with ``pair_prec``: each row's precision as an index of the decode chip's (-1: it has none)."""
    if not pre:
        return pre
    index = {c: i for i, c in enumerate(dec_problem.precisions)}
    table = np.array([index.get(c, -1) for c in pre_problem.precisions], dtype=np.int64)
    return pre | {"pair_prec": table[pre["prec"].astype(np.int64)]}


def _tagged(problem: ServingProblem, frame: Frame, a: str, b: str) -> Frame:
    if not frame:
        return frame
    names = problem.pair_chips
    n = len(frame["chips"])
    return frame | {"p_hw": np.full(n, names.index(a)), "d_hw": np.full(n, names.index(b))}


def exhaustive_pairs(problem: ServingProblem, *, ttft_s=..., tpot_s=...) -> Frame:
    """Every prefill candidate of each prefill chip paired with every decode candidate of each decode chip."""
    pre, dec = {}, {}
    for name in problem.prefill_hardware:
        chip = on_chip(problem, name)
        f = prefill_frame(chip, all_points(chip))
        pre[name] = {k: v[f["fits"]] for k, v in f.items()} if f else f
    for name in problem.decode_hardware:
        chip = on_chip(problem, name)
        f = decode_frame(chip, all_points(chip), tpot_s=tpot_s)
        dec[name] = {k: v[f["feasible"]] for k, v in f.items()} if f else f
    frames = []
    for a, b in pairs_of(problem):
        A, B = on_chip(problem, a), on_chip(problem, b)
        f = disagg_frame(B, _as_decode_counts(pre[a], A, B), dec[b], ttft_s=ttft_s, prefill=A)
        frames.append(_tagged(problem, f, a, b))
    return _concat(frames)


class _PrefillTables:
    """The prefill candidates of one chip, each split tabled once across the climbs of every pair."""

    def __init__(self, problem: ServingProblem):
        self.problem = problem
        self.rows: dict[tuple, Frame] = {}

    def __call__(self, points) -> Frame:
        pts = sorted(set(points))
        new = [p for p in pts if p not in self.rows]
        if new:
            f = prefill_frame(self.problem, new)
            rows: dict[tuple, list[int]] = {p: [] for p in new}
            for i, key in enumerate(zip(*(f[k].astype(int) for k in ("tp", "pp", "ep", "prec"))) if f else ()):
                rows[tuple(int(v) for v in key)].append(i)
            for p, idx in rows.items():
                self.rows[p] = {k: v[np.array(idx, dtype=np.int64)] for k, v in f.items()} if idx else {}
        return _concat([self.rows[p] for p in pts])


def gradient_pairs(problem: ServingProblem) -> Frame:
    """The gradient path over pairs of chips: the decode pool's climb on each decode chip, the prefill pool's
    on each pair (scored with that decode chip's best pool), the best visited splits of both paired."""
    decode = {}
    for name in problem.decode_hardware:
        seen, frame = decode_climb(on_chip(problem, name))
        decode[name] = (seen, frame, best_decode(frame))
    tables = {name: _PrefillTables(on_chip(problem, name)) for name in problem.prefill_hardware}
    frames = []
    for a, b in pairs_of(problem):
        dec_seen, dec, best = decode[b]
        if best is None:
            continue
        A, B = on_chip(problem, a), on_chip(problem, b)

        def evaluate(pts, A=A, B=B, a=a):
            return _as_decode_counts(tables[a](pts), A, B)

        pre_seen, pre = prefill_climb(B, A, best, pair=True, evaluate=evaluate)
        frames.append(_tagged(problem, paired(B, A, pre_seen, pre, dec_seen, dec, pair=True), a, b))
    return _concat(frames)
