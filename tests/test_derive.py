"""Closed forms of costmodel.derive, each checked two ways: against the worked numbers of docs/theory.md and
against a numerical solve of the compiled JAX model (the expression SymPy solved is the model's own).

Where a published figure and the model differ by construction the test says why: the model never streams or
multiplies the input-embedding gather and counts no FLOPs for norms (docs/theory.md §5.2, §17), and its
compute term includes the decode attention FLOPs that the published S_wall (docs/theory.md §7.3) leaves out.
"""

import functools

import jax
import matplotlib
import numpy as np
import pytest
import sympy as sp

matplotlib.use("Agg")
from matplotlib.mathtext import MathTextParser  # noqa: E402

import costmodel as cm  # noqa: E402
from costmodel import derive  # noqa: E402
from costmodel.compile import compiled  # noqa: E402
from costmodel.symbolic import Rules  # noqa: E402

LLAMA, H100 = "llama-3-70b", "h100-sxm"
REL = 1e-9  # closed form against the compiled model: same expression, float64 round-off only


@functools.cache
def d(name, *args, **kw):
    return getattr(derive, name)(*args, **kw)


def model_at(batch, context, *, tp=8, model=LLAMA, hw=H100, rules=Rules(), **over):
    sc = cm.scenario(model, hw, cm.Workload(batch=1, context=context), cm.Parallel(tp=tp), efficiency=cm.IDEAL)
    x = sc.inputs() | {"batch": float(batch)} | over
    return {k: float(v) for k, v in compiled(sc.model.structure, rules)(x).items()}, sc


def bisect(f, lo, hi, iters=200):
    """A root of f in [lo, hi] (f changes sign), to float64 precision."""
    flo = f(lo)
    assert flo * f(hi) < 0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if (f(mid) < 0) == (flo < 0):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# --- docs/theory.md numbers ----------------------------------------------------------------------

@pytest.mark.parametrize("hw, weights, expected, rel", [
    ("h100-sxm", None, 295, 2e-3),        # docs/theory.md §7.1: H100 bf16 R = 295
    ("tpu-v5e", None, 240, 3e-3),         # docs/theory.md §7.1: v5e bf16/bf16 240 [S]
    ("tpu-v5e", "int8", 120, 3e-3),       # docs/theory.md §7.1: v5e int8 weights, bf16 math 120 [S]
])
def test_critical_batch_is_R(hw, weights, expected, rel):
    # P_w/P_mm = 1 + 2e-5 for LLaMA-3 70B (norms are fetched but not multiplied), so B* = R
    kw = {"weights": weights} if weights else {}
    assert d("critical_batch", LLAMA).value(LLAMA, hw, tp=8, **kw) == pytest.approx(expected, rel=rel)


def test_critical_batch_moe_is_R_sigma():
    # docs/theory.md §7.2: DeepSeek-V3 fp8 on B200, sigma = 671/37: B* ~ 281 * 18.1 ~ 5,100. The model's
    # P_w/P_mm = 670.1B/36.7B (no input embedding in either, no norms in P_mm): 0.9% above.
    dv = d("critical_batch", "deepseek-v3")
    assert dv.value("deepseek-v3", "b200") == pytest.approx(5100, rel=0.012)
    assert any("phi" in a for a in dv.assumptions)  # the large-batch limit phi -> 1 is stated
    # and it is the limit of the expected-fetch model: phi(B) -> 1
    B = sp.Symbol("batch", positive=True)
    assert sp.limit(1 - (1 - sp.Rational(8, 256)) ** B, B, sp.oo) == 1  # DeepSeek: k/E = 8/256


def test_context_wall_llama3_70b():
    # docs/theory.md §7.3: S_wall ~ 1,460 for LLaMA-3 70B on H100 bf16; the model adds the attention FLOPs
    # to the compute slope (+2.7%) and multiplies P_mm = P_tot - embedding (-1.5%): 1,476
    assert d("context_wall", LLAMA).value(LLAMA, H100, tp=8) == pytest.approx(1460, rel=0.015)


