"""The one place where SymPy meets JAX: expressions in, jittable functions out.

:func:`compiled` turns the symbolic outputs of a model structure into a pure
function of a dict of input arrays. Hardware, model and workload numbers stay
inputs, so one compile serves every model of a structure, ``vmap`` runs over
any input and ``grad`` gives d(output)/d(input) for free. Functions are cached
per (structure, rules).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import sympy as sp

from .errors import ConfigError
from .specs.model import ModelStructure
from .symbolic import Rules, outputs

__all__ = ["CompiledModel", "compiled", "compiled_serving", "source_of"]


class CompiledModel:
    """A jitted JAX function of the model's inputs, returning every output.

    Call it with a mapping ``{input name: array}``; extra names are ignored, so
    one input dict serves every structure. Inputs broadcast against each other.

    Attributes:
        input_names: names the function reads (the free symbols of its outputs).
        output_names: names of the returned arrays.
    """

    def __init__(self, structure: ModelStructure, rules: Rules, exprs: Mapping[str, sp.Expr] | None = None):
        self.structure, self.rules = structure, rules
        exprs = outputs(structure, rules) if exprs is None else exprs
        self.output_names = tuple(exprs)
        exprs = [sp.sympify(e) for e in exprs.values()]
        free = sorted(set().union(*(e.free_symbols for e in exprs)), key=lambda s: s.name)
        self.input_names = tuple(s.name for s in free)
        self._raw = sp.lambdify(free, exprs, modules="jax", cse=True)
        self._jit = jax.jit(self.raw)

    def _select(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ConfigError(f"missing model inputs: {', '.join(missing)}")
        return {n: inputs[n] for n in self.input_names}

    def raw(self, inputs: Mapping[str, Any]) -> dict[str, jax.Array]:
        """The un-jitted function (to compose under ``vmap``/``grad`` inside a larger ``jit``)."""
        vals = self._raw(*(jnp.asarray(v) for v in self._select(inputs).values()))
        return dict(zip(self.output_names, vals))

    def __call__(self, inputs: Mapping[str, Any]) -> dict[str, jax.Array]:
        return self._jit(self._select(inputs))

    def __repr__(self) -> str:
        return f"CompiledModel({self.structure}, {self.rules})"


@functools.cache
def compiled(structure: ModelStructure, rules: Rules = Rules()) -> CompiledModel:
    """The cached compiled model for ``structure`` under ``rules``."""
    return CompiledModel(structure, rules)


@functools.cache
def compiled_serving(structure: ModelStructure, rules: Rules = Rules()) -> CompiledModel:
    """The cached compiled serving closed forms (:func:`costmodel.symbolic.serving.serving_outputs`)."""
    from .symbolic.serving import serving_outputs

    return CompiledModel(structure, rules, serving_outputs(structure, rules))


def source_of(structure: ModelStructure, rules: Rules = Rules()) -> str:
    """The generated ``jax.numpy`` source (what JAX traces), for inspection."""
    import inspect

    return inspect.getsource(compiled(structure, rules)._raw)
