"""Speed of the cost model: one line per figure, ``name: value unit``.

Run: ``python experiments/bench.py`` (add ``--big`` for a 10^8-configuration sweep with its
wall time and peak memory, ``--fleet`` for the fleet plan and the first serving optimisations with an
empty cache, minutes). Figures:

- ``import_time_cold``: ``import costmodel`` in a fresh interpreter (no JAX, no SymPy, no compilation).
- ``sympy_to_jax_s[structure]`` and ``xla_compile_s[structure]``: building and lambdifying the
  expressions, then compiling one sweep chunk, per model structure in the catalog.
- ``decode_evals_per_s_float32/float64``: decode configurations per second through the compiled,
  sharded chunk evaluator that ``costmodel.sweep`` runs for a grid (``costmodel.sweeps.grid``: one
  outer-product block per call), the four swept inputs and six outputs returned, each at the shape of
  the swept axes it depends on (as the sweep's host side receives them); the best of short timing
  windows, since other load on the cores only ever slows a window.
  ``decode_evals_per_s_float32[pareto pre-filter]``: the same plus the device's per-configuration
  frontier test that ``costmodel.sweep(..., pareto=...)`` runs (one flag written per configuration).
  ``decode_evals_per_cpu_s_*``: configurations per CPU-second this process used (all windows), a
  figure other load does not change: on N otherwise idle cores the rate approaches N times it.
  ``decode_evals_per_s_float32[N devices]``: the same with the CPU split into one JAX device per core.
- ``decode_vector_evals_per_s_float32`` and ``serving_evals_per_s_float32``: the compiled decode model
  (every output) and the serving closed forms (mixed prefill+decode step, static-batch decode sum,
  tokens per step) called on 2^16 random configurations per call (batch, context; for serving also
  prefill tokens and decode steps), as a caller with its own arrays uses them.
- ``sweep_pareto_configs_per_s``: the same grid end to end through ``costmodel.sweep`` with the
  frontier kept on the fly (host transfer and reduction included).
- ``numpy_loop_evals_per_s`` and ``speedup_vs_numpy_loop``: the same expressions lambdified to NumPy
  and called once per configuration in a Python loop; ``numpy_vectorised_evals_per_s`` and
  ``speedup_vs_numpy_vectorised``: NumPy over whole chunks.
- ``optimize_cold/warm``: ``costmodel.optimize`` first and second call in this process (the caches
  empty: compilation included).
- ``cli_optimize_empty_cache_s`` and ``cli_optimize_warm_cache_s``: ``costmodel optimize`` (the default
  problem) from the shell, wall time of separate processes, the median of ``--runs`` runs, with an
  empty cache directory each run, then with the one the first run filled; the load average is
  printed beside each.
- ``gradient_first_call_s[empty|warm cache]`` and ``gradient_warm_ms``: in a fresh process, the first
  ``costmodel.optimize`` (gradient) call and the median of later calls.
- ``predict_per_call_ms``: ``costmodel.predict`` of one configuration in a Python loop (warm), and
  ``predict_many_per_config_us`` for the batch API.
- ``serving_optimize_cold[empty|warm cache]``, ``serving_optimize_warm`` and
  ``serving_optimize_warm_new_rate``: ``costmodel.optimize_serving`` of the default serving problem in a
  fresh process: the first call, repeated calls, and calls at rates not solved before in the process.
- ``max_rate_first_call_s`` and ``max_rate_warm_s``: ``costmodel.max_rate`` (``costmodel optimize
  --maximise rate``) of Llama-3.1-70B on 8 H100 SXM (ISL 1024, OSL 256, TTFT 2000 ms, TPOT 50 ms, both
  modes) in a fresh process with a warm cache: the first call, and the median of repeated calls (each a
  new search: the kept ``cm.serve`` confirmations dropped); the rate found and the trial rates it tested
  are printed beside it. ``cli_max_rate_s``: the same from the shell, the median of ``--runs`` processes.
- with ``--fleet``: ``serving_first_call_s[empty cache, MODEL]``, the first ``costmodel.optimize_serving``
  of Llama 3 70B and of DeepSeek-V3 on H100 in a fresh process with an empty cache; and
  ``fleet_plan_s[empty|warm cache]``, ``costmodel.plan`` of the 10-model fleet over every catalog chip of
  ``experiments/fleet_plan.py`` in a fresh process, with an empty cache and then the one it filled.
- ``prompt_queue_solve_ms[n units, cuts|band|sparse]``: one stationary solve of the open-loop prompt queue
  (``costmodel.serving.queueing``) truncated at its longest (4,096 units) at 90% load, with ``n``
  units served a step, by the balance of the cuts (one unit a step, the chain's solver there), the band
  LU the chain uses up to ``BANDED_MAX_UNITS`` and SuperLU (the best of 5 each).
- ``llm_analysis_ratio``: 1,000 decode configurations of Llama 2 7B on H100 (batch x context x tp)
  through llm-analysis, where installed, against ``decode_evals_per_s_float32``; and the wall time
  of the same 1,000 through ``costmodel.sweep`` (compiled already).
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

AXES = {"batch": np.geomspace(1, 1024, 256), "context": np.geomspace(128, 131072, 256),
        "tp": [1, 2, 4, 8], "usd_per_chip_hour": np.linspace(1, 4, 16)}  # 4,194,304 configurations


def line(name: str, value, unit: str = "") -> None:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    print(f"{name}: {text} {unit}".rstrip(), flush=True)


def import_time() -> None:
    code = ("import time, sys; t = time.perf_counter(); import costmodel; "
            "print(time.perf_counter() - t, 'jax' in sys.modules, 'sympy' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
            for _ in range(3)]
    line("import_time_cold", min(float(r[0]) for r in runs), "s")
    line("import_loads_jax", runs[0][1])
    line("import_loads_sympy", runs[0][2])


def chunk_fn(model: str, dtype: str, chunk: int, frontier: str | None = None):
    """One compiled grid chunk over AXES as ``cm.sweep`` runs it: ``(step(i) -> outputs, rows per chunk)``;
    with ``frontier`` also the device pre-filter (against ``inf`` anchors: the same work as real ones)."""
    import jax
    import jax.numpy as jnp
    import costmodel as cm
    from costmodel.compile import compiled
    from costmodel.sweeps.driver import DEFAULT_OUTPUTS, _placed
    from costmodel.sweeps.grid import grid_chunks, grid_function, grid_plan

    sc = cm.scenario(model, "h100-sxm", cm.Workload(batch=1, context=8192))
    sizes = tuple(len(v) for v in AXES.values())
    plan = grid_plan(sizes, chunk, jax.device_count())
    fn = grid_function(sc.model.structure, cm.Rules(), tuple(AXES), sizes, DEFAULT_OUTPUTS, plan, dtype, None,
                       frontier)  # DEFAULT_OUTPUTS hold the cost-latency columns and fits
    anchors = () if frontier is None else (_placed(jnp.full((2, 8), jnp.inf, dtype), None),)
    base = sc.inputs()
    consts = _placed({k: jnp.asarray(base[k], dtype) for k in compiled(sc.model.structure, cm.Rules()).input_names
                      if k not in AXES}, None)  # placed on the devices once, as cm.sweep does
    tables = [np.asarray(v) for v in AXES.values()]
    trailing = _placed(tuple(jnp.asarray(t, dtype) for t in tables[plan.split + 1:]), None)
    calls = [(_placed(lead, None), _placed(block, None, "configs"))
             for lead, block, _ in grid_chunks(tables, plan, dtype)]

    def step(i: int):
        lead, block = calls[i % len(calls)]
        return fn(lead, block, consts, trailing, *anchors)

    return step, plan.padded * plan.inner


def compile_times() -> None:
    """Per model structure: SymPy build and lambdify, then XLA compilation of one sweep chunk."""
    import jax
    import costmodel as cm
    from costmodel.compile import compiled

    first = {}
    for name in cm.list_models():
        first.setdefault(cm.load_model(name).structure, name)
    for structure, model in first.items():
        label = f"{structure.attention}/{structure.mlp}" + ("/q-compressed" if structure.q_compressed else "")
        t = time.perf_counter()
        compiled(structure, cm.Rules())
        line(f"sympy_to_jax_s[{label}]", time.perf_counter() - t, "s")
        t = time.perf_counter()
        step, _ = chunk_fn(model, "float32", 1 << 16)
        jax.block_until_ready(step(0))
        line(f"xla_compile_s[{label}]", time.perf_counter() - t, "s")


def evals_per_s(dtype: str, rounds: int = 6, window_s: float = 0.3, frontier: str | None = None
                ) -> tuple[float, float]:
    """The best rate over short timing windows (other load on the cores only ever slows a window),
    and the configurations per CPU-second of this process over all windows (load-independent)."""
    import jax

    steps = [chunk_fn("llama-3-70b", dtype, chunk, frontier) for chunk in (1 << 15, 1 << 16, 1 << 17)]
    for step, _ in steps:
        jax.block_until_ready(step(0))
    best, done, cpu = 0.0, 0, time.process_time()
    for _ in range(rounds):
        for step, rows in steps:
            n, t = 0, time.perf_counter()
            while time.perf_counter() - t < window_s:
                out = step(n)
                n += 1
            jax.block_until_ready(out)
            best, done = max(best, n * rows / (time.perf_counter() - t)), done + n * rows
    return best, done / (time.process_time() - cpu)


def numpy_baselines(jax_rate: float) -> None:
    import sympy as sp
    import costmodel as cm
    from costmodel.symbolic import outputs

    sc = cm.scenario("llama-3-70b", "h100-sxm", cm.Workload(batch=1, context=8192))
    exprs = outputs(sc.model.structure, cm.Rules())
    keep = ("step_time_s", "usd_per_mtok", "tokens_per_s", "tokens_per_s_per_user", "memory_bytes_per_chip")
    free = sorted(set().union(*(sp.sympify(exprs[k]).free_symbols for k in keep)), key=lambda s: s.name)
    fn = sp.lambdify(free, [exprs[k] for k in keep], modules="numpy", cse=True)
    base = sc.inputs()
    grid = np.stack(np.meshgrid(*AXES.values(), indexing="ij"), -1).reshape(-1, len(AXES))
    rows = grid[np.random.default_rng(0).choice(len(grid), 20_000, replace=False)]
    names = list(AXES)
    t = time.perf_counter()
    for row in rows:
        x = base | dict(zip(names, row))
        out = fn(*(x[s.name] for s in free))
        _ = out[4] <= base["hbm_bytes"] * base["memory_fraction"]
    loop = len(rows) / (time.perf_counter() - t)
    line("numpy_loop_evals_per_s", loop, "configs/s")
    line("speedup_vs_numpy_loop", jax_rate / loop, "x")
    part = grid[: 1 << 20]
    t = time.perf_counter()
    x = base | {n: part[:, i] for i, n in enumerate(names)}
    fn(*(x[s.name] for s in free))
    vec = len(part) / (time.perf_counter() - t)
    line("numpy_vectorised_evals_per_s", vec, "configs/s")
    line("speedup_vs_numpy_vectorised", jax_rate / vec, "x")


def vector_evals_per_s(kind: str, rounds: int = 6, window_s: float = 0.3) -> float:
    """The compiled model (``kind="decode"``: ``costmodel.compile.compiled``) or the serving closed forms
    (``"serving"``: the mixed prefill+decode step, the static-batch decode sum, tokens per step;
    ``compiled_serving``) of Llama 3 70B on 8 H100, called on 2^16 configurations (batch, context and,
    for serving, prefill tokens and decode steps drawn at random), float32, every output returned;
    the best of short timing windows."""
    import jax
    import jax.numpy as jnp
    import costmodel as cm
    from costmodel.compile import compiled, compiled_serving

    sc = cm.scenario("llama-3-70b", "h100-sxm", cm.Workload(batch=1, context=8192), cm.Parallel(tp=8))
    model = (compiled_serving if kind == "serving" else compiled)(sc.model.structure, cm.Rules())
    n, rng = 1 << 16, np.random.default_rng(0)
    x = sc.inputs() | {"steps": 1.0, "prefill_tokens": 0.0, "prefill_position": 0.0, "draft_length": 0.0,
                       "acceptance": 0.0}
    x = {k: jnp.asarray(v, jnp.float32) for k, v in x.items()}
    swept = (("batch", 1, 1024), ("context", 128, 131072))
    swept += (("prefill_tokens", 0, 8192), ("steps", 1, 4096)) if kind == "serving" else ()
    x |= {k: jnp.asarray(rng.uniform(lo, hi, n), jnp.float32) for k, lo, hi in swept}
    jax.block_until_ready(model(x))
    best = 0.0
    for _ in range(rounds):
        k, t = 0, time.perf_counter()
        while time.perf_counter() - t < window_s:
            out = model(x)
            k += 1
        jax.block_until_ready(out)
        best = max(best, k * n / (time.perf_counter() - t))
    return best


def sweep_end_to_end() -> None:
    import costmodel as cm

    runs = [cm.sweep("llama-3-70b", "h100-sxm", AXES, pareto="cost-latency", progress=False, dtype="float32")
            for _ in range(4)]  # the first compiles
    r = min(runs[1:], key=lambda r: r.wall_s)
    line("sweep_pareto_configs_per_s", r.evaluated / r.wall_s, "configs/s")
    line("sweep_pareto_rows_kept", len(r), "rows")


def optimize_times() -> None:
    import costmodel as cm

    opt = getattr(cm, "optimize", None)
    if isinstance(opt, types.ModuleType):
        opt = getattr(opt, "optimize", None)
    if not callable(opt):
        line("optimize_cold", "unavailable")
        line("optimize_warm", "unavailable")
        return
    for name in ("optimize_cold", "optimize_warm"):
        t = time.perf_counter()
        try:
            opt("llama-3-70b", "h100-sxm", context=8192, tpot_s=0.05)
        except Exception as e:  # a benchmark reports, it does not stop
            line(name, f"unavailable ({type(e).__name__}: {e})")
            continue
        line(name, time.perf_counter() - t, "s")


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


def cli_cold(runs: int) -> None:
    """``costmodel optimize`` from the shell: empty cache (a new directory each run), then warm."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = os.environ | {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("COSTMODEL_NO_CACHE", None)
    cmd = [sys.executable, "-m", "costmodel", "optimize"]
    base = tempfile.mkdtemp(prefix="costmodel-bench-")
    try:
        def timed(name: str, cache_of_run) -> None:
            times, loads = [], []
            for i in range(runs):
                env["COSTMODEL_CACHE_DIR"] = cache_of_run(i)
                t = time.perf_counter()
                subprocess.run(cmd, env=env, capture_output=True, check=True)
                times.append(time.perf_counter() - t)
                loads.append(os.getloadavg()[0])
            line(name, statistics.median(times),
                 f"s (median of {runs}; min {min(times):.2f}; load average {statistics.median(loads):.2f})")

        timed("cli_optimize_empty_cache_s", lambda i: os.path.join(base, f"empty{i}"))
        timed("cli_optimize_warm_cache_s", lambda i: os.path.join(base, f"empty{runs - 1}"))  # the last one filled
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "costmodel", "--no-cache", "optimize"], env=env, capture_output=True,
                       check=True)
        line("cli_optimize_no_cache_s", time.perf_counter() - t, f"s ({_load()})")
    finally:
        shutil.rmtree(base, ignore_errors=True)


