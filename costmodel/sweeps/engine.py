"""The flat-index chunk evaluator behind random sweeps (grids use :mod:`costmodel.sweeps.grid`).

One chunk is ``chunk`` consecutive configurations ``start, start+1, ...``.
Their inputs are generated inside the jitted function from the flat index, so
a sweep of 10^8 configurations never holds 10^8 inputs. Axis ``k`` of
configuration ``i`` takes ``u``, the ``k``-th of the uniform numbers in [0, 1)
that ``jax.random`` draws for the key ``fold_in(key(seed), i)``, so a sample
depends on its index and the seed only, never on the chunk size or device
count. Uniform axes take ``low + u (high - low)``, log-uniform
``low (high/low)^u``, value lists the ``floor(u n)``-th value.

The index vector is sharded over a 1-D mesh of every JAX device
(``jax.sharding.NamedSharding``), so XLA splits each chunk across the devices
of one host or of a ``jax.distributed`` cluster. Inputs that are not swept are
traced scalars, so one compile serves every model and chip of a structure.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..compile import compiled
from ..pareto import minimised
from ..specs.model import ModelStructure
from ..symbolic import Rules, fits_in_memory

__all__ = ["chunk_function", "DERIVED", "device_mesh", "with_derived"]

#: outputs computed here from the model's outputs.
DERIVED = ("fits", "tokens_per_s_per_chip")


def with_derived(out: dict, columns: tuple[str, ...]) -> dict:
    """The model's outputs plus the :data:`DERIVED` ones among ``columns``."""
    if "fits" in columns:
        out["fits"] = fits_in_memory(out)
    if "tokens_per_s_per_chip" in columns:
        out["tokens_per_s_per_chip"] = out["tokens_per_s"] / out["chips"]
    return out


def device_mesh(devices: tuple | None = None) -> Mesh:
    """A 1-D mesh named ``"configs"`` over ``devices`` (default: every JAX device, all hosts)."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), ("configs",))


def _uniform(idx: jax.Array, seed: jax.Array, n_axes: int, dtype: Any) -> jax.Array:
    """``u`` in [0, 1), ``(len(idx), n_axes)``: row ``i`` from the seed and the index only."""
    key = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i), (n_axes,), dtype))(idx)


def _axis_values(idx, seed, kinds, sizes, tables, dtype) -> list[jax.Array]:
    """Each axis's values for the index vector (see the module docstring)."""
    vals, draws = [], _uniform(idx, seed, len(kinds), dtype)
    for k, (kind, table) in enumerate(zip(kinds, tables)):
        u = draws[:, k]
        if kind == "uniform":
            vals.append(table[0] + u * (table[1] - table[0]))
        elif kind == "log":
            vals.append(table[0] * jnp.exp(u * jnp.log(table[1] / table[0])))
        else:
            vals.append(table[jnp.minimum((u * sizes[k]).astype(jnp.int32), sizes[k] - 1)])
    return vals


def _candidates(cols: dict, frontier: str, anchors: jax.Array) -> jax.Array:
    """Feasible points with finite objectives that no anchor dominates (minimising both).

    ``anchors`` are frontier points (``inf``-padded); ``p`` is dominated by anchor ``a`` iff
    ``a_x <= x`` and ``a_y <= y`` and ``a`` is not ``p`` itself. Compared with each anchor in turn
    (elementwise, no gather), so the test fuses into one pass over the configurations.
    """
    x, y = minimised(frontier, cols)
    dominated = jnp.zeros((), jnp.bool_)
    for a in range(anchors.shape[1]):
        ax, ay = anchors[0, a], anchors[1, a]
        dominated = dominated | ((ax <= x) & (ay <= y) & ((ax < x) | (ay < y)))
    return cols["fits"] & jnp.isfinite(x) & jnp.isfinite(y) & ~dominated


@functools.lru_cache(maxsize=64)
def chunk_function(structure: ModelStructure, rules: Rules, names: tuple[str, ...], kinds: tuple[str, ...],
                   sizes: tuple[int, ...], columns: tuple[str, ...], chunk: int, dtype: str,
                   devices: tuple | None = None, frontier: str | None = None):
    """The jitted ``f(start, seed, consts, tables[, anchors]) -> {column: array[chunk]}`` for one sweep layout.

    Args:
        structure, rules: select the compiled model.
        names: swept input names; kinds: ``"uniform"``, ``"log"`` or ``"choice"`` per axis;
            sizes: number of values per axis.
        columns: the model outputs (or :data:`DERIVED` names) to return, besides the swept inputs.
        chunk: configurations per call (a multiple of the device count).
        dtype: ``"float32"`` or ``"float64"`` (the latter needs x64 enabled while tracing).
        devices: the devices to shard over (default all).
        frontier: a name in :data:`costmodel.pareto.FRONTIERS`: the function then takes
            ``anchors``, a ``(2, A)`` array of points of the running frontier sorted by the
            first objective (signed for minimisation, ``inf``-padded), and adds a column ``_candidate``:
            feasible and dominated by no anchor. Exact as a pre-filter, since a
            point an anchor dominates is off the frontier.

    Returns:
        A jitted function; ``start`` is the flat index of the chunk's first configuration,
        ``seed`` a uint32, ``consts`` the non-swept inputs (scalars) and ``tables``
        the axis values (grid, choice) or ``(low, high)`` pairs.
    """
    model = compiled(structure, rules)
    mesh = device_mesh(devices)
    sharded = NamedSharding(mesh, PartitionSpec("configs"))
    want = [c for c in columns if c not in DERIVED]

    def run(start, seed, consts, tables, anchors=None):
        idx = start + jnp.arange(chunk, dtype=jnp.int32)
        idx = jax.lax.with_sharding_constraint(idx, sharded)
        x = {k: jnp.asarray(v, dtype) for k, v in consts.items()}
        swept = dict(zip(names, _axis_values(idx, seed, kinds, sizes, tables, dtype)))
        out = with_derived(model.raw(x | swept), columns)
        cols = {n: swept[n] for n in names}
        for c in want + [c for c in DERIVED if c in columns]:
            v = out[c]
            cols[c] = jnp.broadcast_to(v if v.dtype == jnp.bool_ else v.astype(dtype), idx.shape)
        if frontier is not None:
            cols["_candidate"] = _candidates(cols, frontier, anchors)
        return cols

    return jax.jit(run, out_shardings=sharded)
