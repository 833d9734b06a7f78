"""The optimiser: equal to exhaustive search, feasible under the exact model, monotone, honest when infeasible."""

import jax
import numpy as np
import pytest

import costmodel as cm
from costmodel.optimizer.gradient import relaxed_solve
from costmodel.optimizer.problem import make_problem
from costmodel.relax import relaxed
from costmodel.compile import compiled

PROBLEMS = [
    ("llama-3-70b", "h100-sxm", dict()),  # the CLI default
    ("llama-3-8b", "h100-sxm", dict(context=4096, tpot_s=0.01, max_chips=8)),
    ("llama-3-70b", "h100-sxm", dict(tpot_s=0.009)),
    ("mixtral-8x7b", "a100-80gb", dict(context=2048, tpot_s=0.02, max_chips=16)),
    ("deepseek-v3", "b200", dict(context=32768, tpot_s=0.05, max_chips=64)),
    ("llama-3-70b", "h200", dict(tpot_s=0.03, ttft_s=0.5, weights="bf16,fp8", kv="bf16,fp8",
                                 demand_tokens_per_s=20000, max_chips=256)),
    ("llama-2-13b", "tpu-v5e", dict(context=8192, tpot_s=0.05, max_chips=32)),
]


@pytest.fixture(scope="module")
def solved():
    # the problems are sized for the ideal roofline, asked for by name
    return {i: (cm.optimize(m, h, method="gradient", efficiency=cm.IDEAL, **kw),
                cm.optimize(m, h, method="exhaustive", efficiency=cm.IDEAL, **kw))
            for i, (m, h, kw) in enumerate(PROBLEMS)}


@pytest.mark.parametrize("i", range(len(PROBLEMS)))
def test_gradient_equals_exhaustive(solved, i):
    grad, exh = solved[i]
    assert grad.feasible == exh.feasible
    assert grad.usd_per_mtok == pytest.approx(exh.usd_per_mtok, rel=1e-3)


@pytest.mark.parametrize("i", range(len(PROBLEMS)))
def test_answer_is_feasible_under_the_exact_model(solved, i):
    model, hw, kw = PROBLEMS[i]
    sol = solved[i][0]
    assert sol.feasible, sol.message
    c = sol.config
    p = cm.predict(model, hw, cm.Workload(batch=c["batch"], context=kw.get("context", 8192)),
                   parallel=cm.Parallel(tp=c["tp"], pp=c["pp"], ep=c["ep"], replicas=c["replicas"]),
                   precision=cm.Precision(weights=c["weights"], kv=c["kv"]), efficiency=cm.IDEAL)
    assert p.fits
    assert p.step_time_s <= kw.get("tpot_s", 0.05) * (1 + 1e-6)
    assert c["chips"] <= kw.get("max_chips", 64)
    if kw.get("demand_tokens_per_s"):
        assert p.tokens_per_s >= kw["demand_tokens_per_s"] * (1 - 1e-6)
    else:  # cost per token of one replica: chips · price · step / (3600 · batch)
        price = cm.load_hardware(hw).usd_per_chip_hour
        expect = 1e6 * c["chips"] * price * p.step_time_s / (3600 * c["batch"])
        assert sol.usd_per_mtok == pytest.approx(expect, rel=1e-5)


def test_exhaustive_equals_brute_force_over_predict():
    # an independent oracle: every split and batch through the public predict(), in a Python loop
    kw = dict(context=4096, tpot_s=0.008, max_chips=2)
    best = None
    for tp, pp in ((1, 1), (2, 1), (1, 2)):
        for batch in range(pp, 1200, pp):
            p = cm.predict("llama-3-8b", "h100-sxm", cm.Workload(batch=batch, context=kw["context"]),
                           parallel=cm.Parallel(tp=tp, pp=pp), efficiency=cm.IDEAL)
            if p.fits and p.step_time_s <= kw["tpot_s"]:
                best = p.usd_per_mtok if best is None else min(best, p.usd_per_mtok)
    assert best is not None
    for method in ("exhaustive", "gradient"):
        s = cm.optimize("llama-3-8b", "h100-sxm", method=method, efficiency=cm.IDEAL, **kw)
        assert s.usd_per_mtok == pytest.approx(best, rel=1e-5)


def test_tightening_the_target_never_lowers_the_cost():
    costs = []
    for tpot in (0.08, 0.05, 0.03, 0.02, 0.012, 0.008):
        s = cm.optimize("llama-3-70b", "h100-sxm", context=8192, tpot_s=tpot, max_chips=32, efficiency=cm.IDEAL)
        assert s.feasible
        costs.append(s.usd_per_mtok)
    assert all(b >= a * (1 - 1e-6) for a, b in zip(costs, costs[1:]))


def test_impossible_target_is_an_answer():
    s = cm.optimize("llama-3-70b", "h100-sxm", tpot_s=0.001, max_chips=16, efficiency=cm.IDEAL)
    e = cm.optimize("llama-3-70b", "h100-sxm", tpot_s=0.001, max_chips=16, method="exhaustive", efficiency=cm.IDEAL)
    assert not s.feasible and not e.feasible
    assert s.fastest_step_time_s == pytest.approx(e.fastest_step_time_s, rel=1e-6)
    assert s.fastest_step_time_s > 0.001
    assert "fastest possible is" in s.message and "relax the target" in s.message
    assert s.config is not None and s.step_time_s == pytest.approx(s.fastest_step_time_s, rel=1e-5)
    d = s.to_dict()
    assert d["feasible"] is False and d["config"]["chips"] <= 16