_GRADIENT = """
import json, statistics, time
import costmodel as cm
t = time.perf_counter(); cm.optimize("llama-3-70b", "h100-sxm", context=8192, tpot_s=0.05); first = time.perf_counter() - t
warm = []
for _ in range(15):
    t = time.perf_counter(); cm.optimize("llama-3-70b", "h100-sxm", context=8192, tpot_s=0.05); warm.append(time.perf_counter() - t)
print(json.dumps([first, statistics.median(warm)]))
"""


def gradient_times() -> None:
    """The first and later gradient solves in a fresh process, with an empty and with a warm cache."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = tempfile.mkdtemp(prefix="costmodel-bench-")
    env = os.environ | {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "COSTMODEL_CACHE_DIR": base}
    env.pop("COSTMODEL_NO_CACHE", None)
    try:
        for label in ("empty cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", _GRADIENT], env=env, capture_output=True, text=True, check=True)
            first, warm = json.loads(out.stdout)
            line(f"gradient_first_call_s[{label}]", first, f"s ({_load()})")
            line(f"gradient_warm_ms[{label}]", warm * 1e3, f"ms (median of 15; {_load()})")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def predict_times() -> None:
    """``cm.predict`` per call in a Python loop, and the batch API per configuration."""
    import costmodel as cm

    args = ("llama-3-70b", "h100-sxm", cm.Workload(batch=64, context=8192))
    cm.predict(*args, parallel=cm.Parallel(tp=8))
    windows = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(200):
            cm.predict(*args, parallel=cm.Parallel(tp=8))
        windows.append((time.perf_counter() - t) / 200)
    line("predict_per_call_ms", statistics.median(windows) * 1e3, f"ms (median of 7 windows of 200 calls; {_load()})")
    configs = [{"model": "llama-3-70b", "hardware": "h100-sxm", "parallel": cm.Parallel(tp=8),
                "workload": cm.Workload(batch=b, context=8192)} for b in range(1, 1025)]
    cm.predict_many(configs)
    t = time.perf_counter()
    cm.predict_many(configs)
    line("predict_many_per_config_us", (time.perf_counter() - t) / len(configs) * 1e6, f"us (1,024 configurations; {_load()})")


_SERVING = """
import json, statistics, time
import costmodel as cm
args = ("llama-3-70b", "h100-sxm", cm.Requests(1024, 256))
kw = dict(ttft_s=0.5, tpot_s=0.05)
t = time.perf_counter(); cm.optimize_serving(*args, rate_per_s=4, **kw); first = time.perf_counter() - t
warm = []
for _ in range(7):
    t = time.perf_counter(); cm.optimize_serving(*args, rate_per_s=4, **kw); warm.append(time.perf_counter() - t)
