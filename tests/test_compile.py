"""The compiled JAX model equals SymPy, and behaves under jit, vmap and grad."""

import itertools

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import costmodel as cm
from costmodel.compile import compiled
from costmodel.symbolic import Rules

from helpers import sympy_values

CASES = [(m, h) for m in cm.list_models() for h in cm.list_hardware()]
RULES = [Rules(phase, combine, overlap) for phase, combine, overlap in
         itertools.product(("decode", "prefill"), ("max", "sum", "scaling-book"), ("none", "full"))]


def _scenario(model, hw, **kw):
    m = cm.load_model(model)
    par = cm.Parallel(tp=8 if m.n_heads % 8 == 0 else 1, ep=8 if m.mlp == "moe" else 1)
    weights = "fp8" if "fp8" in cm.load_hardware(hw).flops_per_s else "bf16"
    wl = cm.Workload(batch=kw.get("batch", 48), context=kw.get("context", 3000), prompt=kw.get("prompt", 700))
    return cm.scenario(model, hw, wl, par, cm.Precision(weights=weights))


@pytest.mark.parametrize("model, hw", CASES)
def test_sympy_equals_jax_every_model_and_chip(model, hw):
    sc = _scenario(model, hw)
    for rules in (Rules(), Rules("prefill", "sum", "full")):
        jx = compiled(sc.model.structure, rules)(sc.inputs())
        sy = sympy_values(sc.model.structure, rules, sc.inputs())
        for k, v in sy.items():
            np.testing.assert_allclose(float(jx[k]), v, rtol=1e-12, atol=0, err_msg=f"{model} {hw} {k}")


@pytest.mark.parametrize("rules", RULES, ids=str)
def test_sympy_equals_jax_every_rule(rules):
    for model in ("llama-3-70b", "deepseek-v3", "mixtral-8x7b"):
        sc = _scenario(model, "h100-sxm")
        jx = compiled(sc.model.structure, rules)(sc.inputs())
        sy = sympy_values(sc.model.structure, rules, sc.inputs())
        for k, v in sy.items():
            np.testing.assert_allclose(float(jx[k]), v, rtol=1e-12, err_msg=f"{model} {k}")


def test_jit_equals_eager():
    sc = _scenario("deepseek-v3", "b200")
    cmod = compiled(sc.model.structure, Rules())
    eager = cmod.raw(sc.inputs())
    jitted = cmod(sc.inputs())
    for k in eager:
        np.testing.assert_allclose(jitted[k], eager[k], rtol=1e-14)


def test_vmap_equals_loop():
    sc = _scenario("llama-3-70b", "h100-sxm")
    cmod = compiled(sc.model.structure, Rules())
    batches = jnp.array([1.0, 7.0, 64.0, 300.0, 1024.0])
    bandwidths = jnp.array([1e12, 2e12, 3.35e12, 4.8e12, 8e12])
    inputs = sc.inputs()
    vm = jax.vmap(lambda b, w: cmod.raw(inputs | {"batch": b, "hbm_bytes_per_s": w}))(batches, bandwidths)
    for i, (b, w) in enumerate(zip(batches, bandwidths)):
        one = cmod(inputs | {"batch": float(b), "hbm_bytes_per_s": float(w)})
        for k in one:
            np.testing.assert_allclose(vm[k][i], one[k], rtol=1e-13)


@pytest.mark.parametrize("model", ["llama-3-70b", "deepseek-v3", "mixtral-8x7b"])
def test_gradients_match_finite_differences(model):
    sc = _scenario(model, "h100-sxm", batch=37.3)  # away from the max() kink
    cmod = compiled(sc.model.structure, Rules())
    base = sc.inputs()
    names = ["batch", "context", "hbm_bytes_per_s", "flops_per_s", "weight_bytes", "usd_per_chip_hour"]

    def cost_of_logs(log_x):  # log inputs: one finite-difference step suits values from 1 to 1e15
        return cmod.raw(base | dict(zip(names, jnp.exp(log_x))))["usd_per_mtok"]

    log_x0 = jnp.log(jnp.array([base[n] for n in names]))
    assert bool(jnp.all(jnp.isfinite(jax.grad(cost_of_logs)(log_x0))))
    check_grads(cost_of_logs, (log_x0,), order=1, modes=("fwd", "rev"), eps=1e-6, rtol=1e-5)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(["llama-3-8b", "llama-3-70b", "deepseek-v3", "mixtral-8x7b", "palm-540b"]),
    batch=st.floats(1, 4096), context=st.floats(1, 131072), scale=st.floats(1.0001, 10),
    which=st.sampled_from(["hbm_bytes_per_s", "flops_per_s", "scale_up_bytes_per_s", "scale_out_bytes_per_s"]),
    rules=st.sampled_from(RULES),
)
def test_step_time_never_rises_with_bandwidth_or_flops(model, batch, context, scale, which, rules):
    sc = _scenario(model, "h100-sxm", batch=batch, context=context)
    cmod = compiled(sc.model.structure, rules)
    base = sc.inputs()
    slow = float(cmod(base)["step_time_s"])
    fast = float(cmod(base | {which: base[which] * scale})["step_time_s"])
    assert fast <= slow * (1 + 1e-12)
    # bounded by the max and the sum of its terms
    t = cmod(base)
    parts = [float(t[k]) for k in ("compute_s", "weights_s", "kv_s", "communication_s", "overhead_s")]
    assert max(parts) * (1 - 1e-12) <= slow <= sum(parts) * (1 + 1e-12)


def test_compiled_is_cached_per_structure():
    a = compiled(cm.load_model("llama-3-8b").structure, Rules())
    b = compiled(cm.load_model("llama-3.1-405b").structure, Rules())
    assert a is b


def test_missing_input_is_a_clear_error():
    cmod = compiled(cm.load_model("llama-3-8b").structure, Rules())
    with pytest.raises(cm.ConfigError, match="missing model inputs: .*batch"):
        cmod({})


def test_symbolic_layer_does_not_import_jax():
    import subprocess
    import sys

    code = "import sys, costmodel.symbolic, costmodel.specs, costmodel.efficiency; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_generated_source_is_plain_jax_numpy():
    from costmodel.compile import source_of

    src = source_of(cm.load_model("llama-3-8b").structure, Rules())
    assert src.startswith("def _lambdifygenerated(")
    assert "maximum" in src  # the roofline max, printed as jax.numpy's maximum
    assert "batch" in src and "hbm_bytes_per_s" in src  # numbers stay inputs, not constants
