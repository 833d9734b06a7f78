"""The one place where SymPy meets JAX: expressions in, jittable functions out.

:func:`compiled` turns the symbolic outputs of a model structure into a pure
function of a dict of input arrays. Hardware, model and workload numbers stay
inputs, so one compile serves every model of a structure, ``vmap`` runs over
any input and ``grad`` gives d(output)/d(input) for free. Functions are cached
per (structure, rules).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from .cache import cached_source, configure_jax
from .errors import ConfigError
from .specs.model import ModelStructure
from .symbolic.rules import Rules

if TYPE_CHECKING:
    import sympy as sp

__all__ = ["CompiledModel", "compiled", "compiled_serving", "lambdified", "source_of"]


def _namespace(modules) -> dict[str, Any]:
    """The globals ``sympy.lambdify`` gives every function printed for ``modules``."""
    import sympy as sp

    return dict(sp.lambdify([], 0, modules=modules).__globals__)


#: where the code printers import names from (``printer.module_imports``)
_IMPORT_FROM = ("jax.numpy", "jax", "functools", "math", "numpy", "operator", "builtins")


def _same(a: Any, b: Any) -> bool:
    return a is b or (isinstance(a, float) and isinstance(b, float) and (a == b or a != a and b != b))


def _imports(fn: Callable, modules) -> list[list[str]] | None:
    """``[module, name]`` of each global the printer imported for this function alone (such as
    ``functools.reduce``), so that a cached source gets them back; ``None`` if one is not found."""
    import importlib

    import sympy as sp

    base, out = _namespace(modules), []
    for name, value in fn.__globals__.items():
        if name in base or name.startswith("__") or isinstance(value, sp.Basic):  # symbols: shadowed by arguments
            continue
        found = [m for m in _IMPORT_FROM if _same(getattr(importlib.import_module(m), name, None), value)]
        if not found:
            return None
        out.append([found[0], name])
    return out


def _globals_used(fn: Callable, modules) -> list[list[str]] | None:
    """``[module, name]`` of every global the generated function reads (``["", name]`` for one the
    caller's own mapping in ``modules`` provides), so that a cached source runs without SymPy;
    ``None`` if one is not found in :data:`_IMPORT_FROM` (the cached source then rebuilds the
    namespace with SymPy)."""
    import importlib

    own = {k for m in (modules if isinstance(modules, list) else [modules]) if isinstance(m, dict) for k in m}
    names, codes = [], [fn.__code__]
    while codes:  # the function's code and any nested in it (comprehensions)
        code = codes.pop()
        names += [n for n in code.co_names if n not in names]
        codes += [c for c in code.co_consts if hasattr(c, "co_names")]
    out = []
    for name in names:
        if name not in fn.__globals__:
            continue  # an attribute name, not a global
        if name in own:
            out.append(["", name])
            continue
        value = fn.__globals__[name]
        found = [m for m in _IMPORT_FROM if _same(getattr(importlib.import_module(m), name, None), value)]
        if not found:
            return None
        out.append([found[0], name])
    return out


def _function(entry: dict, modules) -> Callable:
    import importlib

    if entry.get("globals") is not None:  # every global the source reads, named: no SymPy needed
        own = {k: v for m in (modules if isinstance(modules, list) else [modules]) if isinstance(m, dict)
               for k, v in m.items()}
        namespace = {name: own[name] if module == "" else getattr(importlib.import_module(module), name)
                     for module, name in entry["globals"]}
    else:
        namespace = _namespace(modules)
        for module, name in entry["imports"]:
            namespace[name] = getattr(importlib.import_module(module), name)
    exec(compile(entry["source"], "<costmodel-generated>", "exec"), namespace)  # noqa: S102 - lambdify's own output
    return namespace["_lambdifygenerated"]


def lambdified(key: tuple | None, build: Callable[[], Mapping[str, sp.Expr]], modules
               ) -> tuple[Callable, tuple[str, ...], tuple[str, ...]]:
    """``sympy.lambdify`` of the expressions ``build()`` returns, through the persistent cache.

    The function takes the free symbols in name order and returns the outputs in ``build()``'s order.
    ``key`` (hashable, with a stable ``repr``: structure, rules, names) selects the cache entry
    (:mod:`costmodel.cache`); ``None`` builds without the cache. A cached entry runs the same source
    in the same namespace as a fresh build.

    Returns:
        ``(function, input names, output names, source)``.
    """
    configure_jax()

    def fresh() -> dict:
        import sympy as sp

        exprs = build()
        values = [sp.sympify(e) for e in exprs.values()]
        free = sorted(set().union(*(e.free_symbols for e in values)), key=lambda s: s.name)
        fn = sp.lambdify(free, values, modules=modules, cse=True)
        return {"source": inspect.getsource(fn), "imports": _imports(fn, modules),
                "globals": _globals_used(fn, modules), "inputs": [s.name for s in free],
                "outputs": list(exprs), "function": fn}

    def load(entry: dict):
        fn = entry["function"] if "function" in entry else _function(entry, modules)
        return fn, tuple(entry["inputs"]), tuple(entry["outputs"]), entry["source"]

    if key is None:
        return load(fresh())
    label = [m if isinstance(m, str) else sorted(m) for m in ([modules] if isinstance(modules, str) else modules)]
    return cached_source((repr(label),) + tuple(repr(k) for k in key), fresh, load)


class CompiledModel:
    """A jitted JAX function of the model's inputs, returning every output.

    Call it with a mapping ``{input name: array}``; extra names are ignored, so
    one input dict serves every structure. Inputs broadcast against each other.

    Attributes:
        input_names: names the function reads (the free symbols of its outputs).
        output_names: names of the returned arrays.
        source: the generated ``jax.numpy`` source of the function.
    """

    def __init__(self, structure: ModelStructure, rules: Rules, exprs: Mapping[str, sp.Expr] | None = None,
                 *, kind: str = "model"):
        self.structure, self.rules = structure, rules
        key = None if exprs is not None else (kind, structure, rules)  # given expressions: not cached
        if exprs is not None:
            build = lambda: exprs  # noqa: E731
        elif kind == "serving":
            from .symbolic.serving import serving_outputs

            build = functools.partial(serving_outputs, structure, rules)
        else:
            def build():
                from .symbolic import outputs  # SymPy: only when the expressions are built

                return outputs(structure, rules)
        self._raw, self.input_names, self.output_names, self.source = lambdified(key, build, "jax")
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

    @functools.cached_property
    def _packed_jit(self):
        def packed(v):
            outs = self._raw(*v)
            return jnp.stack([jnp.broadcast_to(jnp.asarray(o, v.dtype), v.shape[1:]) for o in outs])

        return jax.jit(packed)

    def packed(self, rows: np.ndarray) -> np.ndarray:
        """Outputs of packed inputs: ``rows[i]`` holds input ``input_names[i]`` (any trailing shape),
        row ``j`` of the result output ``output_names[j]``. One array in, one out: the least
        dispatch and transfer, for one configuration or a column of them."""
        return np.asarray(self._packed_jit(rows))

    def values(self, inputs: Mapping[str, Any]) -> dict[str, float]:
        """One configuration's outputs as Python floats (the fast path behind ``costmodel.predict``)."""
        x = self._select(inputs)
        return dict(zip(self.output_names, self.packed(np.array(list(x.values()), dtype=float)).tolist()))

    def __repr__(self) -> str:
        return f"CompiledModel({self.structure}, {self.rules})"


@functools.cache
def compiled(structure: ModelStructure, rules: Rules = Rules()) -> CompiledModel:
    """The cached compiled model for ``structure`` under ``rules``."""
    return CompiledModel(structure, rules)


@functools.cache
def compiled_serving(structure: ModelStructure, rules: Rules = Rules()) -> CompiledModel:
    """The cached compiled serving closed forms (:func:`costmodel.symbolic.serving.serving_outputs`)."""
    return CompiledModel(structure, rules, kind="serving")


def source_of(structure: ModelStructure, rules: Rules = Rules()) -> str:
    """The generated ``jax.numpy`` source (what JAX traces), for inspection."""
    return compiled(structure, rules).source