new = []
for rate in (2.5, 3.0, 3.5, 4.5, 5.0, 5.5, 6.0):
    t = time.perf_counter(); cm.optimize_serving(*args, rate_per_s=rate, **kw); new.append(time.perf_counter() - t)
print(json.dumps([first, statistics.median(warm), statistics.median(new)]))
"""


def serving_optimize_times() -> None:
    """``costmodel.optimize_serving`` of the default serving problem (Llama 3 70B on H100, 1024 in / 256 out,
    4 req/s, TTFT 500 ms, TPOT 50 ms) in a fresh process: the first call with an empty and with a warm
    cache, the median of repeated calls, and the median of seven problems of the same structure at rates
    not solved before in the process (no kept ``cm.serve`` confirmation applies)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = tempfile.mkdtemp(prefix="costmodel-bench-")
    env = os.environ | {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "COSTMODEL_CACHE_DIR": base}
    env.pop("COSTMODEL_NO_CACHE", None)
    try:
        for label in ("empty cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", _SERVING], env=env, capture_output=True, text=True)
            if out.returncode:
                line("serving_optimize_cold", f"unavailable ({out.stderr.strip().splitlines()[-1:]})")
                return
            first, warm, new = json.loads(out.stdout)
            line(f"serving_optimize_cold[{label}]", first, f"s ({_load()})")
        line("serving_optimize_warm", warm * 1e3, f"ms (median of 7 repeats; {_load()})")
        line("serving_optimize_warm_new_rate", new * 1e3, f"ms (median of 7 rates; {_load()})")
    finally:
        shutil.rmtree(base, ignore_errors=True)


