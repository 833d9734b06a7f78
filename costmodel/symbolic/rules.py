"""Modelling rules: the discrete choices that select a formula (docs/theory.md §5.4-5.6)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Rules", "PHASES", "COMBINES", "COMM_OVERLAPS", "EXPERT_FETCHES", "LAYOUTS", "ATTENTION_SHARDINGS", "STEPS"]

PHASES = ("decode", "prefill")
COMBINES = ("max", "sum", "scaling-book")
COMM_OVERLAPS = ("none", "full")
EXPERT_FETCHES = ("expected", "all")
LAYOUTS = ("1d-ws", "2d-ws", "wg-x", "wg-xy", "wg-xyz")
ATTENTION_SHARDINGS = ("heads", "batch")
STEPS = ("roofline", "operators")


@dataclass(frozen=True)
class Rules:
    """How the roofline terms are combined; one compiled function per distinct value.

    Attributes:
        phase: ``"decode"`` (one token per sequence per step) or ``"prefill"``.
        combine: ``"max"``: ``max(T_comp, T_w + T_kv)`` ([R], [E]; the default);
            ``"sum"``: ``T_comp + T_w + T_kv`` (no overlap, an upper bound);
            ``"scaling-book"``: ``max(T_kv, T_comp,attn) + max(T_comp,matmul, T_w)`` ([S]'s
            ``T_kv + max(T_comp,matmul, T_w)``, with the attention FLOPs kept: they dominate in prefill).
        comm_overlap: ``"none"`` adds communication to the step; ``"full"``
            hides it under the roofline time: ``max(T_roof, T_comm)``.
        expert_fetch: ``"expected"`` streams the expected fraction of routed
            experts a step touches; ``"all"`` streams every expert ([R]).
        layout: how the tensor-parallel group of ``tp`` chips (a mesh
            ``X·Y·Z``) shards the layer weights (docs/theory.md §13.2, [E]):
            ``"1d-ws"`` 1D weight-stationary (Megatron: one all-reduce per
            block; the default); ``"2d-ws"`` 2D weight-stationary (weights
            ``E_x F_yz``); ``"wg-x"``, ``"wg-xy"``, ``"wg-xyz"`` weight-gathered
            over ``X``, ``X·Y`` or all ``X·Y·Z`` chips.
        attention_sharding: ``"heads"`` shards attention and the KV cache over
            heads (replicated past the KV heads: ``r_kv = max(1, tp/N_kv)``,
            MLA ``tp``); ``"batch"`` shards them over sequences (``r_kv = 1``)
            at the price of two all-to-alls per layer of the small Q and output
            tensors ([E]'s multiquery layout, docs/theory.md §13.3).
        step: ``"roofline"`` prices the step as one roofline of all its FLOPs and bytes
            (docs/theory.md §5); ``"operators"`` as the sum of the kernels an engine runs, each its
            own roofline with efficiencies that depend on its shape (§20; 1D weight-stationary
            layout, communication not overlapped, ``combine="max"`` within each kernel).
    """

    phase: str = "decode"
    combine: str = "max"
    comm_overlap: str = "none"
    expert_fetch: str = "expected"
    layout: str = "1d-ws"
    attention_sharding: str = "heads"
    step: str = "roofline"

    def __post_init__(self) -> None:
        for name, allowed in (("phase", PHASES), ("combine", COMBINES),
                              ("comm_overlap", COMM_OVERLAPS), ("expert_fetch", EXPERT_FETCHES),
                              ("layout", LAYOUTS), ("attention_sharding", ATTENTION_SHARDINGS),
                              ("step", STEPS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not allowed; choose one of {', '.join(allowed)}")
