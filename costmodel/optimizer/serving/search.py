"""One mode of the serving problem solved by one method: the candidates, then the cheapest that
``cm.serve`` confirms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .candidates import Frame, ranked
from .exact import Deployment, confirm
from .exhaustive import exhaustive_frame
from .gradient import gradient_frame
from .problem import ServingProblem

__all__ = ["Found", "solve_mode"]


@dataclass(frozen=True)
class Found:
    """The confirmed deployment (``None`` if none), its ``cm.serve`` prediction, the evaluated candidates and
    the number of ``cm.serve`` calls."""

    deployment: Deployment | None
    prediction: Any
    frame: Frame
    checks: int


def solve_mode(problem: ServingProblem, mode: str, method: str) -> Found:
    """The cheapest confirmed deployment of ``mode`` (``"agg"`` or ``"disagg"``) by ``method``."""
    frame = exhaustive_frame(problem, mode) if method == "exhaustive" else gradient_frame(problem, mode)
    d, s, checks = confirm(problem, ranked(problem, mode, frame))
    return Found(d, s, frame, checks)
