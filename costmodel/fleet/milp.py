"""The fleet assignment as a mixed-integer linear program, solved by HiGHS (``scipy.optimize.milp``).

Model ``m`` may be served by its candidate deployment on chip type ``k``: ``n[m, k]`` chips at
``c[m, k]`` USD per hour (``c = inf``: no candidate there). With binary ``x[m, k]`` (serve ``m`` on ``k``)
the plan is

    minimise    sum_mk c[m, k] x[m, k]
    subject to  sum_k x[m, k] = 1                 for every model m     (each model served once)
                sum_m n[m, k] x[m, k] <= cap[k]   for every chip type k (availability)
                sum_mk w[m, k] x[m, k] <= W                                (the site's power, when capped)

a generalised assignment problem (NP-hard in general; a few hundred binaries here). Candidates that
alone exceed a cap are left out before the solve (they could never be chosen). The relative MIP gap
is set to 0, so HiGHS proves optimality instead of stopping within its default 0.01%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

__all__ = ["Assignment", "assign", "serve_most", "extra_chips"]

_OPTIONS = {"mip_rel_gap": 0.0, "presolve": True, "time_limit": 60.0}


@dataclass(frozen=True)
class Assignment:
    """A solution of the program.

    Attributes:
        choice: per model, the index of its chip type (``None``: not served).
        usd_per_hour: total cost of the chosen candidates.
    """

    choice: tuple[int | None, ...]
    usd_per_hour: float


def _columns(cost: np.ndarray, chips: np.ndarray, caps: np.ndarray, keep: int | None = None) -> list[tuple[int, int]]:
    """The ``(m, k)`` pairs worth a variable: a candidate exists and fits its cap (always, on type ``keep``)."""
    m, k = np.nonzero(np.isfinite(cost) & ((chips <= caps[None, :]) | (np.arange(cost.shape[1]) == keep)[None, :]))
    return list(zip(m.tolist(), k.tolist()))


def _rows(cols: list[tuple[int, int]], shape: tuple[int, int], chips: np.ndarray, extra: int = 0):
    """The model rows (one per model) and the chip rows (one per chip type) over ``cols`` (+ ``extra`` columns)."""
    n_models, n_types = shape
    per_model = np.zeros((n_models, len(cols) + extra))
    per_type = np.zeros((n_types, len(cols) + extra))
    for j, (m, k) in enumerate(cols):
        per_model[m, j] = 1.0
        per_type[k, j] = chips[m, k]
    return per_model, per_type


def _power(cols: list[tuple[int, int]], power, power_cap: float, extra: int = 0) -> list[LinearConstraint]:
    """The site's power row over ``cols`` (``power[m, k]`` kW per candidate), or none without a cap."""
    if power is None or not np.isfinite(power_cap):
        return []
    row = np.zeros((1, len(cols) + extra))
    for j, (m, k) in enumerate(cols):
        row[0, j] = power[m, k]
    return [LinearConstraint(row, -np.inf, power_cap)]


def _solve(c: np.ndarray, constraints: list[LinearConstraint], upper: np.ndarray) -> np.ndarray | None:
    """The optimal integer point, or ``None`` when the program is infeasible."""
    res = milp(c, constraints=constraints, integrality=np.ones_like(c), bounds=Bounds(np.zeros_like(c), upper),
               options=_OPTIONS)
    if res.status == 2:  # infeasible
        return None
    if res.status != 0:
        raise RuntimeError(f"HiGHS did not finish the fleet program: {res.message}")
    return np.round(res.x)


def _assignment(cols: list[tuple[int, int]], x: np.ndarray, cost: np.ndarray, n_models: int) -> Assignment:
    choice: list[int | None] = [None] * n_models
    for j, (m, k) in enumerate(cols):
        if x[j] > 0.5:
            choice[m] = k
    total = sum(float(cost[m, k]) for m, k in enumerate(choice) if k is not None)
    return Assignment(tuple(choice), total)


