"""HBM bytes per chip under a split (THEORY.md section 4.2).

Weights: non-expert parameters split ``tp·pp`` ways (replicated across expert
groups), routed experts split ``tp·pp·ep`` ways. KV: the whole batch's cache
split over stages, heads and expert groups, times the replication ``r_kv`` of
head-sharded attention past the KV heads. Pipelining divides weights per chip
but, at a fixed micro-batch, not KV per chip (THEORY.md 4.2): with the global
batch ``B = pp·b`` fixed, ``B/pp = b`` sequences' cache lands on each stage.
"""

from __future__ import annotations

import sympy as sp

from ..specs.model import ModelStructure
from . import architecture as arch
from .rules import Rules
from .step import microbatch
from .symbols import sym

__all__ = ["memory_terms"]


def memory_terms(st: ModelStructure, rules: Rules) -> dict[str, sp.Expr]:
    """Bytes per chip: ``weight_bytes_per_chip``, ``kv_bytes_per_chip``,
    ``activation_bytes_per_chip``, their sum ``memory_bytes_per_chip``, and
    ``usable_bytes_per_chip`` (``u·M``)."""
    B, S, T, tp, pp, ep = sym("batch", "context", "prompt", "tp", "pp", "ep")
    D, V, bw, ba, M, u = sym("d_model", "vocab_size", "weight_bytes", "activation_bytes",
                             "hbm_bytes", "memory_fraction")
    p = arch.param_counts(st)
    weights = bw * ((p.total - p.routed) / (tp * pp) + p.routed / (tp * pp * ep))
    cached = S if rules.phase == "decode" else T
    kv = B * cached * arch.kv_bytes_per_token(st) * arch.kv_heads_replication(st) / (tp * pp * ep)
    # live activations of one layer: residual stream in and out, plus fp32 logits
    seqs = microbatch(rules) / ep
    rows = seqs if rules.phase == "decode" else seqs * T
    act = rows * 2 * D * ba + seqs * V * 4 / tp
    return {
        "weight_bytes_per_chip": weights,
        "kv_bytes_per_chip": kv,
        "activation_bytes_per_chip": act,
        "memory_bytes_per_chip": weights + kv + act,
        "usable_bytes_per_chip": u * M,
    }
