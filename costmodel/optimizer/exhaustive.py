"""The exhaustive path: every admissible configuration, evaluated at once. The oracle.

Admissible: a split whose degrees divide the model (heads, layers, experts)
within the chip budget, an allowed precision, and every batch that is a
multiple of pp and fits in memory. The largest fitting batch of each split is
the model's ``max_batch`` output (memory per chip is affine in the batch).
"""

from __future__ import annotations

import numpy as np

from .exact import Metrics, exact_metrics
from .problem import MAX_BATCH, Problem

__all__ = ["enumerate_candidates", "exhaustive_metrics", "CHUNK"]

CHUNK = 1 << 18


def _fit_limit(problem: Problem, splits: np.ndarray, prec: np.ndarray) -> np.ndarray:
    """The largest whole batch that fits, with a margin for rounding (a batch past the true limit is
    enumerated and then flagged as not fitting, never one below it left out)."""
    tp, pp, ep = (splits[:, i].astype(float) for i in range(3))
    m = exact_metrics(problem, tp, pp, ep, np.ones_like(tp), prec)
    return np.clip(np.floor(m["max_batch"] * (1 + 1e-4)), 0, MAX_BATCH)


def enumerate_candidates(problem: Problem) -> dict[str, np.ndarray]:
    """Flat arrays ``tp, pp, ep, batch, prec`` of every admissible configuration."""
    splits = problem.splits()
    n_prec = len(problem.precisions)
    s = np.repeat(splits, n_prec, axis=0)
    p = np.tile(np.arange(n_prec), len(splits))
    limit = _fit_limit(problem, s, p)
    counts = (limit // s[:, 1]).astype(np.int64)  # batches pp, 2pp, ... <= limit
    idx = np.repeat(np.arange(len(s)), counts)
    start = np.cumsum(counts) - counts
    m = np.arange(counts.sum()) - np.repeat(start, counts) + 1
    return {"tp": s[idx, 0], "pp": s[idx, 1], "ep": s[idx, 2], "batch": m * s[idx, 1], "prec": p[idx]}


def exhaustive_metrics(problem: Problem, cands: dict[str, np.ndarray] | None = None) -> tuple[dict, Metrics]:
    """Exact metrics of every admissible configuration, evaluated in fixed-size chunks."""
    cands = enumerate_candidates(problem) if cands is None else cands
    n = len(cands["batch"])
    out: dict[str, list[np.ndarray]] = {}
    for lo in range(0, n, CHUNK):
        sl = {k: v[lo: lo + CHUNK] for k, v in cands.items()}
        pad = CHUNK - len(sl["batch"]) if n > CHUNK else 0
        if pad:
            sl = {k: np.concatenate([v, np.repeat(v[-1:], pad)]) for k, v in sl.items()}
        m = exact_metrics(problem, sl["tp"], sl["pp"], sl["ep"], sl["batch"], sl["prec"])
        for k, v in m.items():
            out.setdefault(k, []).append(v[: len(v) - pad] if pad else v)
    return cands, {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
