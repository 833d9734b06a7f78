"""The exact Pareto frontier of two objectives (NumPy only).

A point ``p`` is dominated when another point ``q`` is no worse in both
objectives and better in one: ``q_x <= p_x``, ``q_y <= p_y``, ``q != p``.
The frontier is the set of points no other point dominates. Sorting by
``(x, y)`` finds it in ``O(n log n)``: after the sort, ``p`` is on the
frontier exactly when its ``y`` is the smallest of its ``x``-group and
strictly below every ``y`` of the groups with smaller ``x``. Identical points
do not dominate one another, so duplicates on the frontier are all kept.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

__all__ = ["pareto_mask", "dominated_by", "minimised", "FRONTIERS"]

#: named frontiers: name -> ((column, sense), (column, sense)), sense "min" or "max".
FRONTIERS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "cost-latency": (("usd_per_mtok", "min"), ("step_time_s", "min")),
    "throughput-interactivity": (("tokens_per_s_per_chip", "max"), ("tokens_per_s_per_user", "max")),
}


def minimised(frontier: str, columns) -> tuple:
    """The two objectives of the named frontier, signed so that both are minimised.

    ``columns`` maps column names to arrays (NumPy or JAX); a ``"max"`` objective is negated.

    Raises:
        ConfigError: an unknown frontier name.

    Example:
        >>> minimised("throughput-interactivity", {"tokens_per_s_per_chip": 3.0, "tokens_per_s_per_user": 5.0})
        (-3.0, -5.0)
    """
    if frontier not in FRONTIERS:
        raise ConfigError(f"unknown frontier {frontier!r}; choose one of {', '.join(FRONTIERS)}")
    return tuple(columns[c] if sense == "min" else -columns[c] for c, sense in FRONTIERS[frontier])


def pareto_mask(x: np.ndarray, y: np.ndarray, feasible: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the non-dominated points, minimising both ``x`` and ``y``.

    To maximise an objective pass its negative. Points that are not feasible or
    have a non-finite objective are never on the frontier (and dominate nothing).

    Args:
        x, y: objectives, 1-D arrays of equal length.
        feasible: optional boolean mask of the points allowed on the frontier.

    Returns:
        A boolean array, True on the frontier.

    Raises:
        ConfigError: the arrays differ in shape or are not 1-D.

    Example:
        >>> pareto_mask(np.array([1., 2., 3., 2.]), np.array([3., 1., 2., 1.])).tolist()
        [True, True, False, True]
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 1 or x.shape != y.shape:
        raise ConfigError(f"pareto_mask needs two 1-D arrays of equal length, got shapes {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    if feasible is not None:
        ok &= np.asarray(feasible, dtype=bool)
    idx = np.flatnonzero(ok)
    mask = np.zeros(x.shape, dtype=bool)
    if idx.size == 0:
        return mask
    order = idx[np.lexsort((y[idx], x[idx]))]
    xs, ys = x[order], y[order]
    new_group = np.empty(xs.size, dtype=bool)
    new_group[0] = True
    new_group[1:] = xs[1:] != xs[:-1]
    start = np.maximum.accumulate(np.where(new_group, np.arange(xs.size), 0))
    prefix_min = np.minimum.accumulate(ys)
    best_before = np.where(start > 0, prefix_min[np.maximum(start - 1, 0)], np.inf)
    keep = (ys < best_before) & (ys == ys[start])
    mask[order[keep]] = True
    return mask


def dominated_by(fx: np.ndarray, fy: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which points ``(x, y)`` some point of ``(fx, fy)`` dominates (minimising both), in ``O(n log m)``.

    With ``f`` sorted by ``fx``, point ``p`` is dominated exactly when a point with
    ``fx < p_x`` has ``fy <= p_y``, or a point with ``fx <= p_x`` has ``fy < p_y``:
    two binary searches and a prefix minimum of ``fy``. A cheap exact pre-filter
    before :func:`pareto_mask` when ``f`` is a small running frontier.

    Example:
        >>> f_x, f_y = np.array([1., 3.]), np.array([2., 1.])
        >>> dominated_by(f_x, f_y, np.array([2., 1., 0.]), np.array([2., 2., 9.])).tolist()
        [True, False, False]
    """
    if len(fx) == 0:
        return np.zeros(np.shape(x), dtype=bool)
    order = np.argsort(fx, kind="stable")
    fx, prefix = np.asarray(fx)[order], np.minimum.accumulate(np.asarray(fy)[order])
    lt = np.searchsorted(fx, x, side="left")   # points with fx < x
    le = np.searchsorted(fx, x, side="right")  # points with fx <= x
    min_lt = np.where(lt > 0, prefix[np.maximum(lt - 1, 0)], np.inf)
    min_le = np.where(le > 0, prefix[np.maximum(le - 1, 0)], np.inf)
    return (min_lt <= y) | (min_le < y)
