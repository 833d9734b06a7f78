"""Smooth relaxations of the model for gradient-based optimisation.

The exact model has kinks: ``Max`` (the roofline), ``Min`` (latency charged
from two chips on) and ``Piecewise`` (scale-up versus scale-out bandwidth).
Gradients through them are zero or undefined on one side, so the optimiser
works on a relaxed copy where each is replaced by a smooth function whose
sharpness ``k`` is an input, annealed towards the exact model:

* ``max(a, b)`` -> the p-norm ``(a^k + b^k)^(1/k)``, computed in log space as
  ``exp(logsumexp(k·log a, k·log b)/k)``: ``k = 1`` is the sum (the roofline's
  upper bound), ``k -> ∞`` the max (its lower bound). It over-estimates the max
  by at most a factor ``n^(1/k)``.
* ``min(a, b)`` -> ``(a^-k + b^-k)^(-1/k)``; arguments are floored at a tiny
  positive number so ``min(1, tp - 1)`` at ``tp = 1`` has a finite gradient.
* ``Piecewise((x, u <= v), (y, True))`` -> ``σ(k·(log(v/u) + ½·log 2))·x + (1 - σ)·y``.

Answers are always re-evaluated with the exact model; the relaxation only
steers the search.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from .compile import lambdified
from .specs.model import ModelStructure
from .symbolic.rules import Rules

if TYPE_CHECKING:
    import sympy as sp

__all__ = ["relax_expr", "RelaxedModel", "relaxed", "SHARPNESS"]

SHARPNESS = "sharpness"
_TINY = 1e-30
_HALF_OCTAVE = 0.5 * math.log(2.0)


@functools.cache
def _smooth_functions():
    """The undefined SymPy functions ``smooth_max``, ``smooth_min`` and ``smooth_select`` (made on first
    use: a start from cached programs never imports SymPy); :data:`_MODULE` implements them in JAX."""
    import sympy as sp

    return sp.Function("smooth_max"), sp.Function("smooth_min"), sp.Function("smooth_select")


def _log(x):
    return jnp.log(jnp.maximum(x, _TINY))


def _smooth_max(*args_and_k):
    *args, k = args_and_k
    logs = jnp.stack(jnp.broadcast_arrays(*[_log(a) for a in args]))
    return jnp.exp(jax.nn.logsumexp(k * logs, axis=0) / k)


def _smooth_min(*args_and_k):
    *args, k = args_and_k
    logs = jnp.stack(jnp.broadcast_arrays(*[_log(a) for a in args]))
    return jnp.exp(-jax.nn.logsumexp(-k * logs, axis=0) / k)


def _smooth_select(x, y, small, large, k):
    """``x`` where ``small <= large``, else ``y``, blended by a sigmoid of the log ratio.

    The switch sits half an octave past the boundary: conditions such as
    ``tp <= scale_up_domain_chips`` hold with equality at admissible points
    (tp = 8 on an 8-GPU node), where an unshifted sigmoid would give 1/2 at any sharpness.
    """
    w = jax.nn.sigmoid(k * (_log(large) - _log(small) + _HALF_OCTAVE))
    return w * x + (1 - w) * y


_MODULE = {"smooth_max": _smooth_max, "smooth_min": _smooth_min, "smooth_select": _smooth_select}


def relax_expr(expr: sp.Expr, k: sp.Symbol) -> sp.Expr:
    """Replace every ``Max``, ``Min`` and two-branch ``Piecewise`` in ``expr`` by its smooth form."""
    import sympy as sp

    if not expr.args:
        return expr
    args = [relax_expr(a, k) for a in expr.args]
    smax, smin, _ = _smooth_functions()
    if isinstance(expr, sp.Max):
        return smax(*args, k)
    if isinstance(expr, sp.Min):
        return smin(*args, k)
    if isinstance(expr, sp.Piecewise):
        return _relax_piecewise(expr, k)
    return expr.func(*args)


def _relax_piecewise(expr: sp.Piecewise, k: sp.Symbol) -> sp.Expr:
    import sympy as sp

    ok = len(expr.args) == 2 and expr.args[1][1] is sp.true
    (x, cond), (y, _) = expr.args if ok else ((None, None), (None, None))
    if not (ok and isinstance(cond, sp.core.relational.Relational)):
        raise NotImplementedError(f"cannot relax {expr}: expected Piecewise((x, a <= b), (y, True))")
    small, large = (cond.lhs, cond.rhs) if isinstance(cond, (sp.LessThan, sp.StrictLessThan)) else (cond.rhs, cond.lhs)
    return _smooth_functions()[2](relax_expr(x, k), relax_expr(y, k), relax_expr(small, k), relax_expr(large, k), k)


class RelaxedModel:
    """The relaxed model: like :class:`~costmodel.compile.CompiledModel`, plus a ``sharpness`` input."""

    def __init__(self, structure: ModelStructure, rules: Rules, names: tuple[str, ...] | None = None):
        def build():  # SymPy: only when the expressions are built
            import sympy as sp

            from .symbolic import outputs

            k = sp.Symbol(SHARPNESS, positive=True)
            exprs = outputs(structure, rules)
            return {n: relax_expr(sp.sympify(exprs[n]), k) for n in (names or exprs)}

        self._fn, self.input_names, self.output_names, self.source = lambdified(
            ("relaxed", structure, rules, names), build, [_MODULE, "jax"])

    def raw(self, inputs) -> dict[str, jax.Array]:
        """Evaluate (un-jitted, for use inside ``grad``/``vmap``/``jit``)."""
        vals = self._fn(*(inputs[n] for n in self.input_names))
        return dict(zip(self.output_names, vals))


@functools.cache
def relaxed(structure: ModelStructure, rules: Rules = Rules(), names: tuple[str, ...] | None = None) -> RelaxedModel:
    """The cached relaxed model for ``structure`` under ``rules``, restricted to ``names`` if given."""
    return RelaxedModel(structure, rules, names)
