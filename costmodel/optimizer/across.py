"""The same problem on several chips, ranked by cost (``costmodel optimize --hardware a,b,c``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError

__all__ = ["compare_hardware", "hardware_list", "rank_key"]


def hardware_list(hardware: str | Sequence[str]) -> list[str]:
    """Chip names from a list or a comma-separated string, in order, each once."""
    names = hardware.split(",") if isinstance(hardware, str) else list(hardware)
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(f"hardware must be chip names (a list or 'a,b,c'), got {hardware!r:.80}")
    out = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not out:
        raise ConfigError("hardware names no chip; give one or more catalog names, e.g. 'h100-sxm,h200'")
    return out


def rank_key(feasible: bool, usd_per_mtok: float | None, chips_needed: int | None = None) -> tuple:
    """Feasible answers first, cheapest first; then the infeasible, fewest chips needed first."""
    if feasible:
        return (0, usd_per_mtok, 0)
    return (1, float("inf"), chips_needed if chips_needed is not None else float("inf"))


def compare_hardware(solve: Callable[..., Any], model, hardware: str | Sequence[str], **kwargs) -> list[tuple[str, Any]]:
    """``solve(model, chip, **kwargs)`` on each chip (``cm.optimize`` or ``cm.optimize_serving``), as
    ``[(chip, solution), ...]`` ranked by :func:`rank_key`: the cheapest feasible chip first.

    Example:
        >>> import costmodel as cm
        >>> ranked = cm.compare_hardware(cm.optimize, "llama-3-8b", "h100-sxm,h200", tpot_s=0.02, max_chips=8)
        >>> [chip for chip, _ in ranked] and ranked[0][1].feasible
        True
    """
    answers = [(chip, solve(model, chip, **kwargs)) for chip in hardware_list(hardware)]
    return sorted(answers, key=lambda a: rank_key(a[1].feasible, a[1].usd_per_mtok, getattr(a[1], "min_chips_needed", None)))