def assign(cost: np.ndarray, chips: np.ndarray, caps: np.ndarray, power=None,
           power_cap: float = np.inf) -> Assignment | None:
    """The cheapest assignment serving every model within the caps, or ``None`` when there is none.

    Args:
        cost: ``(models, chip types)`` USD per hour of each candidate, ``inf`` where there is none.
        chips: ``(models, chip types)`` chips of each candidate.
        caps: ``(chip types,)`` chips available (``inf``: no cap).
        power, power_cap: ``(models, chip types)`` kW of each candidate and the site's cap in kW
            (``None`` / ``inf``: no power cap).

    Example:
        Two models, two chip types with 2 and 1 chips. Both models on type 0 would need 3 chips; model 0
        alone on type 1 (1 chip, $3) and model 1 on type 0 (1 chip, $2) is the only plan within the caps:

        >>> a = assign([[4.0, 3.0], [2.0, 6.0]], [[2, 1], [1, 3]], [2, 1])
        >>> a.choice, a.usd_per_hour
        ((1, 0), 5.0)
    """
    cost, chips, caps = (np.asarray(a, float) for a in (cost, chips, caps))
    cols = _columns(cost, chips, caps)
    if {m for m, _ in cols} != set(range(cost.shape[0])):
        return None  # a model with no candidate that fits
    per_model, per_type = _rows(cols, cost.shape, chips)
    c = np.array([cost[m, k] for m, k in cols])
    x = _solve(c, [LinearConstraint(per_model, 1, 1), LinearConstraint(per_type, -np.inf, caps)]
               + _power(cols, power, power_cap), np.ones(len(cols)))
    return None if x is None else _assignment(cols, x, cost, cost.shape[0])


def serve_most(cost: np.ndarray, chips: np.ndarray, caps: np.ndarray, power=None,
               power_cap: float = np.inf) -> Assignment:
    """Serve as many models as the caps allow, and among those plans the cheapest.

    Two programs: the first maximises the number of models served, the second minimises the cost
    with at least that many served (a lexicographic objective without a big-M weight).
    """
    cost, chips, caps = (np.asarray(a, float) for a in (cost, chips, caps))
    cols = _columns(cost, chips, caps)
    if not cols:
        return Assignment((None,) * cost.shape[0], 0.0)
    per_model, per_type = _rows(cols, cost.shape, chips)
    base = [LinearConstraint(per_model, 0, 1), LinearConstraint(per_type, -np.inf, caps)]
    base += _power(cols, power, power_cap)
    most = _solve(-np.ones(len(cols)), base, np.ones(len(cols)))
    served = float(most.sum())  # x = 0 is always feasible
    x = _solve(np.array([cost[m, k] for m, k in cols]),
               base + [LinearConstraint(np.ones((1, len(cols))), served, np.inf)], np.ones(len(cols)))
    return _assignment(cols, x, cost, cost.shape[0])


def extra_chips(cost: np.ndarray, chips: np.ndarray, caps: np.ndarray, k: int, power=None,
                power_cap: float = np.inf) -> int | None:
    """The fewest chips of type ``k`` to add (other caps unchanged) so that every model is served.

    ``None`` when no number of chips of type ``k`` suffices (a model has no candidate that fits
    elsewhere nor any on ``k``).
    """
    cost, chips, caps = (np.asarray(a, float) for a in (cost, chips, caps))
    cols = _columns(cost, chips, caps, keep=k)
    if {m for m, _ in cols} != set(range(cost.shape[0])):
        return None
    per_model, per_type = _rows(cols, cost.shape, chips, extra=1)
    per_type[k, -1] = -1.0  # sum_m n[m, k] x[m, k] - e <= cap[k]
    c = np.zeros(len(cols) + 1)
    c[-1] = 1.0
    upper = np.append(np.ones(len(cols)), np.inf)
    x = _solve(c, [LinearConstraint(per_model, 1, 1), LinearConstraint(per_type, -np.inf, caps)]
               + _power(cols, power, power_cap, extra=1), upper)
    return None if x is None else int(x[-1])
