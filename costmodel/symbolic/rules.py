"""Modelling rules: the discrete choices that select a formula (THEORY.md 5.4-5.6)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Rules", "PHASES", "COMBINES", "COMM_OVERLAPS", "EXPERT_FETCHES"]

PHASES = ("decode", "prefill")
COMBINES = ("max", "sum", "scaling-book")
COMM_OVERLAPS = ("none", "full")
EXPERT_FETCHES = ("expected", "all")


@dataclass(frozen=True)
class Rules:
    """How the roofline terms are combined; one compiled function per distinct value.

    Attributes:
        phase: ``"decode"`` (one token per sequence per step) or ``"prefill"``.
        combine: ``"max"``: ``max(T_comp, T_w + T_kv)`` ([R], [E]; the default);
            ``"sum"``: ``T_comp + T_w + T_kv`` (no overlap, an upper bound);
            ``"scaling-book"``: ``T_kv + max(T_comp,matmul, T_w)`` ([S]).
        comm_overlap: ``"none"`` adds communication to the step; ``"full"``
            hides it under the roofline time: ``max(T_roof, T_comm)``.
        expert_fetch: ``"expected"`` streams the expected fraction of routed
            experts a step touches; ``"all"`` streams every expert ([R]).
    """

    phase: str = "decode"
    combine: str = "max"
    comm_overlap: str = "none"
    expert_fetch: str = "expected"

    def __post_init__(self) -> None:
        for name, allowed in (("phase", PHASES), ("combine", COMBINES),
                              ("comm_overlap", COMM_OVERLAPS), ("expert_fetch", EXPERT_FETCHES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not allowed; choose one of {', '.join(allowed)}")
