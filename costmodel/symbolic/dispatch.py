"""MoE dispatch and combine: the expert-parallel all-to-alls (docs/theory.md §5.5, §14).

Each MoE layer sends every token to its ``k`` routed experts (dispatch) and
brings the ``k`` outputs back (combine) across the ``n_ep`` expert-parallel
ranks. ``t`` tokens per layer are spread evenly, ``t/n_ep`` per rank; the
dispatch moves ``b_d`` bytes per element (fp8 in DeepEP), the combine ``b_a``.

* Inside one scale-up domain (``n_tp·n_ep <= n_up``): a flat all-to-all of
  ``t·k·D·b`` bytes over the ``n_ep`` ranks, as before.
* Across ``G = min(n_ep, n_tp·n_ep/n_up)`` domains: hierarchical
  (DeepSeek-V3 report, arXiv 2412.19437, section 3.2.2, and section 3.4.1
  for its 32-GPU prefill deployment; DeepEP's normal kernels).
  A token crosses the scale-out network once per distinct remote domain its
  experts land in, to the chip of the same local rank there, which forwards it
  over the scale-up links to the experts of that domain. With node-limited
  routing (section 2.1.2) a token's ``k`` experts come from ``m_g`` of the
  ``n_g`` expert groups, laid out in order over the ``G`` domains. With
  uniform routing (groups, then experts inside them), the expected number of
  distinct remote domains per token is ``R = (G-1)·P_hit``, ``P_hit`` the
  chance that a given domain receives at least one of the ``k`` experts:

  * a group spans ``G/n_g >= 1`` domains: the domain's group is chosen with
    probability ``m_g/n_g``, then each expert lands on it with probability
    ``n_g/(m_g·G)``: ``P_hit = (m_g/n_g)·(1 - (1 - n_g/(m_g·G))^k)``, exact
    (no limit, ``m_g = n_g = 1``: ``1 - (1 - 1/G)^k``);
  * a domain holds ``a = n_g/G > 1`` groups: it holds at least one chosen
    group with probability ``1 - C(n_g-a, m_g)/C(n_g, m_g) >= 1 - (1 -
    m_g/n_g)^a``, and a domain holding ``j >= 1`` chosen groups is hit with
    probability ``1 - (1 - j/m_g)^k >= 1 - (1 - 1/m_g)^k``:
    ``P_hit >= (1 - (1 - m_g/n_g)^a)·(1 - (1 - 1/m_g)^k)``, a lower bound
    (the two forms agree at ``G = n_g``).

  DeepSeek-V3 on 4 domains (2 of its 8 groups each, 4 chosen): R = 2.02,
  against 2.18 exactly and 2.70 without the node limit. The ``k`` experts are
  drawn independently (with replacement); real top-k picks distinct experts
  and spreads a little wider, so ``R`` errs low again: the safe side for a bound. Stage one sends
  ``t/n_ep·R·D·b`` bytes per chip over ``W_out``; stage two is an all-to-all
  of the ``k`` copies inside each domain of ``n_ep/G`` ranks over ``W_up``;
  the stages are pipelined and the slower one sets the time.
"""

from __future__ import annotations

import sympy as sp

from .collectives import all_to_all_s, hierarchical_all_to_all_s, span
from .symbols import sym

__all__ = ["domains_spanned", "remote_domains_per_token", "expert_parallel_s"]


def domains_spanned() -> sp.Expr:
    """``G``: scale-up domains the expert-parallel group spans, ``min(n_ep, n_tp·n_ep/n_up)`` (>= 1 beyond one)."""
    tp, ep, n_up = sym("tp", "ep", "scale_up_domain_chips")
    return sp.Min(ep, tp * ep / n_up)


def remote_domains_per_token(domains: sp.Expr) -> sp.Expr:
    """``R``: distinct remote domains a token's ``k`` experts land in, out of ``domains`` (exact or a lower bound)."""
    k, n_g, m_g = sym("experts_per_token", "n_expert_groups", "expert_groups_per_token")
    G = domains
    spans = m_g / n_g * (1 - (1 - n_g / (m_g * sp.Max(G, n_g))) ** k)      # a group spans >= 1 domain
    shares = (1 - (1 - m_g / n_g) ** sp.Max(1, n_g / G)) * (1 - (1 - 1 / m_g) ** k)  # a domain holds > 1 group
    # (the clamps change nothing where each branch applies; they keep the other finite to differentiate)
    return (G - 1) * sp.Piecewise((shares, G < n_g), (spans, True))


def expert_parallel_s(tokens: sp.Expr) -> sp.Expr:
    """Seconds per step of the dispatch and combine all-to-alls of all MoE layers, ``t = tokens`` per layer."""
    D, ba, bd, tp, ep, n_up, k, Lmoe = sym("d_model", "activation_bytes", "dispatch_bytes", "tp", "ep",
                                           "scale_up_domain_chips", "experts_per_token", "n_moe_layers")
    group = span((ep,), domain_chips=tp * ep)
    flat = sum(all_to_all_s(tokens * k * D * b, group) for b in (bd, ba))
    G = domains_spanned()
    per_domain = ep / G
    inside = span((per_domain,), domain_chips=tp * per_domain)
    R = remote_domains_per_token(G)
    hier = sum(hierarchical_all_to_all_s(tokens / ep * R * D * b, tokens / G * k * D * b, inside, group)
               for b in (bd, ba))
    return Lmoe * sp.Piecewise((flat, tp * ep <= n_up), (hier, True))