_FIRST_SERVING = """
import json, sys, time
import costmodel as cm
t = time.perf_counter()
cm.optimize_serving(sys.argv[1], "h100-sxm", cm.Requests(1024, 256), rate_per_s=4, ttft_s=2.0, tpot_s=0.05)
print(json.dumps(time.perf_counter() - t))
"""

_FLEET = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import costmodel as cm
from fleet_plan import big_fleet
t = time.perf_counter(); p = cm.plan(big_fleet(), efficiency="calibrated")
print(json.dumps([time.perf_counter() - t, p.usd_per_hour]))
"""


def _fresh_env(base: str) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = os.environ | {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "COSTMODEL_CACHE_DIR": base}
    env.pop("COSTMODEL_NO_CACHE", None)
    return env


def first_serving_times() -> None:
    """The first ``costmodel.optimize_serving`` in a fresh process with an empty cache, for a dense and an
    MLA/MoE model (Llama 3 70B and DeepSeek-V3 on H100, 1024 in / 256 out, 4 req/s, TTFT 2 s, TPOT 50 ms)."""
    for model in ("llama-3-70b", "deepseek-v3"):
        base = tempfile.mkdtemp(prefix="costmodel-bench-")
        try:
            out = subprocess.run([sys.executable, "-c", _FIRST_SERVING, model], env=_fresh_env(base),
                                 capture_output=True, text=True)
            if out.returncode:
                line(f"serving_first_call_s[empty cache, {model}]", "unavailable")
                continue
            line(f"serving_first_call_s[empty cache, {model}]", json.loads(out.stdout), f"s ({_load()})")
        finally:
            shutil.rmtree(base, ignore_errors=True)


def fleet_times() -> None:
    """``costmodel.plan`` of the 10-model fleet over every catalog chip of ``experiments/fleet_plan.py`` in a
    fresh process: with an empty cache, then with the cache that run filled."""
    base = tempfile.mkdtemp(prefix="costmodel-bench-")
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        for label in ("empty cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", _FLEET, here], env=_fresh_env(base), capture_output=True,
                                 text=True)
            if out.returncode:
                line(f"fleet_plan_s[{label}]", "unavailable")
                return
            wall, usd = json.loads(out.stdout)
            line(f"fleet_plan_s[{label}]", wall, f"s (10 models x {len(_catalog_chips())} chips, ${usd:.2f}/h; "
                                                 f"{_load()})")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _catalog_chips() -> list[str]:
    import costmodel as cm

    return cm.list_hardware()


_MAX_RATE = """
import json, statistics, time
import costmodel as cm
from costmodel.optimizer.serving.exact import forget_confirmed
args = ("llama-3.1-70b", "h100-sxm", cm.Requests(1024, 256))
kw = dict(max_chips=8, ttft_s=2.0, tpot_s=0.05)
t = time.perf_counter(); a = cm.max_rate(*args, **kw); first = time.perf_counter() - t
warm = []
for _ in range(5):
    forget_confirmed()
    t = time.perf_counter(); a = cm.max_rate(*args, **kw); warm.append(time.perf_counter() - t)
