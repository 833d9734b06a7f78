"""Sweeps: grids equal per-configuration predictions, random draws are reproducible, chunking and
sharding do not change results, the Pareto frontier is exact, and the CLI writes CSV or fails cleanly."""

import csv
import importlib.util
import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import costmodel as cm
from costmodel.cli import main
from costmodel.pareto import pareto_mask
from costmodel.sweeps import LogUniform, Uniform, parse_axis

GRID = {"batch": [1, 7, 64], "context": [1024, 8192], "tp": [1, 2, 8]}


def brute_force_front(x, y, ok):
    """O(n^2): i is on the frontier iff feasible and no feasible j is <= in both and < in one."""
    n = len(x)
    return np.array([ok[i] and not any(ok[j] and x[j] <= x[i] and y[j] <= y[i] and (x[j] < x[i] or y[j] < y[i])
                                       for j in range(n)) for i in range(n)])


def assert_same_rows(a, b):
    """Equal rows: exact for labels, flags and grid values; floats to 1e-13 (XLA may vectorise a
    different chunk length differently, which moves results by an ulp)."""
    for k in a.columns:
        if a[k].dtype.kind == "f":
            np.testing.assert_allclose(a[k], b[k], rtol=1e-13, atol=0, err_msg=k)
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_grid_equals_predict_per_configuration():
    r = cm.sweep("llama-3-8b", "h100-sxm", GRID, outputs=("step_time_s", "usd_per_mtok", "memory_bytes_per_chip",
                                                          "fits", "tokens_per_s_per_chip"), progress=False, efficiency=cm.IDEAL)
    combos = list(itertools.product(*GRID.values()))
    assert len(r) == len(combos) == r.evaluated
    for i, (b, c, tp) in enumerate(combos):  # the last axis varies fastest, as in itertools.product
        p = cm.predict("llama-3-8b", "h100-sxm", cm.Workload(batch=b, context=c), parallel=cm.Parallel(tp=tp), efficiency=cm.IDEAL)
        assert (r["batch"][i], r["context"][i], r["tp"][i]) == (b, c, tp)
        for k in ("step_time_s", "usd_per_mtok", "memory_bytes_per_chip"):
            assert r[k][i] == pytest.approx(p.values[k], rel=1e-12)
        assert r["fits"][i] == p.fits
        assert r["tokens_per_s_per_chip"][i] == pytest.approx(p.tokens_per_s / p.chips, rel=1e-12)
    assert set(r["model"]) == {"llama-3-8b"} and set(r["hardware"]) == {"h100-sxm"}


def test_groups_concatenate_models_of_different_structure():
    r = cm.sweep(["llama-3-8b", "mixtral-8x7b"], ["h100-sxm", "a100-80gb"], {"batch": [1, 32]}, progress=False, efficiency=cm.IDEAL)
    assert len(r) == 8 and len(r.groups) == 4
    i = np.flatnonzero((r["model"] == "mixtral-8x7b") & (r["hardware"] == "a100-80gb"))
    p = cm.predict("mixtral-8x7b", "a100-80gb", cm.Workload(batch=32), efficiency=cm.IDEAL)
    assert r["step_time_s"][i[1]] == pytest.approx(p.step_time_s, rel=1e-12)


def test_random_sweep_reproducible_and_in_range():
    axes = {"batch": LogUniform(1, 512), "context": Uniform(512, 4096), "tp": [1, 2, 4, 8]}
    a = cm.sweep("llama-3-8b", "h100-sxm", axes, samples=5000, seed=3, progress=False, efficiency=cm.IDEAL)
    b = cm.sweep("llama-3-8b", "h100-sxm", axes, samples=5000, seed=3, progress=False, efficiency=cm.IDEAL)
    c = cm.sweep("llama-3-8b", "h100-sxm", axes, samples=5000, seed=4, progress=False, efficiency=cm.IDEAL)
    for k in a.columns:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["batch"], c["batch"])
    assert a["batch"].min() >= 1 and a["batch"].max() <= 512
    assert a["context"].min() >= 512 and a["context"].max() <= 4096
    assert set(a["tp"]) == {1, 2, 4, 8}
    # log-uniform: about half the draws fall below the geometric mean sqrt(512) (binomial sd 0.7 %)
    assert abs(np.mean(a["batch"] < np.sqrt(512)) - 0.5) < 0.03


