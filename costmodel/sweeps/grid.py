"""Grid chunks as outer products, so work that depends on few axes is done once per value.

A chunk of a grid is a contiguous run of flat indices chosen to be an outer product: fixed values
of the leading axes ``0..s-1``, a block of ``m`` values of axis ``s`` and every value of the
trailing axes ``s+1..K-1`` (``m · prod(n_{s+1..K-1})`` configurations, in flat order). Each swept
axis enters the model along its own dimension (shape ``(1, .., n_k, .., 1)``), so broadcasting
forms the outer product and a term of ``tp`` alone (``tp**mesh_x_share``, say) is computed for the
few ``tp`` values, not once per configuration. Outputs leave at the shape of the axes they depend
on; the host broadcasts them for the rows it keeps. The block is sharded over the device mesh like the flat
index of :mod:`costmodel.sweeps.engine`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ..compile import compiled
from ..specs.model import ModelStructure
from ..symbolic import Rules
from .engine import _candidates, device_mesh, with_derived

__all__ = ["GridPlan", "grid_plan", "grid_chunks", "grid_function"]


class GridPlan(NamedTuple):
    """How a grid is cut into chunks."""

    split: int  #: the axis cut into blocks (earlier axes are fixed per chunk)
    block: int  #: values of the split axis per chunk
    padded: int  #: ``block`` rounded up to a multiple of the device count
    inner: int  #: configurations per value of the split axis (the trailing axes' product)


def grid_plan(sizes: tuple[int, ...], chunk_size: int, n_devices: int) -> GridPlan:
    """Split at the first axis whose trailing product fits ``chunk_size``; block as many of its values."""
    split = next(s for s in range(len(sizes)) if math.prod(sizes[s + 1:]) <= chunk_size or s == len(sizes) - 1)
    inner = math.prod(sizes[split + 1:])
    block = max(1, min(sizes[split], chunk_size // inner))
    return GridPlan(split, block, -(-block // n_devices) * n_devices, inner)


def grid_chunks(tables: list[np.ndarray], plan: GridPlan, dtype) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """``(leading values, block values padded, valid configurations)`` per chunk, in flat order."""
    s, m, pad, inner = plan
    lead_sizes = [len(t) for t in tables[:s]]
    axis = np.asarray(tables[s], dtype=dtype)
    for lead in range(math.prod(lead_sizes)):
        digits = np.unravel_index(lead, lead_sizes) if s else ()
        values = np.asarray([tables[k][d] for k, d in enumerate(digits)], dtype=dtype)
        for lo in range(0, len(axis), m):
            part = axis[lo:lo + m]
            yield values, np.concatenate([part, np.full(pad - len(part), part[-1], dtype=dtype)]), len(part) * inner


@functools.lru_cache(maxsize=64)
def grid_function(structure: ModelStructure, rules: Rules, names: tuple[str, ...], sizes: tuple[int, ...],
                  columns: tuple[str, ...], plan: GridPlan, dtype: str, devices: tuple | None = None,
                  frontier: str | None = None):
    """The compiled ``f(leading, block, consts, trailing_tables[, anchors]) -> {column: array}``.

    Columns are the swept inputs, then ``columns``; each has the shape of the axes it depends on
    (broadcastable to the chunk's ``(padded, n_{s+1}, ..., n_{K-1})``, flat order, dimension 0 always
    full): the host broadcasts it only for the rows it keeps, so a term no swept axis changes is
    neither recomputed nor written per configuration. ``_candidate`` (when ``frontier`` is set, as in
    :func:`costmodel.sweeps.engine.chunk_function`) is flat, ``padded · inner`` rows.
    """
    model = compiled(structure, rules)
    sharded = NamedSharding(device_mesh(devices), PartitionSpec("configs"))
    s, k = plan.split, len(sizes) - plan.split
    shape = (plan.padded, *sizes[s + 1:])
    lead_shape = (plan.padded,) + (1,) * (k - 1)

    def run(leading, block, consts, trailing):
        block = jax.lax.with_sharding_constraint(block, sharded)
        axes = (block, *trailing)
        x = consts | {names[i]: leading[i] for i in range(s)} | {  # axis i along dimension i: an outer product
            names[s + i]: v.reshape(tuple(-1 if j == i else 1 for j in range(k))) for i, v in enumerate(axes)}
        out = with_derived(model.raw({n: jnp.asarray(v, dtype) for n, v in x.items()}), columns)
        cols = {}
        for c, v in ({n: x[n] for n in names} | {c: out[c] for c in columns}).items():
            v = v if v.dtype == jnp.bool_ else v.astype(dtype)
            cols[c] = jnp.broadcast_to(v, jnp.broadcast_shapes(v.shape, lead_shape))
        return cols

    evaluate = jax.jit(run, out_shardings=sharded)
    if frontier is None:
        return evaluate

    # a second program: in one, XLA fuses the model into the per-configuration test, recomputing
    # it for every configuration (an optimisation barrier did not stop that on CPU)
    candidates = jax.jit(lambda cols, anchors: jnp.broadcast_to(_candidates(cols, frontier, anchors), shape)
                         .reshape(-1), out_shardings=sharded)

    def run_frontier(leading, block, consts, trailing, anchors):
        cols = evaluate(leading, block, consts, trailing)
        return cols | {"_candidate": candidates(cols, anchors)}

    return run_frontier