def test_what_to_relax_is_suggested_when_it_helps():
    at8 = cm.optimize("llama-3-70b", "h100-sxm", tpot_s=0.001, max_chips=8, efficiency=cm.IDEAL).fastest_step_time_s
    at16 = cm.optimize("llama-3-70b", "h100-sxm", tpot_s=0.001, max_chips=16, efficiency=cm.IDEAL).fastest_step_time_s
    assert at16 < at8
    s = cm.optimize("llama-3-70b", "h100-sxm", tpot_s=(at8 + at16) / 2, max_chips=8, efficiency=cm.IDEAL)
    assert not s.feasible and "allow 16 chips" in s.message
    # fp8 weights halve the weight fetch: suggested when they reach the target
    s = cm.optimize("llama-3-70b", "h100-sxm", tpot_s=at16 * 0.8, max_chips=16, efficiency=cm.IDEAL)
    assert not s.feasible and "allow fp8 weights" in s.message


@pytest.mark.parametrize("method", ["gradient", "exhaustive"])
def test_unreachable_ttft_is_named(method):
    s = cm.optimize("llama-3-70b", "h100-sxm", ttft_s=0.001, method=method, efficiency=cm.IDEAL)
    assert not s.feasible and s.binding == "ttft"
    assert "no configuration meets TTFT 1 ms" in s.message and "TPOT" not in s.message


@pytest.mark.parametrize("method", ["gradient", "exhaustive"])
def test_unservable_demand_says_how_many_chips(method):
    s = cm.optimize("llama-3-70b", "h100-sxm", demand_tokens_per_s=50_000, max_chips=16, method=method, efficiency=cm.IDEAL)
    assert not s.feasible and s.binding == "chips"
    per_replica, tps = s.config["chips"], s.to_dict()["tokens_per_s"]
    need = per_replica * int(np.ceil(50_000 / tps))
    assert f"needs {need} h100-sxm chips" in s.message and need > 16


def test_model_that_does_not_fit_says_so():
    s = cm.optimize("llama-3.1-405b", "h100-sxm", max_chips=4, efficiency=cm.IDEAL)
    assert not s.feasible and s.config is None
    assert "does not fit on 4 h100-sxm chips" in s.message


def test_shadow_price_matches_a_finite_difference():
    # TPOT binds here; the shadow price is d(cost)/d(target) at the chosen split
    kw = dict(context=4096, tpot_s=0.01, max_chips=8)
    s = cm.optimize("llama-3-8b", "h100-sxm", **kw)
    assert s.binding == "tpot"
    lo = cm.optimize("llama-3-8b", "h100-sxm", **(kw | {"tpot_s": 0.0095}))
    hi = cm.optimize("llama-3-8b", "h100-sxm", **(kw | {"tpot_s": 0.0105}))
    fd = (hi.usd_per_mtok - lo.usd_per_mtok) / 1.0  # per ms
    assert s.shadow_price_usd_per_mtok_per_ms < 0
    assert s.shadow_price_usd_per_mtok_per_ms == pytest.approx(fd, rel=0.1)


def test_relaxed_gradients_are_finite():
    problem = make_problem("deepseek-v3", "b200", context=32768, efficiency=cm.IDEAL)
    rr = relaxed_solve(problem)
    assert np.all(np.isfinite(rr.u)) and np.all(np.isfinite(rr.objective))
    m = relaxed(problem.model.structure)
    x = problem.base.inputs()
    for k in (1.0, 16.0, 256.0):
        g = jax.grad(lambda t: m.raw(x | {"tp": t, "batch": 64.0, "sharpness": k})["usd_per_mtok"])(1.0)
        assert np.isfinite(float(g))


@pytest.mark.parametrize("model", ["llama-3-70b", "deepseek-v3"])
def test_relaxation_tends_to_the_exact_model(model):
    sc = cm.scenario(model, "h100-sxm", cm.Workload(batch=64, context=8192), cm.Parallel(tp=8), efficiency=cm.IDEAL)
    x = sc.inputs()
    exact = float(compiled(sc.model.structure)(x)["step_time_s"])
    r = relaxed(sc.model.structure)
    errs = [abs(float(r.raw(x | {"sharpness": k})["step_time_s"]) / exact - 1) for k in (4.0, 64.0, 1024.0)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3
    # sharpness 1 is the sum of the terms: an upper bound
    assert float(r.raw(x | {"sharpness": 1.0})["step_time_s"]) >= exact


@pytest.mark.parametrize("kw, match", [
    (dict(tpot_s=0), r"tpot_s must be a number in \[1e-07, 86400\] seconds, got 0"),
    (dict(tpot_s=float("nan")), r"tpot_s must be a number in \[1e-07, 86400\] seconds, got nan"),
    (dict(max_chips=0), "max_chips must be a whole number"),
    (dict(weights="fp4"), "cannot compute in fp4"),
    (dict(weights="bf17"), "unknown weights precision"),
    (dict(method="random"), "method must be one of gradient, exhaustive"),
    (dict(n_alternatives=-1), r"n_alternatives must be a whole number in \[0, 1000\]"),
])
def test_bad_input(kw, match):
    with pytest.raises(cm.CostModelError, match=match):
        cm.optimize("llama-3-70b", "h100-sxm", **kw)