print(json.dumps([first, statistics.median(warm), a.rate_per_s, a.mode,
                  sum(m.evaluations for m in a.modes.values())]))
"""
MAX_RATE_CLI = ("optimize", "--model", "llama-3.1-70b", "--hardware", "h100-sxm", "--isl", "1024", "--osl", "256",
                "--ttft-ms", "2000", "--tpot-ms", "50", "--max-chips", "8", "--maximise", "rate")


def max_rate_times(runs: int) -> None:
    """``costmodel.max_rate`` of Llama-3.1-70B on 8 H100 SXM: in one process (the first call, then the median
    of 5 new searches), and ``costmodel optimize --maximise rate`` from the shell (the median of ``runs``
    processes), each with a cache the first run filled."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = tempfile.mkdtemp(prefix="costmodel-bench-")
    env = os.environ | {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "COSTMODEL_CACHE_DIR": base}
    env.pop("COSTMODEL_NO_CACHE", None)
    try:
        subprocess.run([sys.executable, "-m", "costmodel", *MAX_RATE_CLI], env=env, capture_output=True, check=True)
        out = subprocess.run([sys.executable, "-c", _MAX_RATE], env=env, capture_output=True, text=True, check=True)
        first, warm, rate, mode, evaluations = json.loads(out.stdout)
        line("max_rate_first_call_s[warm cache]", first, f"s ({_load()})")
        line("max_rate_warm_s", warm, f"s (median of 5 searches; {rate:.4g} req/s {mode}, {evaluations} trial "
                                      f"rates over both modes; {_load()})")
        times, loads = [], []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "costmodel", *MAX_RATE_CLI], env=env, capture_output=True,
                           check=True)
            times.append(time.perf_counter() - t)
            loads.append(os.getloadavg()[0])
        line("cli_max_rate_s", statistics.median(times),
             f"s (median of {runs}; min {min(times):.2f}; load average {statistics.median(loads):.2f})")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def llm_analysis_ratio(jax_rate: float) -> None:
    """1,000 decode configurations of Llama 2 7B on H100 SXM through llm-analysis (its own configs)."""
    if importlib.util.find_spec("llm_analysis") is None:
        line("llm_analysis_ratio", "unavailable (llm-analysis not installed)")
        return
    import itertools
    import logging

    import costmodel as cm
    from llm_analysis.analysis import LLMAnalysis
    from llm_analysis.config import (ParallelismConfig, get_dtype_config_by_name, get_gpu_config_by_name,
                                     get_model_config_by_name)
    from llm_analysis.logger import logger

    logger.setLevel(logging.ERROR)
    model, gpu = get_model_config_by_name("NousResearch_Llama-2-7b-hf"), get_gpu_config_by_name("h100-sxm-80gb")
    dtype = get_dtype_config_by_name("w16a16e16")
    axes = {"batch": [2.0**k for k in range(10)], "context": np.geomspace(128, 4000, 25).round(), "tp": [1, 2, 4, 8]}
    t = time.perf_counter()
    for b, c, tp in itertools.product(*axes.values()):
        try:
            LLMAnalysis(model, gpu, dtype, ParallelismConfig(tp_size=tp)).inference(
                batch_size_per_gpu=int(b), seq_len=int(c), num_tokens_to_generate=1)
        except AssertionError:  # llm-analysis asserts when a batch does not fit (it returns early)
            pass
    rate = 1000 / (time.perf_counter() - t)
    line("llm_analysis_configs_per_s", rate, "configs/s")
    line("llm_analysis_ratio", jax_rate / rate, "x")
    cm.sweep("llama-2-7b", "h100-sxm", axes, progress=False, dtype="float32")
    r = cm.sweep("llama-2-7b", "h100-sxm", axes, progress=False, dtype="float32")
    line("sweep_1000_configs_wall_s", r.wall_s, "s")
    line("llm_analysis_1000_configs_wall_s", 1000 / rate, "s")


