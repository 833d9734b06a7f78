"""``sweep``: evaluate a grid or a random sample of configurations in chunks."""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ..compile import compiled
from ..config import DEFAULT_EFFICIENCY, Efficiency, Parallel, Precision, Workload
from ..errors import ConfigError
from ..inputs import scenario
from ..parallel import check_parallel
from ..specs import HardwareSpec, ModelSpec
from ..specs.model import ModelStructure
from ..symbolic import Rules
from ..symbolic.derived import OUTPUT_UNITS
from .axes import LogUniform, Uniform, Values, as_axis
from .engine import DERIVED, chunk_function, device_mesh
from .grid import grid_chunks, grid_function, grid_plan
from .progress import Progress
from .reduce import make_reducer
from .result import SweepResult

__all__ = ["sweep", "DEFAULT_OUTPUTS"]

DEFAULT_OUTPUTS = ("step_time_s", "usd_per_mtok", "tokens_per_s", "tokens_per_s_per_user",
                   "memory_bytes_per_chip", "fits")
_SPLIT = ("tp", "pp", "ep", "replicas")
_MAX_INDEX = 2**31 - 1  # the flat index is an int32 inside the jitted chunk
_ANCHORS = 8  # frontier points the device pre-filter compares each configuration with


@dataclass(frozen=True)
class _Layout:
    """What one group's compiled chunk function is specialised to."""

    structure: ModelStructure
    rules: Rules
    names: tuple[str, ...]  #: swept inputs, in axis order
    sizes: tuple[int, ...]  #: values per axis (2 for a distribution: its low and high)
    columns: tuple[str, ...]  #: outputs to return
    dtype: str
    devices: tuple | None
    pareto: str | None  #: the frontier the device pre-filter keeps, if any


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _resolve_axes(axes: Mapping[str, object] | None, samples: int | None) -> tuple[dict, tuple[str, ...]]:
    if not axes:
        raise ConfigError("a sweep needs at least one axis, e.g. axes={'batch': [1, 8, 64]}")
    resolved = {name: as_axis(name, spec) for name, spec in axes.items()}
    if samples is None:
        bad = [n for n, a in resolved.items() if not isinstance(a, Values)]
        if bad:
            raise ConfigError(f"axes {', '.join(bad)} are distributions; pass samples=N for a random sweep "
                              "or give value lists for a grid")
        kinds = ("grid",) * len(resolved)
    else:
        if not (isinstance(samples, int) and 1 <= samples <= _MAX_INDEX):
            raise ConfigError(f"samples must be a whole number in [1, {_MAX_INDEX}], got {samples!r}")
        kinds = tuple({Uniform: "uniform", LogUniform: "log", Values: "choice"}[type(a)]
                      for a in resolved.values())
    for name in _SPLIT:
        a = resolved.get(name)
        if a is not None and not (isinstance(a, Values) and all(float(v).is_integer() for v in a.values)):
            raise ConfigError(f"{name} must be swept over whole numbers, e.g. {name}=[1, 2, 4, 8]; got {a}")
    return resolved, kinds


def _check_split(sc, parallel: Parallel, axes: dict) -> None:
    """Every combination of swept split degrees must be valid for the model."""
    names = [n for n in _SPLIT if n in axes]
    for combo in itertools.product(*(axes[n].values for n in names)):
        fields = {n: getattr(parallel, n) for n in _SPLIT} | {n: int(v) for n, v in zip(names, combo)}
        check_parallel(sc.model, Parallel(**fields))


def _check_outputs(outputs: Sequence[str]) -> None:
    allowed = set(OUTPUT_UNITS) | set(DERIVED)
    bad = [o for o in outputs if o not in allowed]
    if bad:
        raise ConfigError(f"unknown output(s) {', '.join(bad)}; choose from {', '.join(sorted(allowed))}")


def _dtype_context(dtype: str | None):
    x64 = bool(jax.config.jax_enable_x64)
    dtype = dtype or ("float64" if x64 else "float32")
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    ctx = jax.enable_x64(True) if dtype == "float64" and not x64 else contextlib.nullcontext()
    return dtype, ctx


@functools.lru_cache(maxsize=16)
def _sharding(devices: tuple | None, *spec: str) -> NamedSharding:
    return NamedSharding(device_mesh(devices), PartitionSpec(*spec))


def _placed(tree, devices: tuple | None, *spec: str):
    """``tree`` on the sweep's devices, replicated (or split along ``spec``), so that a call does not
    copy every argument to every device again; left to ``jit`` across several hosts."""
    return tree if jax.process_count() > 1 else jax.device_put(tree, _sharding(devices, *spec))


def _to_host(a: jax.Array) -> np.ndarray:
    if jax.process_count() > 1:  # gather every host's shards (jax.distributed)
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)


