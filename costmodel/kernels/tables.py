"""Measured kernel latencies of ``aiconfigurator-core`` 0.12.0, in one schema per operator class.

The package ``aiconfigurator-core`` (Apache-2.0) ships parquet tables of kernel latencies measured
on real GPUs. Only its *data files* are read here (with pyarrow), never its code; install them with
the kernels extra: ``pip install -e '.[kernels]'``. Each table lives at::

    aiconfigurator_core/systems/data/<system>/<family>/<engine>/<version>/<table>.parquet

(NCCL: ``<system>/comm/nccl/<nccl version>/nccl_perf.parquet``). :data:`CHIP_SYSTEMS` maps the
catalog's chip names to the ``<system>`` folders and :data:`VERSION_FOLDERS` names the one version
folder read per engine, chip and class (versions are never mixed).

Canonical schemas (:data:`SCHEMAS`). Every class starts with ``chip`` (catalog name), ``engine``,
``version`` (the version folder, equal to the rows' own ``version`` label) and ``kernel`` (the
table's ``kernel_source``) and ends with ``latency_s``, seconds (the tables' ``latency`` is in
milliseconds; ``latency_s = latency / 1000``). Strings are numpy ``str`` arrays, every number is
``float64``. Dtype values are the table's own labels (``bfloat16``, ``fp8``, ``fp8_block``,
``nvfp4``, ``w4a16_mxfp4``, ``w4a8_mxfp4_mxfp8``, ``half``, ``int8``).

* ``gemm`` (``gemm/<engine>/<v>/gemm_perf``): ``dtype`` (gemm_dtype), ``m``, ``n``, ``k``.
* ``attention_context`` (``attention/<engine>/<v>/context_attention_perf``): ``dtype``
  (attn_dtype), ``kv_dtype`` (kv_cache_dtype), ``batch`` (batch_size), ``isl``, ``num_heads``,
  ``num_kv_heads`` (num_key_value_heads), ``head_dim``, ``window`` (window_size; 0 is full
  attention).
* ``attention_generation`` (``attention/<engine>/<v>/generation_attention_perf``): as
  ``attention_context`` with ``context`` (the table's ``step``: the cached tokens; its ``isl`` is 1)
  in place of ``isl``.
* ``mla_context`` (``mla/<engine>/<v>/context_mla_perf``): ``dtype`` (mla_dtype), ``kv_dtype``,
  ``num_heads`` (per GPU), ``tp`` (tp_size), ``batch``, ``isl``.
* ``mla_generation`` (``mla/<engine>/<v>/generation_mla_perf``): as ``mla_context`` with
  ``context`` (step) in place of ``isl``.
* ``moe`` (``moe/<engine>/<v>/moe_perf``): ``dtype`` (moe_dtype), ``num_tokens``, ``hidden``
  (hidden_size), ``inter`` (inter_size), ``topk``, ``num_experts``, ``moe_tp``, ``moe_ep``,
  ``distribution`` (balanced, power_law_1.01, power_law_1.2). One shape can have rows of several
  kernels (B200 nvfp4: cutlass and min_latency), told apart by ``kernel``.
* ``allreduce`` (``comm/<engine>/<v>/custom_allreduce_perf``, the engine's custom all-reduce):
  ``dtype`` (allreduce_dtype), ``num_gpus``, ``message_elements``, ``message_bytes``.
* ``nccl`` (``comm/nccl/<nccl version>/nccl_perf``): ``op`` (op_name: all_gather, all_reduce,
  alltoall, reduce_scatter), ``dtype`` (nccl_dtype), ``num_gpus``, ``message_elements``,
  ``message_bytes``; ``version`` is the NCCL version, ``engine`` the one asked for (the rows were
  collected through TensorRT-LLM).

Units: the comm tables' ``message_size`` counts elements, not bytes: ``message_elements`` is that
count and ``message_bytes = message_elements x`` the bytes of ``dtype`` (bfloat16/half 2, int8 1).
Rows whose latency is not finite and positive are dropped; constant columns (``beam_width`` 1, the
generation tables' ``isl`` 1, the context tables' ``step`` 0) are checked and left out.

Sample: ``data/sample.csv`` holds a few rows of every class and chip (:func:`make_sample`, spread
over each table's latency range), so tests run without pyarrow or the package. It was produced by
``python -m costmodel.kernels.tables --write-sample`` and is read back by :func:`read_sample`.

Example (the packaged sample; needs neither pyarrow nor aiconfigurator-core):
    >>> sample = read_sample()
    >>> sorted(sample) == sorted(OP_CLASSES)
    True
    >>> bool((sample["gemm"]["latency_s"] > 0).all())
    True
"""