@pytest.mark.parametrize("samples, axes", [
    (None, GRID),
    (None, {"context": [1024, 8192], "batch": np.arange(1.0, 40.0)}),  # the last axis alone exceeds a chunk
    (3001, {"batch": LogUniform(1, 64), "tp": [1, 2, 8]}),
])
def test_chunk_size_does_not_change_results(samples, axes):
    a = cm.sweep("llama-3-8b", "h100-sxm", axes, samples=samples, chunk_size=5, progress=False, efficiency=cm.IDEAL)
    b = cm.sweep("llama-3-8b", "h100-sxm", axes, samples=samples, chunk_size=1 << 12, progress=False, efficiency=cm.IDEAL)
    assert list(a.columns) == list(b.columns)
    assert_same_rows(a, b)


def test_pareto_mask_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(1, 80))
        x, y = rng.integers(0, 8, n).astype(float), rng.integers(0, 8, n).astype(float)  # many ties
        ok = rng.random(n) < 0.8
        np.testing.assert_array_equal(pareto_mask(x, y, ok), brute_force_front(x, y, ok))
    x, y = rng.random(2000), rng.random(2000)
    np.testing.assert_array_equal(pareto_mask(x, y), brute_force_front(x, y, np.ones(2000, bool)))


@pytest.mark.parametrize("frontier", ["cost-latency", "throughput-interactivity"])
def test_on_the_fly_frontier_equals_frontier_of_all_rows(frontier):
    axes = {"batch": np.geomspace(1, 1024, 41), "context": [2048, 32768], "tp": [1, 2, 4, 8]}
    full = cm.sweep("llama-3-70b", "h100-sxm", axes, outputs=cm.sweeps.DEFAULT_OUTPUTS + ("tokens_per_s_per_chip",),
                    progress=False, efficiency=cm.IDEAL)
    fly = cm.sweep("llama-3-70b", "h100-sxm", axes, pareto=frontier, chunk_size=16, progress=False, efficiency=cm.IDEAL)
    x, y = (full["usd_per_mtok"], full["step_time_s"]) if frontier == "cost-latency" else \
        (-full["tokens_per_s_per_chip"], -full["tokens_per_s_per_user"])
    brute = brute_force_front(x, y, full["fits"])
    assert 0 < len(fly) == brute.sum() < len(full)
    assert sorted(zip(fly["batch"], fly["context"], fly["tp"])) == \
        sorted(zip(full["batch"][brute], full["context"][brute], full["tp"][brute]))
    post = full.pareto(frontier)
    np.testing.assert_array_equal(post["batch"], fly["batch"])


def test_top_k_keeps_the_cheapest_feasible_rows():
    full = cm.sweep("llama-3-70b", "h100-sxm", GRID, progress=False, efficiency=cm.IDEAL)
    top = cm.sweep("llama-3-70b", "h100-sxm", GRID, top_k=("usd_per_mtok", 3), chunk_size=4, progress=False, efficiency=cm.IDEAL)
    want = np.argsort(np.where(full["fits"], full["usd_per_mtok"], np.inf), kind="stable")[:3]
    for k in GRID:
        np.testing.assert_array_equal(top[k], full[k][want])
    np.testing.assert_allclose(top["usd_per_mtok"], full["usd_per_mtok"][want], rtol=1e-13)


def test_float32_and_columns():
    r = cm.sweep("llama-3-8b", "h100-sxm", {"batch": [1, 2]}, dtype="float32", progress=False, efficiency=cm.IDEAL)
    assert r["step_time_s"].dtype == np.float32 and r["fits"].dtype == bool
    assert r.names[:4] == ["model", "hardware", "precision", "batch"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(axes={"batsh": [1]}), "cannot sweep batsh"),
    (dict(axes={}), "at least one axis"),
    (dict(axes={"batch": Uniform(1, 8)}), "samples=N"),
    (dict(axes={"tp": [1.5]}), "whole numbers"),
    (dict(axes={"tp": [3]}), "tp=3 must divide"),
    (dict(axes={"batch": [0]}), "must be finite and > 0"),
    (dict(axes={"batch": [1, 2]}, outputs=("speed",)), "unknown output"),
    (dict(axes={"batch": [1, 2, 3]}, max_rows=2), "max_rows"),
    (dict(axes={"batch": [1]}, pareto="fast"), "unknown frontier"),
])
def test_bad_input_raises_clear_error(kwargs, message):
    with pytest.raises(cm.ConfigError, match=message):
        cm.sweep("llama-3-8b", "h100-sxm", progress=False, **kwargs)


