"""Tensor-parallel layouts of Pope et al. 2022 ([E]; docs/theory.md §13.2-13.3) and their communication.

The tensor-parallel group of ``n = tp`` chips is a mesh ``X × Y × Z`` with
``X = tp^ξ_x``, ``Y = tp^ξ_y`` and ``Z = tp/(X·Y)`` (inputs ``mesh_x_share``,
``mesh_y_share``; 4x4x4 of 64 chips is ``ξ_x = ξ_y = 1/3``). The degree ``tp``
drives the mesh: scaling ``tp`` scales every axis, the axes always multiply
to ``tp`` and stay ``>= 1``, and everything stays differentiable in ``tp``. ``t`` is the number of tokens one
expert group pushes through a layer in a step, ``n_AR`` the blocks per layer
(1 parallel, 2 serial), ``b_a``/``b_w`` bytes per activation/weight. Per layer,
per block:

* ``1d-ws`` (Megatron): one all-reduce of ``t·D·b_a`` over the mesh.
* ``2d-ws`` (weights ``E_x F_yz``): all-gather and reduce-scatter of ``t·D·b_a/X``
  over ``YZ`` and of ``t·F·b_a/(YZ)`` over ``X``: ``≈ 2·t·(D/X + F/(YZ))·b_a/W``.
* ``wg-N`` for ``N ∈ {X, XY, XYZ}`` chips: all-gather of the layer's weights,
  ``P_ℓ·b_w·N/n`` bytes per chip, over the ``N`` group (once per layer), and
  ``2·t·D·b_a/N`` of activations over the other ``n/N`` chips:
  ``≈ [P_ℓ·b_w·N/n + 2·t·D·b_a/N]/W`` ([E] writes ``2·E·F`` for ``P_ℓ``).

Batch-sharded attention adds, in decode, two all-to-alls per layer over the
mesh, of the query (with the new K/V) and of the attention output.
"""

from __future__ import annotations

import sympy as sp

from ..specs.model import ModelStructure
from . import architecture as arch
from .collectives import all_gather_s, all_reduce_s, all_to_all_s, span
from .rules import Rules
from .symbols import sym

__all__ = ["mesh_axes", "gathered_chips", "tensor_parallel_s", "attention_resharding_s"]

# mesh axes gathered over (N) by each weight-gathered layout, and the rest
_GATHERED = {"wg-x": (0,), "wg-xy": (0, 1), "wg-xyz": (0, 1, 2)}


def mesh_axes() -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """``(X, Y, Z)`` of the tensor-parallel mesh: ``tp^ξ_x``, ``tp^ξ_y``, ``tp^(1-ξ_x-ξ_y)``."""
    xs, ys, tp = sym("mesh_x_share", "mesh_y_share", "tp")
    return tp**xs, tp**ys, tp ** (1 - xs - ys)


def gathered_chips(rules: Rules) -> sp.Expr:
    """``N``: chips a weight-gathered layout gathers weights over (1 for weight-stationary layouts)."""
    if rules.layout not in _GATHERED:
        return sp.Integer(1)
    axes = mesh_axes()
    return sp.Mul(*(axes[i] for i in _GATHERED[rules.layout]))


def _span(axes: tuple[sp.Expr, ...]):
    return span(axes, domain_chips=sym("tp"))


def tensor_parallel_s(st: ModelStructure, rules: Rules, tokens: sp.Expr) -> sp.Expr:
    """Seconds per step of the layout's collectives, all layers, for ``tokens`` tokens per layer."""
    L, D, ba, bw, nar = sym("n_layers", "d_model", "activation_bytes", "weight_bytes", "allreduces_per_layer")
    X, Y, Z = axes = mesh_axes()
    act = tokens * D * ba
    if rules.layout == "1d-ws":
        return L * nar * all_reduce_s(act, _span(axes))
    if rules.layout == "2d-ws":
        hidden = tokens * arch.layer_hidden_width(st) * ba / (Y * Z)
        block = 2 * all_gather_s(act / X, _span((Y, Z))) + 2 * all_gather_s(hidden, _span((X,)))
        return L * nar * block
    inner = tuple(axes[i] for i in _GATHERED[rules.layout])
    outer = tuple(a for i, a in enumerate(axes) if i not in _GATHERED[rules.layout])
    N = sp.Mul(*inner)
    p = arch.param_counts(st)
    layer_params = (p.nonrouted_fetch - sym("vocab_size") * D) / L
    gather = all_gather_s(layer_params * bw * N / sym("tp"), _span(inner))
    acts = 2 * nar * all_gather_s(act / N, _span(outer)) if outer else 0
    return L * (gather + acts)


def attention_resharding_s(st: ModelStructure, rules: Rules, tokens: sp.Expr) -> sp.Expr:
    """Seconds per step of batch-sharded attention's two all-to-alls per layer.

    Decode only: prefill computes attention head-sharded (its KV reads are
    amortised over the prompt, [E]) and each chip keeps the cache of its own
    sequences, so storing it batch-sharded moves nothing. 0 when head-sharded.
    """
    if rules.attention_sharding != "batch" or rules.phase != "decode":
        return sp.Integer(0)
    L, ba = sym("n_layers", "activation_bytes")
    q_in, out = arch.attention_io_width(st)
    s = _span(mesh_axes())
    return L * (all_to_all_s(tokens * q_in * ba, s) + all_to_all_s(tokens * out * ba, s))