from __future__ import annotations

import argparse
import csv
import difflib
import importlib.util
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, SpecError

__all__ = [
    "AICONFIGURATOR_VERSION",
    "CHIP_SYSTEMS",
    "OP_CLASSES",
    "SAMPLE_PATH",
    "SCHEMAS",
    "STRING_COLUMNS",
    "VERSION_FOLDERS",
    "data_root",
    "make_sample",
    "read_sample",
    "read_table",
    "table_path",
    "write_sample",
]

#: The release of aiconfigurator-core whose data layout :data:`VERSION_FOLDERS` names.
AICONFIGURATOR_VERSION = "0.12.0"

_INSTALL_HINT = "install the kernels extra: pip install -e '.[kernels]'"

#: The packaged sample of every class (see :func:`make_sample`).
SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "sample.csv"

#: The canonical operator classes.
OP_CLASSES: tuple[str, ...] = (
    "gemm",
    "attention_context",
    "attention_generation",
    "mla_context",
    "mla_generation",
    "moe",
    "allreduce",  # the engine's custom all-reduce kernel
    "nccl",  # NCCL collectives, one per `op`
)

#: The catalog's chip name -> the ``systems/data/<system>`` folder.
CHIP_SYSTEMS: dict[str, str] = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm",
                                "a100-80gb": "a100_sxm", "l40s": "l40s"}

_TRTLLM_FOLDERS = {
    # 1.3.0rc20 is the complete ("provenance: collected") sweep of every compute family on all
    # three systems. moe/1.3.0rc23 holds only model-filtered subsets (Nemotron-3 on Hopper, DSV4 on
    # B200, the rest declared reused from rc20 in its reuse.yaml); moe/1.3.0rc10 is legacy.
    "gemm": "1.3.0rc20",
    "attention_context": "1.3.0rc20",
    "attention_generation": "1.3.0rc20",
    "mla_context": "1.3.0rc20",
    "mla_generation": "1.3.0rc20",
    "moe": "1.3.0rc20",
    # comm/trtllm/1.3.0rc20: the same engine release as the compute tables (1.2.0rc5 and
    # 1.3.0rc10 are legacy collections of the same 69 shapes).
    "allreduce": "1.3.0rc20",
    # comm/nccl/2.29.2: the only NCCL folder present for all three systems, one row per shape,
    # rows labelled 2.29.2. Not h100/b200 2.27.3 or h200 2.26.2: their rows are labelled 2.29.2 and
    # repeat every shape 2-3 times (separate runs); not 2.23: no all_reduce, no version column.
    "nccl": "2.29.2",
}

#: engine -> chip -> class -> the one version folder read (see the comments in the source).
VERSION_FOLDERS: dict[str, dict[str, dict[str, str]]] = {
    "trtllm": {
        "h100-sxm": dict(_TRTLLM_FOLDERS),
        "h200": dict(_TRTLLM_FOLDERS),
        "b200": dict(_TRTLLM_FOLDERS),
        # the A100's tables are TensorRT-LLM 1.0.0 only (the newer releases were not collected on it);
        # its NCCL folder is 2.27.3, the only one
        "a100-80gb": {c: "1.0.0" for c in _TRTLLM_FOLDERS} | {"nccl": "2.27.3"},
        # the L40S: 1.3.0rc20 like the others, but MLA only at 1.0.0 and the custom all-reduce at 1.0.0
        # (the rows of its 1.3.0rc20 folder are labelled 1.0.0); NCCL 2.27.3, the only folder
        "l40s": dict(_TRTLLM_FOLDERS) | {"mla_context": "1.0.0", "mla_generation": "1.0.0", "allreduce": "1.0.0",
                                         "nccl": "2.27.3"},
    },
}

_HEAD = ("chip", "engine", "version", "kernel")