def test_parse_axis():
    assert parse_axis("batch", "1:1024:log11").values == tuple(float(2**k) for k in range(11))
    assert parse_axis("price", "1:2:3").values == (1.0, 1.5, 2.0)
    assert parse_axis("tp", "1,2,4").values == (1.0, 2.0, 4.0)
    for bad in ("1:2", "a,b", "0:8:log4", "1:8:0", "-1,2"):
        with pytest.raises(cm.ConfigError):
            parse_axis("batch", bad)


SHARDED = textwrap.dedent("""
    import jax, numpy as np, costmodel as cm
    from costmodel.sweeps import LogUniform
    assert jax.device_count() == 8, jax.devices()
    grid = {"batch": np.geomspace(1, 512, 10), "context": [1024, 8192, 32768], "tp": [1, 2, 4, 8]}
    rand = {"batch": LogUniform(1, 512), "tp": [1, 2, 4, 8]}
    for axes, n in ((grid, None), (rand, 1001)):
        for pareto in (None, "cost-latency"):
            one = cm.sweep("llama-3-70b", "h100-sxm", axes, samples=n, pareto=pareto, chunk_size=64,
                           devices=jax.devices()[:1], progress=False)
            many = cm.sweep("llama-3-70b", "h100-sxm", axes, samples=n, pareto=pareto, chunk_size=64,
                            progress=False)
            assert many.meta["devices"] == 8 and one.meta["devices"] == 1
            for k in one.columns:  # floats to 1e-13: XLA may vectorise a shard differently (an ulp)
                if one[k].dtype.kind == "f":
                    np.testing.assert_allclose(one[k], many[k], rtol=1e-13, atol=0, err_msg=k)
                else:
                    np.testing.assert_array_equal(one[k], many[k], err_msg=k)
    r = cm.sweep("llama-3-8b", "h100-sxm", {"batch": [1, 3]}, dtype="float64", progress=False)
    assert r["step_time_s"].dtype == np.float64 and not jax.config.jax_enable_x64
    print("OK")
""")


@pytest.mark.slow  # a second interpreter with two host devices compiles everything again
def test_sharded_sweep_equals_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stderr[-3000:]


def test_cli_writes_csv(tmp_path, capsys):
    out = tmp_path / "s.csv"
    code = main(["sweep", "--model", "llama-3-8b", "--batch", "1:64:log7", "--tp", "1,2", "--out", str(out),
                 "--efficiency", "ideal",
                 "--float64", "--no-progress"])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 14 and rows[0]["model"] == "llama-3-8b"
    p = cm.predict("llama-3-8b", "h100-sxm", cm.Workload(batch=64), parallel=cm.Parallel(tp=2), efficiency=cm.IDEAL)
    assert float(rows[-1]["step_time_s"]) == pytest.approx(p.step_time_s, rel=1e-8)  # 9 digits in the CSV
    assert "wrote 14 rows" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--batch", "0:8:log4"], "positive ends"),
    ([], "at least one axis"),
    (["--batch", "1,2", "--out", "s.xlsx"], ".csv or .parquet"),
    (["--tp", "3"], "tp=3 must divide"),
])
def test_cli_bad_axis_is_one_line_exit_2(capsys, argv, message):
    code = main(["sweep", "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_cli_bad_axis_from_the_shell():
    proc = subprocess.run([sys.executable, "-m", "costmodel", "sweep", "--batch", "1:x:4"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("costmodel sweep: error: --batch '1:x:4' is not an axis")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_progress_line_and_exports(tmp_path, capsys):
    r = cm.sweep("llama-3-8b", "h100-sxm", {"batch": [1, 2, 4]}, progress=True, efficiency=cm.IDEAL)
    err = capsys.readouterr().err
    assert "100" in err and "3" in err  # tqdm or the plain line: 100 % of 3 configurations
    if importlib.util.find_spec("pyarrow") is None:
        with pytest.raises(cm.ConfigError, match="pip install pyarrow"):
            r.save(tmp_path / "r.parquet")
    if importlib.util.find_spec("pandas") is not None:
        df = r.to_pandas()
        assert list(df.columns) == r.names and len(df) == 3
    with pytest.raises(cm.ConfigError, match=".csv or .parquet"):
        r.save(tmp_path / "r.xlsx")