def sweep(model: str | ModelSpec | Sequence, hardware: str | HardwareSpec | Sequence,
          axes: Mapping[str, object] | None = None, *, samples: int | None = None, seed: int = 0,
          workload: Workload = Workload(), parallel: Parallel = Parallel(),
          precision: Precision | Sequence[Precision] = Precision(), efficiency: Efficiency | str = DEFAULT_EFFICIENCY,
          usd_per_chip_hour: float | None = None, rules: Rules | None = None,
          outputs: Sequence[str] = DEFAULT_OUTPUTS, pareto: str | None = None,
          top_k: tuple[str, int] | None = None, chunk_size: int = 1 << 16, dtype: str | None = None,
          devices: Sequence | None = None, progress: bool | None = None, max_rows: int = 50_000_000) -> SweepResult:
    r"""Evaluate every configuration of a grid, or a seeded random sample, with the compiled model.

    Each (model, chip, precision) group fixes a model structure and one compiled
    function; swept inputs override the group's :meth:`Scenario.inputs`. A grid is
    the cartesian product of the axes (``N = \prod_k n_k`` configurations, the
    last axis varying fastest); a random sweep draws ``samples`` configurations.
    Chunks of ``chunk_size`` run on every JAX device (sharded) and can be reduced
    on the fly to a Pareto frontier or a top-k, so memory stays bounded.

    Args:
        model: a catalog name, ``config.json`` path or spec, or a list of them.
        hardware: a catalog chip name or spec, or a list of them (one group per
            model, chip and precision).
        axes: input name -> values (a list or array) for a grid, or for ``samples``
            also :class:`Uniform` / :class:`LogUniform`. Names are the model's inputs
            (``batch``, ``context``, ``tp``, ``hbm_bytes_per_s``, ``usd_per_chip_hour`` ...).
        samples: draw this many random configurations per group instead of a grid.
        seed: random seed; a sample depends only on its index and the seed.
        workload: the base workload (swept inputs override it).
        parallel: the base split.
        precision: the formats, or a list of them (one group each).
        efficiency: achievable fractions of peak.
        usd_per_chip_hour: price override (default: each chip's catalog price).
        rules: how terms combine (default: the workload's phase).
        outputs: output columns; also ``fits`` and ``tokens_per_s_per_chip``.
        pareto: keep only the exact frontier, ``"cost-latency"`` or ``"throughput-interactivity"``.
        top_k: ``(column, k)``: keep the ``k`` feasible rows with the smallest ``column``.
        chunk_size: configurations per device call (rounded up to a multiple of the device count).
        dtype: ``"float32"`` or ``"float64"`` (default: JAX's default float; float64 is enabled
            locally with ``jax.enable_x64`` without touching the global config).
        devices: devices to shard over (default: every JAX device).
        progress: show a progress bar (tqdm if installed) on stderr; default: for sweeps of a
            million configurations or more.
        max_rows: refuse an unreduced sweep with more rows than this (pass ``pareto`` or ``top_k``).

    Returns:
        A :class:`SweepResult` (columns: group labels, the swept inputs, the outputs).

    Raises:
        ConfigError: no axes, an unknown axis or output, a bad value or split, an oversized sweep.

    Example:
        >>> r = sweep("llama-3-8b", "h100-sxm", {"batch": [1, 8, 64], "context": [2048, 8192]},
        ...           progress=False)
        >>> len(r), r.names[3:5]
        (6, ['batch', 'context'])
    """
    t0 = time.perf_counter()
    axes, kinds = _resolve_axes(axes, samples)
    names, outputs = tuple(axes), tuple(dict.fromkeys(outputs))
    _check_outputs(outputs)
    if pareto is not None and top_k is not None:
        raise ConfigError("choose one reduction: pareto or top_k, not both")
    reducer, need = make_reducer(pareto, top_k)
    columns = tuple(dict.fromkeys((*outputs, *need)))
    _check_outputs(columns)
    rules = rules or Rules(phase=workload.phase)
    per_group = samples if samples is not None else math.prod(len(a) for a in axes.values())
    if per_group > _MAX_INDEX:
        raise ConfigError(f"a grid of {per_group:,} configurations exceeds {_MAX_INDEX:,} per group; "
                          "split the sweep or use samples=N")
    groups = list(itertools.product(_as_list(model), _as_list(hardware), _as_list(precision)))
    if reducer is None and per_group * len(groups) > max_rows:
        raise ConfigError(f"{per_group * len(groups):,} rows exceed max_rows={max_rows:,}; keep only the "
                          "frontier (pareto=...) or the best rows (top_k=...), or raise max_rows")
    devices = tuple(devices) if devices is not None else None
    n_dev = len(devices) if devices is not None else jax.device_count()
    dtype, x64 = _dtype_context(dtype)
    scenarios = [_group_scenario(m, h, prec, workload, parallel, efficiency, usd_per_chip_hour, axes, rules)
                 for m, h, prec in groups]  # validate every group before evaluating any
    total = per_group * len(groups)
    bar = Progress(total, enabled=total >= 1_000_000 if progress is None else progress)
    labels = [{"model": sc.model.name, "hardware": sc.hardware.name, "precision": sc.weights} for sc in scenarios]
    sizes = tuple(len(a) if isinstance(a, Values) else 2 for a in axes.values())
    order = (*names, *(c for c in columns if c not in names), *(("_candidate",) if pareto else ()))
    if samples is None:
        plan = grid_plan(sizes, max(1, chunk_size), n_dev)
        chunk = plan.padded * plan.inner
    else:
        chunk = -(-max(1, min(chunk_size, per_group)) // n_dev) * n_dev
    parts = []
    try:
        with x64:
            for g, sc in enumerate(scenarios):
                base = sc.inputs()
                names_in = compiled(sc.model.structure, rules).input_names
                consts = _placed({k: jnp.asarray(base[k], dtype) for k in names_in if k not in axes}, devices)
                layout = _Layout(sc.model.structure, rules, names, sizes, columns, dtype, devices, pareto)
                calls = _grid_calls(layout, plan, axes) if samples is None else \
                    _random_calls(layout, kinds, chunk, per_group, axes, seed)
                pending = None
                for fn, pre, post, n, shape in calls:
                    extra = () if pareto is None else (jnp.asarray(reducer.anchors(_ANCHORS, dtype)),)
                    out = fn(*pre, consts, *post, *extra)  # dispatched asynchronously
                    if pending is not None:  # collect the previous chunk while this one runs
                        parts.append(_collect(*pending, g, order, reducer, bar))
                    pending = (out, n, shape)
                parts.append(_collect(*pending, g, order, reducer, bar))
    finally:
        bar.close()
    cols = reducer.finish() if reducer is not None else _concat([p for p in parts if p is not None])
    return SweepResult(cols, labels, total, time.perf_counter() - t0,
                       {"dtype": dtype, "devices": n_dev, "chunk": chunk, "mode": "random" if samples else "grid"})


def _grid_calls(layout: _Layout, plan, axes: dict):
    """``(fn, args before consts, args after, valid rows, chunk shape)`` per chunk of a grid (outer products)."""
    dtype = layout.dtype
    fn = grid_function(layout.structure, layout.rules, layout.names, layout.sizes, layout.columns, plan, dtype,
                       layout.devices, layout.pareto)
    tables = [np.asarray(a.values) for a in axes.values()]
    trailing = _placed(tuple(jnp.asarray(t, dtype) for t in tables[plan.split + 1:]), layout.devices)
    shape = (plan.padded, *layout.sizes[plan.split + 1:])
    for leading, block, n in grid_chunks(tables, plan, dtype):
        yield fn, (_placed(leading, layout.devices), _placed(block, layout.devices, "configs")), (trailing,), n, shape


def _random_calls(layout: _Layout, kinds: tuple, chunk: int, per_group: int, axes: dict, seed: int):
    """``(fn, args before consts, args after, valid rows, chunk shape)`` per chunk of a random sweep (flat index)."""
    dtype = layout.dtype
    fn = chunk_function(layout.structure, layout.rules, layout.names, kinds, layout.sizes, layout.columns, chunk,
                        dtype, layout.devices, layout.pareto)
    tables = _placed(tuple(jnp.asarray(a.values if isinstance(a, Values) else (a.low, a.high), dtype)
                           for a in axes.values()), layout.devices)
    key = jnp.uint32(seed & 0xFFFFFFFF)
    for start in range(0, per_group, chunk):
        yield fn, (jnp.int32(start), key), (tables,), min(chunk, per_group - start), (chunk,)


def _group_scenario(m, h, prec, workload, parallel, efficiency, price, axes: dict, rules: Rules):
    """The validated scenario of one group; every swept name must be an input."""
    sc = scenario(m, h, workload, parallel, prec, efficiency, price)
    _check_split(sc, parallel, axes)
    base, inputs = sc.inputs(), compiled(sc.model.structure, rules).input_names
    unknown = [n for n in axes if n not in base]
    if unknown:
        raise ConfigError(f"cannot sweep {', '.join(unknown)}: not an input; inputs of "
                          f"{sc.model.name}: {', '.join(inputs)}")
    missing = [k for k in inputs if k not in base and k not in axes]
    if missing:
        raise ConfigError(f"missing model inputs: {', '.join(missing)}; sweep them as axes")
    return sc


def _collect(out: dict, n: int, shape: tuple, g: int, order: tuple, reducer, bar: Progress) -> dict | None:
    """The chunk's first ``n`` rows in flat order; columns arrive broadcastable to ``shape``.
    With a ``_candidate`` column only the candidates' rows are formed (the rest cannot be kept)."""
    host = {k: _to_host(out[k]) for k in order}
    if "_candidate" in host:
        rows = np.unravel_index(np.flatnonzero(host.pop("_candidate")[:n]), shape)
        host = {k: np.broadcast_to(v, shape)[rows] for k, v in host.items()}
    else:
        host = {k: np.broadcast_to(v, shape).reshape(-1)[:n] for k, v in host.items()}
    host = {"group": np.full(len(host[order[0]]), g, dtype=np.int16)} | host
    bar.update(n)
    if reducer is None:
        return host
    reducer.add(host)
    return None


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
