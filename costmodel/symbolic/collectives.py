"""Collective communication costs (docs/theory.md §14): a latency term plus a bandwidth term.

A collective runs over a :class:`Span`: its group of ``n`` chips, the per-chip
bandwidth it sees and the number of latency steps of one pass. Two fabrics
share one formula, selected by the input ``is_torus`` (``τ``, 0 or 1), so one
compiled function serves GPUs and TPUs:

* switched fabric (NVLink/NVSwitch, then the scale-out network): bandwidth
  ``W`` is per-chip egress; a ring pass takes ``n-1`` steps. NCCL's LL
  all-reduce latency ``α + 2·(n-1)·α_step`` is ≈15 µs at ``n = 8`` with
  ``α = 6.8 µs``, ``α_step = 0.6 µs`` (docs/theory.md §5.5, [Ep]);
* torus (TPU ICI): ``W`` is the bidirectional bandwidth of ONE axis; a group
  spanning ``a`` axes sees ``a·W`` and a pass takes ``Σ min(X_i/2, X_i-1)``
  hops of ``α_step ≈ 1 µs`` ([S]).

Bandwidth terms, with ``V`` the bytes named by each function [S]:
all-gather and reduce-scatter ``(n-1)/n·V/W``; all-reduce twice that;
all-to-all ``(n-1)/n²·V/W`` on a switch and ``V/(4W)`` (all-gather/4) on a
bidirectional ring. Every term is 0 for a group of one chip and grows
linearly with ``V``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from .symbols import sym

__all__ = [
    "Span",
    "span",
    "link_bytes_per_s",
    "all_reduce_s",
    "all_gather_s",
    "reduce_scatter_s",
    "all_to_all_s",
    "point_to_point_s",
]


@dataclass(frozen=True)
class Span:
    """Where a collective runs.

    Attributes:
        chips: chips in the group (``n``).
        bytes_per_s: per-chip bandwidth the collective sees.
        steps: latency steps of one pass (ring steps on a switch, hops on a torus).
    """

    chips: sp.Expr
    bytes_per_s: sp.Expr
    steps: sp.Expr


def link_bytes_per_s(span_chips: sp.Expr) -> sp.Expr:
    """Per-chip bandwidth (per torus axis on a torus) for a group spanning ``span_chips`` chips.

    Inside one scale-up domain (NVLink node, TPU pod) it is the scale-up
    bandwidth; beyond it, the per-chip share of the scale-out network. Both are
    scaled by the achievable fraction ``η_ici``.
    """
    up, out, domain, eff = sym("scale_up_bytes_per_s", "scale_out_bytes_per_s",
                               "scale_up_domain_chips", "comm_efficiency")
    return eff * sp.Piecewise((up, span_chips <= domain), (out, True))


def _hops(extent: sp.Expr) -> sp.Expr:
    """Hops of one bidirectional ring pass over ``extent`` chips: ``min(X/2, X-1)`` (0 at one chip)."""
    return sp.Min(extent / 2, extent - 1)


def span(axes: Sequence[sp.Expr], domain_chips: sp.Expr | None = None) -> Span:
    """The span of a group laid along mesh axes of the given extents.

    Args:
        axes: extents (chips) of the mesh axes the group covers; the group has ``∏ axes`` chips.
        domain_chips: chips the traffic spans when deciding scale-up vs scale-out
            (default: the group itself).

    Returns:
        A :class:`Span`. On a torus the bandwidth is ``W·max(1, Σ min(1, X_i-1))``
        (axes longer than one chip add their links) and the steps are the hops;
        on a switch the bandwidth is ``W`` and the steps ``n-1``.
    """
    torus = sym("is_torus")
    chips = sp.Mul(*axes)
    n_axes = sp.Max(1, sp.Add(*(sp.Min(1, a - 1) for a in axes)))
    bw = link_bytes_per_s(chips if domain_chips is None else domain_chips) * (1 + torus * (n_axes - 1))
    steps = (1 - torus) * (chips - 1) + torus * sp.Add(*(_hops(a) for a in axes))
    return Span(chips, bw, steps)


def _as_span(group: sp.Expr | Span, bw: sp.Expr | None) -> Span:
    if isinstance(group, Span):
        return group
    return Span(group, bw, group - 1)


def _latency(s: Span, passes: int) -> sp.Expr:
    alpha, step = sym("collective_latency_s", "collective_step_latency_s")
    return sp.Min(1, s.chips - 1) * alpha + passes * s.steps * step


def all_gather_s(out_bytes: sp.Expr, group: sp.Expr | Span, bw: sp.Expr | None = None) -> sp.Expr:
    """All-gather producing ``out_bytes`` per chip: ``α + steps·α_step + (n-1)/n · V/W`` [S].

    ``group`` is a :class:`Span`, or a chip count with ``bw`` (a switched ring).
    """
    s = _as_span(group, bw)
    return _latency(s, 1) + (s.chips - 1) / s.chips * out_bytes / s.bytes_per_s


def reduce_scatter_s(in_bytes: sp.Expr, group: sp.Expr | Span, bw: sp.Expr | None = None) -> sp.Expr:
    """Reduce-scatter of ``in_bytes`` per chip: the cost of an all-gather [S]."""
    return all_gather_s(in_bytes, group, bw)


def all_reduce_s(nbytes: sp.Expr, group: sp.Expr | Span, bw: sp.Expr | None = None) -> sp.Expr:
    """All-reduce = reduce-scatter + all-gather: ``α + 2·steps·α_step + 2·(n-1)/n · V/W`` [S, E]."""
    s = _as_span(group, bw)
    return _latency(s, 2) + 2 * (s.chips - 1) / s.chips * nbytes / s.bytes_per_s


def all_to_all_s(nbytes: sp.Expr, group: sp.Expr | Span, bw: sp.Expr | None = None) -> sp.Expr:
    """All-to-all of an array of ``nbytes`` spread over the group (each chip holds ``V/n``).

    Switch: ``V·(n-1)/(n²·W)`` [S]. Torus (bidirectional ring): the all-gather
    of ``V`` divided by 4, ``(n-1)/n·V/(4W)`` [S]. Plus one pass of latency.
    """
    s = _as_span(group, bw)
    torus = sym("is_torus") if isinstance(group, Span) else 0
    per_byte = (1 - torus) / s.chips + torus / 4
    return _latency(s, 1) + (s.chips - 1) / s.chips * per_byte * nbytes / s.bytes_per_s


def point_to_point_s(nbytes: sp.Expr, bw: sp.Expr) -> sp.Expr:
    """One send of ``nbytes`` to a neighbour: ``α + α_step + V/W``."""
    return sym("collective_latency_s") + sym("collective_step_latency_s") + nbytes / bw