def test_weight_floor_llama3_70b():
    # docs/theory.md §8: 5.26 ms on 8xH100 bf16, computed with the input embedding; the model does not
    # stream the embedding gather (docs/theory.md §5.2, §17), 1.05B of 70.55B parameters: 1.5% lower
    floor = d("latency_floor", LLAMA, kv=False, communication=False).value(LLAMA, H100, tp=8)
    assert floor == pytest.approx(5.26e-3 * (1 - 1.05 / 70.55), rel=2e-3)
    assert floor == pytest.approx(5.26e-3, rel=0.016)


def test_max_batch_llama3_70b_8k():
    # docs/theory.md §7.4, §15.5 count 80e9 bytes per H100 (185.9 sequences at 8k); the card holds 80 GiB:
    # (85,899,345,920 B of 80 GiB - 17,638,426,624 B of weights) / (335,544,320 B KV + 96,896 B
    # activations) per sequence = 203.37; activations take 0.03%
    assert d("max_batch", LLAMA).value(LLAMA, H100, tp=8, context=8192) == pytest.approx(203.37, rel=1e-4)


def test_fast_mode_calibration_is_exact():
    # docs/theory.md §11.1: "6x the price for 2.5x the speed" solves to f = 5/14, exactly
    inv = d("fast_mode_floor_fraction")
    r, s = sp.Symbol("price_ratio", positive=True), sp.Symbol("speedup", positive=True)
    assert inv.expr.subs({r: 6, s: sp.Rational(5, 2)}) == sp.Rational(5, 14)
    ratio = d("fast_mode_cost_ratio")
    f = sp.Symbol("floor_fraction", positive=True)
    assert sp.simplify(ratio.expr - (1 - f) / (1 - s * f)) == 0        # c1/c0 = (1-f)/(1-sf)
    assert sp.limit(ratio.expr, s, 0) == 1 - f                          # slow mode saves at most f
    assert sp.solve(sp.denom(sp.together(ratio.expr)), s) == [1 / f]   # ceiling s_max = 1/f ~ 2.8
    assert ratio.value(floor_fraction=5 / 14, speedup=2.5) == pytest.approx(6, rel=1e-12)


def test_speculative_tokens_per_step():
    # docs/theory.md §12: E[n] = (1 - a^(g+1))/(1 - a); a = 0.8, g = 4: 1 + .8 + .64 + .512 + .4096
    e = d("speculative_tokens_per_step")
    a, g = sp.Symbol("acceptance", positive=True), sp.Symbol("draft_tokens", positive=True)
    assert sp.simplify(e.expr - (1 - a ** (g + 1)) / (1 - a)) == 0
    assert e.value(acceptance=0.8, draft_tokens=4) == pytest.approx(3.3616, rel=1e-12)


def test_frontier_is_theory_hyperbola():
    # docs/theory.md §10: c(l) = (p S kappa / W)/(1 - l0/l); the derivation raises unless SymPy confirms it
    fr = d("cost_latency_frontier", LLAMA)
    ell = sp.Symbol("tpot_s", positive=True)
    assert sp.simplify(fr.compact.xreplace(fr.definitions) - fr.expr) == 0
    assert sp.limit(fr.compact, ell, sp.oo).free_symbols.isdisjoint({ell})
    # large latency: the KV floor 1e6/3600 * p * S * kappa / W in USD/Mtok (docs/theory.md §9, lower envelope)
    kv_floor = fr.value(LLAMA, H100, tp=8, context=8192, tpot_s=1e12)
    assert kv_floor == pytest.approx(1e6 / 3600 * 2.0 * 8192 * 327680 / 3.35e12, rel=1e-9)


# --- against the compiled JAX model --------------------------------------------------------------

def test_critical_batch_kv_is_where_terms_cross():
    out = lambda b: model_at(b, 512)[0]  # noqa: E731 (below S_wall the crossing exists)
    root = bisect(lambda b: out(b)["compute_s"] - out(b)["weights_s"] - out(b)["kv_s"], 1, 1e5)
    assert d("critical_batch", LLAMA, kv=True).value(LLAMA, H100, tp=8, context=512) == pytest.approx(root, rel=REL)


