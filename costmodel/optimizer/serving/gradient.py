"""The gradient path (placeholder: the exhaustive frame until the relaxation lands)."""

from __future__ import annotations

from .exhaustive import exhaustive_frame


def gradient_frame(problem, mode):
    return exhaustive_frame(problem, mode)
