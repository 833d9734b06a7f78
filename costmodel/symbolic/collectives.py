"""Collective communication costs (THEORY.md section 14), latency plus bandwidth.

Each function returns seconds for one collective over a group of ``group``
chips, given the bytes involved and the per-chip bandwidth. The fixed latency
``α`` is charged only when the group has more than one chip: ``min(1, group-1)``
is 0 at one chip and 1 from two chips on, with no branch to differentiate.
"""

from __future__ import annotations

import sympy as sp

from .symbols import sym

__all__ = [
    "link_bytes_per_s",
    "all_reduce_s",
    "all_gather_s",
    "reduce_scatter_s",
    "all_to_all_s",
    "point_to_point_s",
]


def _latency(group: sp.Expr) -> sp.Expr:
    return sp.Min(1, group - 1) * sym("collective_latency_s")


def link_bytes_per_s(span_chips: sp.Expr) -> sp.Expr:
    """Per-chip bandwidth for a collective spanning ``span_chips`` chips.

    Inside one scale-up domain (NVLink node, TPU pod) it is the scale-up
    bandwidth; beyond it, the per-chip share of the scale-out network. Both are
    scaled by the achievable fraction ``η_ici``.
    """
    up, out, domain, eff = sym("scale_up_bytes_per_s", "scale_out_bytes_per_s",
                               "scale_up_domain_chips", "comm_efficiency")
    return eff * sp.Piecewise((up, span_chips <= domain), (out, True))


def all_gather_s(out_bytes: sp.Expr, group: sp.Expr, bw: sp.Expr) -> sp.Expr:
    """All-gather producing ``out_bytes`` per chip: ``α + (n-1)/n · V/W`` [S]."""
    return _latency(group) + (group - 1) / group * out_bytes / bw


def reduce_scatter_s(in_bytes: sp.Expr, group: sp.Expr, bw: sp.Expr) -> sp.Expr:
    """Reduce-scatter of ``in_bytes`` per chip: same cost as an all-gather [S]."""
    return all_gather_s(in_bytes, group, bw)


def all_reduce_s(nbytes: sp.Expr, group: sp.Expr, bw: sp.Expr) -> sp.Expr:
    """All-reduce = reduce-scatter + all-gather: ``α + 2·(n-1)/n · V/W`` [S, E]."""
    return _latency(group) + 2 * (group - 1) / group * nbytes / bw


def all_to_all_s(nbytes: sp.Expr, group: sp.Expr, bw: sp.Expr) -> sp.Expr:
    """All-to-all of an array of ``nbytes`` spread over the group: ``α + V·(n-1)/(n²·W)`` [S]."""
    return _latency(group) + nbytes * (group - 1) / (group**2 * bw)


def point_to_point_s(nbytes: sp.Expr, bw: sp.Expr) -> sp.Expr:
    """One send of ``nbytes``: ``α + V/W``."""
    return sym("collective_latency_s") + nbytes / bw
