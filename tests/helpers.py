"""Shared test helpers: evaluate the SymPy expressions independently of JAX, as an oracle; the environment of a
fresh process with its own caches."""

import functools
import os
from pathlib import Path

import mpmath
import sympy as sp

from costmodel.symbolic import outputs


@functools.cache
def _mpmath_fn(structure, rules):
    exprs = outputs(structure, rules)
    free = sorted(set().union(*(sp.sympify(e).free_symbols for e in exprs.values())), key=lambda s: s.name)
    return tuple(exprs), tuple(s.name for s in free), sp.lambdify(free, list(exprs.values()), modules="mpmath")


def sympy_values(structure, rules, inputs):
    """The symbolic outputs at ``inputs``, evaluated in 40-digit arithmetic by mpmath."""
    names, args, fn = _mpmath_fn(structure, rules)
    with mpmath.workdps(40):
        vals = fn(*(mpmath.mpf(float(inputs[a])) for a in args))
        return {k: float(v) for k, v in zip(names, vals)}


def env_with_cache(folder) -> dict[str, str]:
    """The environment of a fresh ``costmodel`` process (this checkout on its path) whose caches are on and in
    ``folder``."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "COSTMODEL_CACHE_DIR": str(folder)}
    env.pop("COSTMODEL_NO_CACHE", None)
    return env