def prompt_queue_solves() -> None:
    from costmodel.serving import queueing as q

    for n in (1, 8, 64, 512):
        step_s = 0.01 + 0.0005 * np.arange(n + 1)
        arrivals = q._arrival_units(0.9 * n / step_s[n] * step_s, [(1.0, 1)])
        solvers = (("cuts", lambda a, n, q_max: q._stationary_skip_free(a, q_max)),) if n == 1 else ()
        for label, solve in solvers + (("band", q._stationary_banded), ("sparse", q._stationary_sparse)):
            times = []
            for _ in range(5):
                t = time.perf_counter()
                solve(arrivals, n, q.Q_LIMIT)
                times.append(time.perf_counter() - t)
            line(f"prompt_queue_solve_ms[{n} units, {label}]", min(times) * 1e3, f"ms ({_load()})")


def big_sweep() -> None:
    import costmodel as cm

    axes = AXES | {"batch": np.geomspace(1, 1024, 1526)}  # 1526·256·4·16 = 25,001,984 per chip
    t = time.perf_counter()
    r = cm.sweep("llama-3-70b", ["h100-sxm", "h200", "b200", "mi300x"], axes, pareto="cost-latency",
                 dtype="float32", progress=True)
    wall = time.perf_counter() - t
    line("big_sweep_configs", r.evaluated, "configs")
    line("big_sweep_wall_s", wall, "s")
    line("big_sweep_configs_per_s", r.evaluated / wall, "configs/s")
    line("big_sweep_frontier_rows", len(r), "rows")
    line("big_sweep_peak_rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "GiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", action="store_true", help="also run a 10^8-configuration sweep")
    ap.add_argument("--rate-only", action="store_true", help="print only the float32 evaluation rate")
    ap.add_argument("--startup-only", action="store_true",
                    help="print only the start-up figures: cold CLI, gradient solves, predict per call")
    ap.add_argument("--serving-only", action="store_true", help="print only the serving optimiser's figures")
    ap.add_argument("--max-rate-only", action="store_true", help="print only the --maximise rate figures")
    ap.add_argument("--fleet", action="store_true",
                    help="also plan the 10-model fleet over every chip (minutes), and time the first serving "
                         "optimisation of two models with an empty cache")
    ap.add_argument("--runs", type=int, default=5, help="processes per cold-start figure (default 5)")
    args = ap.parse_args()
    # in-process figures start from an empty cache of their own (compilation measured, the user's kept)
    os.environ["COSTMODEL_CACHE_DIR"] = tempfile.mkdtemp(prefix="costmodel-bench-")
    atexit.register(shutil.rmtree, os.environ["COSTMODEL_CACHE_DIR"], ignore_errors=True)
    if args.max_rate_only:
        line("load_average_1min", os.getloadavg()[0])
        max_rate_times(args.runs)
        if args.fleet:
            first_serving_times()
            fleet_times()
        return
    if args.serving_only:
        line("load_average_1min", os.getloadavg()[0])
        prompt_queue_solves()
        serving_optimize_times()
        max_rate_times(args.runs)
        return
    if args.startup_only:
        line("load_average_1min", os.getloadavg()[0])
        import_time()
        cli_cold(args.runs)
        gradient_times()
        predict_times()
        serving_optimize_times()
        return
    if args.rate_only:
        import jax

        line(f"decode_evals_per_s_float32[{jax.device_count()} devices]", evals_per_s("float32")[0], "configs/s")
        return
    line("cpu_cores", os.cpu_count())
    line("load_average_1min", os.getloadavg()[0])  # other processes on the cores slow every figure
    import_time()
    import jax

    line("jax_devices", jax.device_count())
    compile_times()
    rate32, per_cpu32 = evals_per_s("float32")
    line("decode_evals_per_s_float32", rate32, "configs/s")
    line("decode_evals_per_cpu_s_float32", per_cpu32, "configs/CPU-s")
    line("decode_evals_per_s_float32[pareto pre-filter]", evals_per_s("float32", frontier="cost-latency")[0],
         "configs/s")
    with jax.enable_x64(True):
        rate64, per_cpu64 = evals_per_s("float64")
    line("decode_evals_per_s_float64", rate64, "configs/s")
    line("decode_evals_per_cpu_s_float64", per_cpu64, "configs/CPU-s")
    cores = os.cpu_count() or 1
    env = os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={cores}"}
    print(subprocess.run([sys.executable, __file__, "--rate-only"], env=env, capture_output=True, text=True,
                         check=True).stdout, end="", flush=True)
    line("decode_vector_evals_per_s_float32", vector_evals_per_s("decode"), f"configs/s ({_load()})")
    line("serving_evals_per_s_float32", vector_evals_per_s("serving"), f"configs/s ({_load()})")
    sweep_end_to_end()
    numpy_baselines(rate32)
    llm_analysis_ratio(rate32)
    optimize_times()
    cli_cold(args.runs)
    gradient_times()
    predict_times()
    prompt_queue_solves()
    serving_optimize_times()
    max_rate_times(args.runs)
    if args.fleet:
        first_serving_times()
        fleet_times()
    if args.big:
        big_sweep()


if __name__ == "__main__":
    main()