#: class -> its column names, in order (documented in the module docstring).
SCHEMAS: dict[str, tuple[str, ...]] = {
    "gemm": (*_HEAD, "dtype", "m", "n", "k", "latency_s"),
    "attention_context": (*_HEAD, "dtype", "kv_dtype", "batch", "isl", "num_heads", "num_kv_heads", "head_dim",
                          "window", "latency_s"),
    "attention_generation": (*_HEAD, "dtype", "kv_dtype", "batch", "context", "num_heads", "num_kv_heads",
                             "head_dim", "window", "latency_s"),
    "mla_context": (*_HEAD, "dtype", "kv_dtype", "num_heads", "tp", "batch", "isl", "latency_s"),
    "mla_generation": (*_HEAD, "dtype", "kv_dtype", "num_heads", "tp", "batch", "context", "latency_s"),
    "moe": (*_HEAD, "dtype", "num_tokens", "hidden", "inter", "topk", "num_experts", "moe_tp", "moe_ep",
            "distribution", "latency_s"),
    "allreduce": (*_HEAD, "dtype", "num_gpus", "message_elements", "message_bytes", "latency_s"),
    "nccl": (*_HEAD, "op", "dtype", "num_gpus", "message_elements", "message_bytes", "latency_s"),
}

#: Columns holding strings; every other column is float64.
STRING_COLUMNS = frozenset({"chip", "engine", "version", "kernel", "dtype", "kv_dtype", "distribution", "op"})


@dataclass(frozen=True)
class _Source:
    """Where a class's table lives and how its columns map onto the canonical schema."""

    family: str  # below systems/data/<system>/; "{engine}" is filled in
    table: str  # the parquet file's stem
    renamed: Mapping[str, str]  # canonical name -> source column, for the columns that differ
    constant: Mapping[str, int]  # source columns that must hold one value, left out


_ATTENTION_NAMES = {"dtype": "attn_dtype", "kv_dtype": "kv_cache_dtype", "batch": "batch_size",
                    "num_kv_heads": "num_key_value_heads", "window": "window_size"}
_MLA_NAMES = {"dtype": "mla_dtype", "kv_dtype": "kv_cache_dtype", "tp": "tp_size", "batch": "batch_size"}
_COMM_NAMES = {"message_elements": "message_size"}

_SOURCES: dict[str, _Source] = {
    "gemm": _Source("gemm/{engine}", "gemm_perf", {"dtype": "gemm_dtype"}, {}),
    "attention_context": _Source("attention/{engine}", "context_attention_perf", _ATTENTION_NAMES,
                                 {"beam_width": 1, "step": 0}),
    "attention_generation": _Source("attention/{engine}", "generation_attention_perf",
                                    {**_ATTENTION_NAMES, "context": "step"}, {"beam_width": 1, "isl": 1}),
    "mla_context": _Source("mla/{engine}", "context_mla_perf", _MLA_NAMES, {"step": 0}),
    "mla_generation": _Source("mla/{engine}", "generation_mla_perf", {**_MLA_NAMES, "context": "step"},
                              {"isl": 1}),
    "moe": _Source("moe/{engine}", "moe_perf",
                   {"dtype": "moe_dtype", "hidden": "hidden_size", "inter": "inter_size",
                    "moe_tp": "moe_tp_size", "moe_ep": "moe_ep_size"}, {}),
    "allreduce": _Source("comm/{engine}", "custom_allreduce_perf", {**_COMM_NAMES, "dtype": "allreduce_dtype"}, {}),
    "nccl": _Source("comm/nccl", "nccl_perf", {**_COMM_NAMES, "op": "op_name", "dtype": "nccl_dtype"}, {}),
}

#: Bytes per element of the comm tables' dtype labels (their message_size counts elements).
_COMM_ELEMENT_BYTES = {"bfloat16": 2, "half": 2, "float16": 2, "float32": 4, "int8": 1, "fp8": 1}

#: Source columns of every class whose canonical name differs.
_COMMON_NAMES = {"kernel": "kernel_source"}

# Canonical columns computed here rather than read.
_DERIVED = frozenset({"chip", "engine", "version", "latency_s", "message_bytes"})


def _choose(kind: str, given: str, allowed: Iterable[str], hint: str = "") -> str:
    """``given`` if it is one of ``allowed``, else a :class:`ConfigError` listing them."""
    allowed = list(allowed)
    if given in allowed:
        return given
    close = difflib.get_close_matches(str(given), allowed, n=1, cutoff=0.5)
    msg = f"unknown {kind} {given!r}" + (f"; did you mean {close[0]!r}?" if close else "")
    raise ConfigError(f"{msg} Allowed: {', '.join(allowed)}.{' ' + hint if hint else ''}")


