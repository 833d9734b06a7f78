"""On-the-fly reductions: keep a frontier or the best rows, chunk by chunk.

Both are exact. The frontier of a union is the frontier of the union of the
parts' frontiers (a dominated point stays dominated by some frontier point,
because dominance is transitive), so each chunk is reduced to its own frontier
and merged with the running one. The ``k`` smallest of a union are among the
``k`` smallest of each part.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..pareto import FRONTIERS, dominated_by, minimised, pareto_mask

__all__ = ["make_reducer", "ParetoReducer", "TopKReducer"]


def _cat(a: dict | None, b: dict) -> dict:
    return b if a is None else {k: np.concatenate([a[k], b[k]]) for k in b}


def _take(cols: dict, idx: np.ndarray) -> dict:
    return {k: v[idx] for k, v in cols.items()}


class ParetoReducer:
    """Keeps the running exact frontier of feasible rows."""

    def __init__(self, frontier: str):
        self.frontier = frontier
        self.kept: dict | None = None

    def _front(self, cols: dict) -> dict:
        x, y = minimised(self.frontier, cols)
        idx = np.flatnonzero(pareto_mask(x, y, cols["fits"]))
        return _take(cols, idx[np.lexsort((y[idx], x[idx]))])

    def anchors(self, count: int, dtype) -> np.ndarray:
        """Up to ``count`` evenly spaced points of the running frontier, ``(2, count)``, inf-padded."""
        out = np.full((2, count), np.inf, dtype=dtype)
        if self.kept is not None and len(self.kept["fits"]):
            pick = np.unique(np.linspace(0, len(self.kept["fits"]) - 1, count).round().astype(int))
            out[:, :pick.size] = [v[pick] for v in minimised(self.frontier, self.kept)]
        return out

    def add(self, cols: dict) -> None:
        """Merge a chunk; a ``_candidate`` column (the device pre-filter) narrows it first."""
        idx = np.flatnonzero(cols.pop("_candidate")) if "_candidate" in cols else np.arange(len(cols["fits"]))
        x, y = (v[idx] for v in minimised(self.frontier, cols))
        ok = cols["fits"][idx] & np.isfinite(x) & np.isfinite(y)
        if self.kept is not None:  # exact pre-filter: drop what the running frontier dominates
            ok &= ~dominated_by(*minimised(self.frontier, self.kept), x, y)
        self.kept = self._front(_cat(self.kept, _take(cols, idx[ok])))

    def finish(self) -> dict:
        return self.kept


class TopKReducer:
    """Keeps the ``k`` feasible rows with the smallest value of a column (ties: earliest rows)."""

    def __init__(self, column: str, k: int):
        self.column, self.k, self.kept = column, k, None

    def add(self, cols: dict) -> None:
        cols = _take(cols, np.flatnonzero(cols["fits"] & np.isfinite(cols[self.column])))
        both = _cat(self.kept, cols)
        order = np.argsort(both[self.column], kind="stable")[: self.k]
        self.kept = _take(both, order)

    def finish(self) -> dict:
        return self.kept


def make_reducer(pareto: str | None, top_k: tuple[str, int] | None):
    """The reducer for the options and the columns it needs, or ``(None, ())``."""
    if pareto is not None:
        if pareto not in FRONTIERS:
            raise ConfigError(f"unknown frontier {pareto!r}; choose one of {', '.join(FRONTIERS)}")
        (cx, _), (cy, _) = FRONTIERS[pareto]
        return ParetoReducer(pareto), (cx, cy, "fits")
    if top_k is not None:
        try:
            column, k = top_k
            k = int(k)
        except (TypeError, ValueError):
            raise ConfigError(f"top_k must be (column, k), e.g. ('usd_per_mtok', 10); got {top_k!r}") from None
        if k < 1:
            raise ConfigError(f"top_k needs k >= 1, got {k}")
        return TopKReducer(column, k), (column, "fits")
    return None, ()
