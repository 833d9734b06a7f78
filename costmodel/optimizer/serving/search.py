"""One mode of the serving problem solved by one method: the candidates, then the cheapest that
``cm.serve`` confirms."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...errors import CostModelError
from .candidates import Frame, ranked
from .exact import Deployment, confirm, serve_deployment
from .exhaustive import exhaustive_frame
from .gradient import gradient_frame
from .problem import ServingProblem, with_targets

__all__ = ["Found", "solve_mode"]


@dataclass(frozen=True)
class Found:
    """The confirmed deployment (``None`` if none), its ``cm.serve`` prediction, the evaluated candidates and
    the number of ``cm.serve`` calls."""

    deployment: Deployment | None
    prediction: Any
    frame: Frame
    checks: int


#: Rounds of screening with targets tightened by the tail's ratio to the mean (percentile targets).
TAIL_ROUNDS = 3


def solve_mode(problem: ServingProblem, mode: str, method: str) -> Found:
    """The cheapest confirmed deployment of ``mode`` (``"agg"`` or ``"disagg"``) by ``method``.

    The tables price means; a percentile target (``ttft_percentile``, ``tpot_percentile``) is checked by
    ``cm.serve`` on the candidates. When none of them meets it, the tables screen again with the target
    divided by the percentile's ratio to the mean at the cheapest candidate (at most :data:`TAIL_ROUNDS`
    rounds), so that candidates with room for the tail come first."""
    screen, checks = problem, 0
    for _ in range(TAIL_ROUNDS if problem.ttft_percentile or problem.tpot_percentile else 1):
        frame = exhaustive_frame(screen, mode) if method == "exhaustive" else gradient_frame(screen, mode)
        order = ranked(screen, mode, frame)
        d, s, n = confirm(problem, order)
        checks += n
        if d is not None or not order:
            break
        screen = _tightened(problem, screen, order[0])
        if screen is None:
            break
    return Found(d, s, frame, checks)


def _tightened(problem: ServingProblem, screen: ServingProblem, first) -> ServingProblem | None:
    """``screen`` with each percentile target divided by that percentile's ratio to the mean at ``first`` (the
    cheapest candidate), or ``None`` when no target tightens."""
    try:
        s = serve_deployment(problem, first)
    except CostModelError:
        return None
    targets = {}
    for name, q in (("ttft", problem.ttft_percentile), ("tpot", problem.tpot_percentile)):
        target = getattr(screen, f"{name}_s")
        mean, tail = s.percentile(name, None), s.percentile(name, q) if q else None
        ratio = tail / mean if tail is not None and mean > 0 and math.isfinite(tail) else 1.0
        targets[name] = target if target is None or ratio <= 1 + 1e-9 else target / ratio
    if all(targets[n] == getattr(screen, f"{n}_s") for n in targets):
        return None
    return with_targets(screen, targets["ttft"], targets["tpot"])