def data_root() -> Path:
    """The ``systems/data`` folder of the installed aiconfigurator-core (its code is not imported)."""
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the measured kernel tables need aiconfigurator-core=={AICONFIGURATOR_VERSION}, "
                          f"which is not installed; {_INSTALL_HINT}")
    root = Path(list(spec.submodule_search_locations)[0]) / "systems" / "data"
    if not root.is_dir():
        raise ConfigError(f"aiconfigurator-core has no data folder {root}; "
                          f"reinstall version {AICONFIGURATOR_VERSION}: {_INSTALL_HINT}")
    return root


def _version_folder(op_class: str, chip: str, engine: str) -> str:
    """The version folder :data:`VERSION_FOLDERS` names, after checking the three names."""
    _choose("kernel-table class", op_class, OP_CLASSES)
    _choose("engine", engine, VERSION_FOLDERS)
    by_chip = VERSION_FOLDERS[engine]
    _choose("chip", chip, by_chip, "The kernel tables cover these catalog chips only.")
    return by_chip[chip][op_class]


def _relative_path(op_class: str, chip: str, engine: str) -> str:
    """``<system>/<family>/<engine>/<version>/<table>.parquet`` below ``systems/data``."""
    version = _version_folder(op_class, chip, engine)
    src = _SOURCES[op_class]
    return f"{CHIP_SYSTEMS[chip]}/{src.family.format(engine=engine)}/{version}/{src.table}.parquet"


def table_path(op_class: str, chip: str, engine: str = "trtllm") -> Path:
    """The parquet file :func:`read_table` reads for ``op_class`` on ``chip``."""
    path = data_root() / _relative_path(op_class, chip, engine)
    if not path.is_file():
        raise ConfigError(f"no kernel table {path}; the version folders are those of aiconfigurator-core "
                          f"{AICONFIGURATOR_VERSION}: {_INSTALL_HINT}")
    return path


def _parquet_module():
    """``pyarrow.parquet``, imported on first use."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ConfigError(f"reading the kernel tables needs pyarrow; {_INSTALL_HINT}") from e
    return pq


def _read_columns(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named columns of a parquet file as numpy arrays (strings as ``str`` arrays)."""
    table = _parquet_module().read_table(path, columns=list(names))
    out = {}
    for name in names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        out[name] = values.astype(str) if values.dtype.kind in "OUS" else values
    return out


def _check_constants(raw: Mapping[str, np.ndarray], constant: Mapping[str, int], path: Path) -> None:
    """Raise a :class:`SpecError` if a column assumed constant holds another value."""
    for name, value in constant.items():
        bad = np.unique(raw[name][raw[name] != value])
        if bad.size:
            raise SpecError(f"{path}: column {name!r} should be {value} in every row but holds {bad[:5].tolist()}; "
                            f"the table's layout differs from aiconfigurator-core {AICONFIGURATOR_VERSION}")


def _check_version(raw: Mapping[str, np.ndarray], version: str, path: Path) -> None:
    """Raise a :class:`SpecError` if the rows' own version label is not the folder's."""
    labels = np.unique(raw["version"])
    if labels.tolist() != [version]:
        raise SpecError(f"{path}: rows are labelled version {labels.tolist()}, not the folder's {version!r}; "
                        f"choose a folder whose rows match it in VERSION_FOLDERS")


def _message_bytes(elements: np.ndarray, dtypes: np.ndarray, path: Path) -> np.ndarray:
    """Bytes of a comm message: its element count times the bytes of its dtype."""
    unknown = sorted(set(dtypes.tolist()) - set(_COMM_ELEMENT_BYTES))
    if unknown:
        raise SpecError(f"{path}: unknown comm dtype(s) {unknown}; known: {', '.join(_COMM_ELEMENT_BYTES)}")
    size = np.array([_COMM_ELEMENT_BYTES[d] for d in dtypes.tolist()], dtype=float)
    return elements * size


def _canonical(raw: Mapping[str, np.ndarray], op_class: str, chip: str, engine: str, version: str,
               path: Path) -> dict[str, np.ndarray]:
    """Rename, convert to SI units and keep the rows with a finite, positive latency."""
    src = _SOURCES[op_class]
    latency_s = raw["latency"].astype(float) / 1e3  # the tables' latency is in milliseconds
    keep = np.isfinite(latency_s) & (latency_s > 0)
    n = int(keep.sum())
    out: dict[str, np.ndarray] = {}
    for name in SCHEMAS[op_class]:
        if name in ("chip", "engine", "version"):
            value = {"chip": chip, "engine": engine, "version": version}[name]
            out[name] = np.full(n, value, dtype=f"<U{len(value)}")  # dtype=str would keep one character
        elif name == "latency_s":
            out[name] = latency_s[keep]
        elif name == "message_bytes":
            out[name] = _message_bytes(out["message_elements"], out["dtype"], path)
        else:
            col = raw[_source_name(src, name)][keep]
            out[name] = col.astype(str) if name in STRING_COLUMNS else col.astype(float)
    return out