def test_critical_batch_no_kv_is_where_terms_cross():
    # context -> 0: the compiled model at a tiny context crosses at R (B* moves by 1e-8 per token); the
    # limit is below the one-token floor of a Workload, so it is set on the inputs directly
    sc = cm.scenario(LLAMA, H100, cm.Workload(), cm.Parallel(tp=8), efficiency=cm.IDEAL)
    f = compiled(sc.model.structure, Rules())
    out = lambda b: {k: float(v) for k, v in f(sc.inputs() | {"batch": float(b), "context": 1e-6}).items()}  # noqa: E731
    root = bisect(lambda b: out(b)["compute_s"] - out(b)["weights_s"] - out(b)["kv_s"], 1, 1e4)
    assert d("critical_batch", LLAMA).value(LLAMA, H100, tp=8) == pytest.approx(root, rel=1e-7)


def test_context_wall_is_where_slopes_match():
    wall = d("context_wall", LLAMA).value(LLAMA, H100, tp=8)
    sc = model_at(1, wall)[1]
    f = compiled(sc.model.structure, Rules())
    def term(name):
        return lambda b: f.raw(sc.inputs() | {"batch": b})[name]

    slope_c, slope_kv = jax.grad(term("compute_s"))(64.0), jax.grad(term("kv_s"))(64.0)
    assert float(slope_c) == pytest.approx(float(slope_kv), rel=REL)
    # just above the wall no batch is compute-bound; just below, a large one is
    above, below = model_at(1e7, wall * 1.01)[0], model_at(1e7, wall * 0.99)[0]
    assert above["compute_s"] < above["weights_s"] + above["kv_s"]
    assert below["compute_s"] > below["weights_s"] + below["kv_s"]


def test_max_batch_fills_memory():
    b = d("max_batch", LLAMA).value(LLAMA, H100, tp=8, context=8192)
    out = model_at(b, 8192)[0]
    assert out["memory_bytes_per_chip"] == pytest.approx(out["usable_bytes_per_chip"], rel=REL)
    assert out["max_batch"] == pytest.approx(b, rel=REL)  # the model's own capacity output agrees


def test_cheapest_batch_meets_target_exactly():
    target = 0.012  # below the memory cap: the latency binds
    b = d("cheapest_batch", LLAMA).value(LLAMA, H100, tp=8, context=8192, tpot_s=target)
    assert 1 < b < d("max_batch", LLAMA).value(LLAMA, H100, tp=8, context=8192)
    assert model_at(b, 8192)[0]["step_time_s"] == pytest.approx(target, rel=REL)
    costs = [model_at(x, 8192)[0]["usd_per_mtok"] for x in (b / 2, b)]
    assert costs[1] < costs[0]  # cheaper at the larger batch that still meets the target
    # a generous target is capped by memory
    assert d("cheapest_batch", LLAMA).value(LLAMA, H100, tp=8, context=8192, tpot_s=1.0) == pytest.approx(
        d("max_batch", LLAMA).value(LLAMA, H100, tp=8, context=8192), rel=REL)


def test_latency_floor_is_step_at_batch_one():
    floor = d("latency_floor", LLAMA).value(LLAMA, H100, tp=8, context=8192)
    assert model_at(1, 8192)[0]["step_time_s"] == pytest.approx(floor, rel=REL)
    grid = [model_at(b, 8192)[0]["step_time_s"] for b in (1, 2, 8, 64)]
    assert min(grid) == grid[0]


def test_frontier_matches_compiled_cost():
    out = model_at(64, 8192, rules=Rules(comm_overlap="full"))[0]  # no communication in the closed form
    ell = out["weights_s"] + out["kv_s"]
    c = d("cost_latency_frontier", LLAMA).value(LLAMA, H100, tp=8, context=8192, tpot_s=ell)
    assert c == pytest.approx(out["usd_per_mtok"], rel=REL)


def test_fast_mode_ratio_matches_compiled_batches():
    rules = Rules(comm_overlap="full")
    step = lambda b: model_at(b, 8192, rules=rules)[0]  # noqa: E731
    b0, speedup = 64.0, 1.5
    b1 = bisect(lambda b: step(b)["step_time_s"] - step(b0)["step_time_s"] / speedup, 1, b0)
    ratio = step(b1)["usd_per_mtok"] / step(b0)["usd_per_mtok"]
    f = d("floor_fraction", LLAMA).value(LLAMA, H100, tp=8, context=8192, batch=b0)
    assert d("fast_mode_cost_ratio").value(floor_fraction=f, speedup=speedup) == pytest.approx(ratio, rel=1e-9)


