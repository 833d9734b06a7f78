"""The kernel-latency tables of aiconfigurator-core (costmodel.kernels.tables).

The sample tests read the packaged ``costmodel/kernels/data/sample.csv`` and need neither pyarrow
nor aiconfigurator-core (CI installs only ``.[test]``); the tests against the full parquet tables
skip without the kernels extra.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from costmodel.errors import ConfigError
from costmodel.kernels import tables
from costmodel.kernels.tables import (
    OP_CLASSES,
    SAMPLE_PATH,
    SCHEMAS,
    STRING_COLUMNS,
    read_sample,
    write_sample,
)

CHIPS = ("h100-sxm", "h200", "b200")

needs_tables = pytest.mark.skipif(importlib.util.find_spec("aiconfigurator_core") is None,
                                  reason="the kernel tables need the kernels extra: pip install -e '.[kernels]'")


@pytest.fixture(scope="module")
def sample():
    return read_sample(SAMPLE_PATH)


def _assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for op_class in a:
        assert list(a[op_class]) == list(b[op_class]), op_class
        for col, values in a[op_class].items():
            other = b[op_class][col]
            assert values.dtype.kind == other.dtype.kind, (op_class, col)
            assert np.array_equal(values, other), (op_class, col)


def test_sample_round_trips_exactly(sample, tmp_path):
    path = write_sample(tmp_path / "sample.csv", sample)
    _assert_same(read_sample(path), sample)
    assert path.read_text() == SAMPLE_PATH.read_text()  # the committed file is what write_sample writes


def test_sample_names_its_source():
    first = SAMPLE_PATH.read_text().splitlines()[0]
    assert first.startswith("# source: aiconfigurator-core 0.12.0 (Apache-2.0), systems/data/")
    for folder in ("gemm/trtllm/1.3.0rc20", "comm/nccl/2.29.2", "comm/trtllm/1.3.0rc20/custom_allreduce_perf"):
        assert folder in first


def test_sample_is_small():
    assert SAMPLE_PATH.stat().st_size < 300_000


@pytest.mark.parametrize("op_class", OP_CLASSES)
def test_sample_class_has_schema_and_positive_latency(sample, op_class):
    cols = sample[op_class]
    assert tuple(cols) == SCHEMAS[op_class]
    for name, values in cols.items():
        assert values.dtype.kind == ("U" if name in STRING_COLUMNS else "f"), name
    latency = cols["latency_s"]
    assert latency.size > 0 and np.isfinite(latency).all() and (latency > 0).all()
    assert latency.max() < 10.0  # seconds, not milliseconds: no kernel here takes 10 s
    assert set(cols["chip"]) == set(CHIPS)


def test_sample_spreads_over_shapes(sample):
    gemm = sample["gemm"]
    h100 = gemm["chip"] == "h100-sxm"
    assert len(np.unique(gemm["m"][h100])) > 10 and len(set(gemm["dtype"][h100])) > 1
    assert gemm["latency_s"][h100].max() / gemm["latency_s"][h100].min() > 100


def test_comm_message_bytes_count_elements(sample):
    ar = sample["allreduce"]
    assert set(ar["dtype"]) == {"bfloat16"}
    np.testing.assert_array_equal(ar["message_bytes"], ar["message_elements"] * 2)
    nccl = sample["nccl"]
    size = np.where(nccl["dtype"] == "int8", 1.0, 2.0)
    np.testing.assert_array_equal(nccl["message_bytes"], nccl["message_elements"] * size)


def test_generation_tables_carry_context_not_isl(sample):
    for op_class in ("attention_generation", "mla_generation"):
        assert "context" in sample[op_class] and "isl" not in sample[op_class]
        assert (sample[op_class]["context"] >= 1).all()


def test_missing_package_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "aiconfigurator_core" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[kernels\]'"):
        tables.data_root()
    with pytest.raises(ConfigError, match="kernels"):
        tables.read_table("gemm", "h100-sxm")


def test_missing_pyarrow_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(ConfigError, match=r"pyarrow.*pip install -e '\.\[kernels\]'"):
        tables._parquet_module()


@pytest.mark.parametrize(("op_class", "chip", "engine", "allowed"), [
    ("gemms", "h100-sxm", "trtllm", "did you mean 'gemm'.*Allowed: gemm, attention_context"),
    ("gemm", "h100_sxm", "trtllm", "Allowed: h100-sxm, h200, b200"),
    ("gemm", "h100-sxm", "vllm", "Allowed: trtllm"),
])
def test_bad_names_list_the_allowed_ones(op_class, chip, engine, allowed):
    with pytest.raises(ConfigError, match=allowed):
        tables._relative_path(op_class, chip, engine)


def test_write_sample_checks_columns(tmp_path):
    with pytest.raises(ConfigError, match="needs the columns"):
        write_sample(tmp_path / "x.csv", {"gemm": {"m": np.ones(1)}})


@needs_tables
def test_gemm_latency_is_the_tables_milliseconds_over_1000():
    pq = pytest.importorskip("pyarrow.parquet")
    path = tables.table_path("gemm", "h100-sxm")
    raw = pq.read_table(path, columns=["gemm_dtype", "m", "n", "k", "latency"]).to_pylist()[0]
    t = tables.read_table("gemm", "h100-sxm")
    row = (t["dtype"] == raw["gemm_dtype"]) & (t["m"] == raw["m"]) & (t["n"] == raw["n"]) & (t["k"] == raw["k"])
    assert row.sum() == 1
    assert t["latency_s"][row][0] == raw["latency"] / 1000


@needs_tables
def test_allreduce_table_bytes_are_elements_times_two():
    pq = pytest.importorskip("pyarrow.parquet")
    raw = pq.read_table(tables.table_path("allreduce", "h200"), columns=["allreduce_dtype", "message_size"])
    assert set(raw.column("allreduce_dtype").to_pylist()) == {"bfloat16"}
    t = tables.read_table("allreduce", "h200")
    np.testing.assert_array_equal(t["message_bytes"], np.asarray(raw.column("message_size").to_pylist()) * 2.0)


@needs_tables
def test_sample_rows_are_rows_of_the_full_tables(sample):
    pytest.importorskip("pyarrow")
    for op_class in ("mla_generation", "nccl"):
        full = tables.read_table(op_class, "b200")
        part = {c: v[sample[op_class]["chip"] == "b200"] for c, v in sample[op_class].items()}
        rows = set(zip(*(full[c].tolist() for c in SCHEMAS[op_class])))
        assert all(r in rows for r in zip(*(part[c].tolist() for c in SCHEMAS[op_class])))


@needs_tables
def test_make_sample_is_deterministic(sample):
    pytest.importorskip("pyarrow")
    again = tables.make_sample(rows_per_class=40, seed=0)
    _assert_same(again, sample)