def _source_name(src: _Source, name: str) -> str:
    """The parquet column holding canonical column ``name``."""
    return src.renamed.get(name, _COMMON_NAMES.get(name, name))


def _source_columns(op_class: str) -> list[str]:
    """The parquet columns :func:`read_table` reads for ``op_class``."""
    src = _SOURCES[op_class]
    names = {"latency", "version", *src.constant}
    names |= {_source_name(src, c) for c in SCHEMAS[op_class] if c not in _DERIVED}
    return sorted(names)


def read_table(op_class: str, chip: str, engine: str = "trtllm") -> dict[str, np.ndarray]:
    """The measured latencies of ``op_class`` on ``chip``, as columns of :data:`SCHEMAS` ``[op_class]``.

    Reads ``systems/data/<system>/<family>/<engine>/<version>/<table>.parquet`` of
    aiconfigurator-core (:func:`table_path`; the folder is :data:`VERSION_FOLDERS`
    ``[engine][chip][op_class]``) with pyarrow, converts milliseconds to seconds and comm element
    counts to bytes, and drops rows whose latency is not finite and positive. Needs the kernels
    extra (``pip install -e '.[kernels]'``); raises :class:`ConfigError` naming the allowed classes,
    chips and engines for others.
    """
    path = table_path(op_class, chip, engine)
    version = _version_folder(op_class, chip, engine)
    raw = _read_columns(path, _source_columns(op_class))
    _check_version(raw, version, path)
    _check_constants(raw, _SOURCES[op_class].constant, path)
    return _canonical(raw, op_class, chip, engine, version, path)