def test_speculative_cost_without_drafts_is_plain_decode():
    out = model_at(16, 8192, rules=Rules(comm_overlap="full"))[0]
    c = d("speculative_cost", LLAMA).value(LLAMA, H100, tp=8, context=8192, batch=16, acceptance=0.8,
                                            draft_tokens=0, draft_step_s=1e-3)
    assert c == pytest.approx(out["usd_per_mtok"], rel=REL)
    # four drafts at a = 0.8 emit 3.36 tokens per step for nearly the same memory-bound step
    c4 = d("speculative_cost", LLAMA).value(LLAMA, H100, tp=8, context=8192, batch=16, acceptance=0.8,
                                             draft_tokens=4, draft_step_s=0.0)
    assert c4 == pytest.approx(c / 3.3616, rel=1e-6)


# --- sensitivities, LaTeX, errors ----------------------------------------------------------------

def test_sensitivities_match_finite_differences():
    wl, par = cm.Workload(batch=64, context=8192), cm.Parallel(tp=8)
    s = derive.sensitivities(LLAMA, H100, wl, parallel=par)
    assert s["usd_per_mtok"].elasticity["usd_per_chip_hour"] == pytest.approx(1.0, rel=1e-12)
    assert s["usd_per_mtok"].elasticity["flops_per_s"] == 0.0  # memory-bound: compute does not bind
    sc = cm.scenario(LLAMA, H100, wl, par, efficiency=cm.IDEAL)
    f = compiled(sc.model.structure, Rules())
    for name in ("hbm_bytes_per_s", "scale_up_bytes_per_s", "collective_latency_s"):
        x0, h = sc.inputs()[name], sc.inputs()[name] * 1e-6
        val = lambda v: float(f(sc.inputs() | {name: v})["usd_per_mtok"])  # noqa: E731
        fd = (val(x0 + h) - val(x0 - h)) / (2 * h)
        assert s["usd_per_mtok"].gradient[name] == pytest.approx(fd, rel=1e-6)
    # more bandwidth never costs more
    assert s["usd_per_mtok"].gradient["hbm_bytes_per_s"] < 0


ALL = [("critical_batch", (LLAMA,), {}), ("critical_batch", (LLAMA,), {"kv": True}),
       ("critical_batch", ("deepseek-v3",), {}), ("context_wall", (LLAMA,), {}), ("max_batch", (LLAMA,), {}),
       ("latency_floor", (LLAMA,), {}), ("cheapest_batch", (LLAMA,), {}),
       ("cost_latency_frontier", (LLAMA,), {}), ("floor_fraction", (LLAMA,), {}),
       ("fast_mode_cost_ratio", (), {}), ("fast_mode_floor_fraction", (), {}),
       ("speculative_tokens_per_step", (), {}), ("speculative_cost", (LLAMA,), {})]


@pytest.mark.parametrize("name, args, kw", ALL)
def test_latex_parses_and_compact_form_is_exact(name, args, kw):
    der = d(name, *args, **kw)
    parser = MathTextParser("agg")
    for tex in [der.latex, *(s.latex for s in der.steps)]:
        parser.parse(f"${tex}$", 72)
    if der.compact is not None and der.definitions:
        assert sp.simplify(der.compact.xreplace(der.definitions) - der.expr) == 0


def test_missing_input_is_a_clear_error():
    with pytest.raises(cm.ConfigError, match="tpot_s"):
        d("cheapest_batch", LLAMA).value(LLAMA, H100, tp=8)
    with pytest.raises(cm.ConfigError, match="both a model and a hardware"):
        d("max_batch", LLAMA).value(LLAMA)


def test_derive_is_sympy_only():
    import subprocess
    import sys

    code = "import costmodel.derive, sys; assert 'jax' not in sys.modules, 'jax imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    assert np.isfinite(d("critical_batch", LLAMA).value(LLAMA, H100))