def _spread_rows(latency_s: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` rows spread over the latency range: one random row of each of ``n`` equal
    slices of the rows sorted by latency (so small and large shapes, not neighbouring rows)."""
    order = np.argsort(latency_s, kind="stable")
    if latency_s.size <= n:
        return order
    edges = np.linspace(0, latency_s.size, n + 1).astype(int)
    picks = [order[rng.integers(lo, hi)] for lo, hi in zip(edges[:-1], edges[1:])]
    return np.sort(np.asarray(picks))


def _concat(parts: Sequence[Mapping[str, np.ndarray]], columns: Sequence[str]) -> dict[str, np.ndarray]:
    return {c: np.concatenate([p[c] for p in parts]) for c in columns}


def make_sample(chips: Sequence[str] = ("h100-sxm", "h200", "b200"), rows_per_class: int = 40, seed: int = 0,
                engine: str = "trtllm") -> dict[str, dict[str, np.ndarray]]:
    """A small deterministic sample of every class: ``rows_per_class`` rows per chip, spread over each
    table's latency range (one random row per latency slice, drawn with ``seed``), for tests."""
    if rows_per_class < 1:
        raise ConfigError(f"rows_per_class must be at least 1, got {rows_per_class}")
    rng = np.random.default_rng(seed)
    sample = {}
    for op_class in OP_CLASSES:
        parts = []
        for chip in chips:
            table = read_table(op_class, chip, engine)
            idx = _spread_rows(table["latency_s"], rows_per_class, rng)
            parts.append({c: v[idx] for c, v in table.items()})
        sample[op_class] = _concat(parts, SCHEMAS[op_class])
    return sample


def _sample_columns() -> list[str]:
    """The CSV header: ``class`` then every canonical column, in first-seen order."""
    return ["class", *dict.fromkeys(c for op_class in OP_CLASSES for c in SCHEMAS[op_class])]


def _source_line(tables: Mapping[str, Mapping[str, np.ndarray]]) -> str:
    """The CSV's first line: the package, its licence and the folders the rows came from."""
    systems: dict[str, set[str]] = {}
    for op_class, cols in tables.items():
        for chip, engine in sorted(set(zip(cols["chip"].tolist(), cols["engine"].tolist()))):
            system, rest = _relative_path(op_class, chip, engine).split("/", 1)
            systems.setdefault(rest, set()).add(system)
    folders = [f"{{{','.join(sorted(s))}}}/{rest}" for rest, s in systems.items()]
    return (f"# source: aiconfigurator-core {AICONFIGURATOR_VERSION} (Apache-2.0), systems/data/"
            f"<system>/<family>/<engine>/<version>/<table>.parquet: {'; '.join(folders)}")


def _check_columns(op_class: str, cols: Mapping[str, np.ndarray]) -> None:
    """Raise a :class:`ConfigError` unless ``cols`` has exactly the columns of ``op_class``."""
    _choose("kernel-table class", op_class, OP_CLASSES)
    if set(cols) != set(SCHEMAS[op_class]):
        raise ConfigError(f"class {op_class!r} needs the columns {', '.join(SCHEMAS[op_class])}; "
                          f"got {', '.join(cols)}")


def _cell(column: str, value: object) -> str:
    """One CSV cell: strings as they are, numbers with repr so they read back exactly."""
    return str(value) if column in STRING_COLUMNS else repr(float(value))


def write_sample(path: str | Path, tables: Mapping[str, Mapping[str, np.ndarray]]) -> Path:
    """Write ``{class: columns}`` to one CSV with a ``class`` column and a ``# source:`` header line."""
    for op_class, cols in tables.items():
        _check_columns(op_class, cols)
    path = Path(path)
    header = _sample_columns()
    with path.open("w", newline="") as f:
        f.write(_source_line(tables) + "\n")
        f.write("# units: latency_s in seconds (tables: ms); message_bytes = message_elements x dtype bytes; "
                "written by python -m costmodel.kernels.tables --write-sample\n")
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for op_class, cols in tables.items():
            schema = SCHEMAS[op_class]
            n = len(cols["latency_s"])
            for i in range(n):
                row = {c: _cell(c, cols[c][i]) for c in schema}
                writer.writerow([op_class if h == "class" else row.get(h, "") for h in header])
    return path


def read_sample(path: str | Path = SAMPLE_PATH) -> dict[str, dict[str, np.ndarray]]:
    """Read a CSV written by :func:`write_sample`: ``{class: columns}`` with numbers as float arrays."""
    path = Path(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    by_class: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        op_class = _choose("kernel-table class", row.get("class"), OP_CLASSES, f"(in {path})")
        by_class.setdefault(op_class, []).append(row)
    out = {}
    for op_class in (c for c in OP_CLASSES if c in by_class):
        group = by_class[op_class]
        missing = [c for c in SCHEMAS[op_class] if c not in group[0]]
        if missing:
            raise ConfigError(f"{path} lacks the column(s) {', '.join(missing)} of class {op_class!r}; "
                              f"rewrite it with write_sample")
        out[op_class] = {c: np.array([r[c] for r in group], dtype=str) if c in STRING_COLUMNS
                         else np.array([float(r[c]) for r in group], dtype=float) for c in SCHEMAS[op_class]}
    return out


def _counts(chips: Sequence[str], engine: str) -> str:
    """Row counts of every class and chip, as text lines."""
    lines = [f"{'class':22s}" + "".join(f"{c:>10s}" for c in chips)]
    for op_class in OP_CLASSES:
        lines.append(f"{op_class:22s}" + "".join(f"{len(read_table(op_class, c, engine)['latency_s']):>10d}"
                                                 for c in chips))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m costmodel.kernels.tables --write-sample [PATH]`` or ``--counts``."""
    parser = argparse.ArgumentParser(prog="python -m costmodel.kernels.tables", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--write-sample", nargs="?", const=str(SAMPLE_PATH), metavar="PATH",
                        help=f"write the sample CSV (default {SAMPLE_PATH})")
    parser.add_argument("--counts", action="store_true", help="print the row count of every class and chip")
    parser.add_argument("--rows-per-class", type=int, default=40, help="sample rows per class and chip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chips", nargs="+", default=list(CHIP_SYSTEMS), choices=list(CHIP_SYSTEMS))
    parser.add_argument("--engine", default="trtllm", choices=list(VERSION_FOLDERS))
    args = parser.parse_args(argv)
    if not (args.write_sample or args.counts):
        parser.error("give --write-sample or --counts")
    try:
        if args.counts:
            print(_counts(args.chips, args.engine))
        if args.write_sample:
            sample = make_sample(args.chips, args.rows_per_class, args.seed, args.engine)
            path = write_sample(args.write_sample, sample)
            print(f"wrote {sum(len(c['latency_s']) for c in sample.values())} rows to {path}")
    except (ConfigError, SpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
