"""MoE dispatch and combine (docs/theory.md §5.5, §14): flat inside a scale-up domain, hierarchical across."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import costmodel as cm
from costmodel.compile import compiled
from costmodel.symbolic import Rules, expert_parallel_s, remote_domains_per_token, sym
from costmodel.symbolic.collectives import all_to_all_s, span

from helpers import sympy_values

ALPHA, STEP = 6.8e-6, 0.6e-6  # NCCL LL base and per-step latency (docs/theory.md §5.5, [Ep])
# H100 SXM: NVLink 450 GB/s egress per GPU, 8 GPUs per node, 8x400 Gb/s InfiniBand per node = 50 GB/s per GPU
H100 = {"scale_up_bytes_per_s": 450e9, "scale_out_bytes_per_s": 50e9, "scale_up_domain_chips": 8,
        "comm_efficiency": 1.0, "collective_latency_s": ALPHA, "collective_step_latency_s": STEP, "is_torus": 0}
# DeepSeek-V3 config.json: hidden 7168, 8 of 256 experts per token from the best 4 of 8 groups, 58 MoE layers
DSV3 = {"d_model": 7168, "experts_per_token": 8, "n_expert_groups": 8, "expert_groups_per_token": 4,
        "n_moe_layers": 58}


def value(expr, **given):
    return float(sp.sympify(expr).subs({sym(k): v for k, v in given.items()}))


def ep_seconds(tokens, **given):
    return value(expert_parallel_s(sp.Float(tokens)), **given)


def test_remote_domains_of_deepseek_v3_by_hand():
    # G = 4 nodes (ep = 32), a = 2 of the 8 groups per node, 4 groups chosen: a node holds a chosen group with
    # probability >= 1 - (1/2)^2 = 3/4 and is then hit with probability >= 1 - (3/4)^8:
    # R = 3·(3/4)·(1 - 0.1001129150390625)
    r4 = value(remote_domains_per_token(sp.Integer(4)), **DSV3)
    assert r4 == pytest.approx(2.25 * 0.8998870849609375, rel=1e-15)
    # ... a lower bound: a node holds j of the 4 chosen groups with probability C(2,j)·C(6,4-j)/C(8,4)
    # = 15/70, 40/70, 15/70 and is missed with probability (1 - j/4)^8, so exactly
    # R = 3·(1 - 15/70 - (40/70)·(3/4)^8 - (15/70)·(1/2)^8) = 2.183; 3·(1 - (3/4)^8) = 2.700 without the limit
    exact = 3 * (1 - 15 / 70 - 40 / 70 * 0.75**8 - 15 / 70 * 0.5**8)
    assert exact == pytest.approx(2.1830095563616077, rel=1e-15)
    assert r4 < exact < 3 * (1 - 0.75**8)
    # G = 2 (ep = 16): a = 4 groups per node: R = 1·(1 - (1/2)^4)·(1 - (3/4)^8)
    assert value(remote_domains_per_token(sp.Integer(2)), **DSV3) == pytest.approx(0.9375 * 0.8998870849609375,
                                                                                  rel=1e-15)
    # G = 8 (ep = 64, a group per node): each node is chosen with probability 4/8 and then hit with
    # probability 1 - (3/4)^8: R = 7·(1/2)·0.8998870849609375 (exact); both forms agree here
    assert value(remote_domains_per_token(sp.Integer(8)), **DSV3) == pytest.approx(3.1496047973632812, rel=1e-15)
    # G = 16: each group spans 2 nodes: chosen with probability 1/2, then hit with 1 - (1 - 1/8)^8:
    # R = 15·(1/2)·(1 - (7/8)^8) = 7.5·0.6563910841941833
    assert value(remote_domains_per_token(sp.Integer(16)), **DSV3) == pytest.approx(4.922933131456375, rel=1e-15)
    # no node limit (n_group = topk_group = 1): (G-1)·(1 - (1 - 1/G)^k)
    free = {**DSV3, "n_expert_groups": 1, "expert_groups_per_token": 1}
    assert value(remote_domains_per_token(sp.Integer(8)), **free) == pytest.approx(7 * 0.6563910841941833, rel=1e-15)
    assert value(remote_domains_per_token(sp.Integer(4)), **free) == pytest.approx(3 * (1 - 0.75**8), rel=1e-15)


def test_deepseek_v3_prefill_on_32_h100_by_hand():
    # 32 prompts of 2,000 tokens over ep = 32 (4 nodes of 8): 2,000 tokens per GPU per MoE layer.
    # Scale-out: 2,000·R·7,168 bytes per GPU per byte of element, R = 2.0247459411621094 (above):
    # 29,026,757.8 B; fp8 dispatch 580.5 µs, bf16 combine 1,161.1 µs at 50 GB/s.
    # NVLink forwarding: 2,000·8·7,168·(7/8) = 100,352,000 B per byte: 223.0 µs fp8, 446.0 µs bf16 at
    # 450 GB/s, hidden under the scale-out stage. Latency per all-to-all: 6.8 + 31·0.6 = 25.4 µs.
    out_per_byte = 2000 * 2.0247459411621094 * 7168
    assert out_per_byte == pytest.approx(29_026_757.8125, rel=1e-15)
    per_layer = (out_per_byte * 1 / 50e9 + 25.4e-6) + (out_per_byte * 2 / 50e9 + 25.4e-6)
    got = ep_seconds(64000, **H100, **DSV3, tp=1, ep=32, dispatch_bytes=1, activation_bytes=2)
    assert got == pytest.approx(58 * per_layer, rel=1e-12)
    assert got == pytest.approx(58 * (580.53515625e-6 + 1161.0703125e-6 + 50.8e-6), rel=1e-12)
    # the flat formula sent all k = 8 copies over the scale-out link in bf16: 2·58·8·7168·2·(31/32) bytes
    # per token per GPU, 12.89 MB, against 58·R·7168·(1 + 2) = 2.53 MB now
    assert 2 * 58 * 8 * 7168 * 2 * 31 / 32 == pytest.approx(12.89e6, rel=1e-3)
    assert 58 * 2.0247459411621094 * 7168 * 3 == pytest.approx(2.5253e6, rel=1e-4)


@pytest.mark.parametrize("tp, ep", [(1, 8), (2, 4), (1, 4), (8, 1)])
def test_inside_one_domain_the_flat_all_to_all_is_unchanged(tp, ep):
    # tp·ep <= 8: two all-to-alls of t·k·D·b_a over the ep ranks per MoE layer, on NVLink:
    # α·min(1, ep-1) + (ep-1)·α_step + (ep-1)/ep²·V/W_up (docs/theory.md §14)
    t, given = 4096, {**H100, **DSV3, "tp": tp, "ep": ep, "dispatch_bytes": 2, "activation_bytes": 2}
    V = t * 8 * 7168 * 2
    hand = 58 * 2 * (ALPHA * min(1, ep - 1) + (ep - 1) * STEP + (ep - 1) / ep**2 * V / 450e9)
    assert ep_seconds(t, **given) == pytest.approx(hand, rel=1e-12)
    before = sym("n_moe_layers") * 2 * all_to_all_s(t * sym("experts_per_token") * sym("d_model")
                                                    * sym("activation_bytes"),
                                                    span((sym("ep"),), domain_chips=sym("tp") * sym("ep")))
    assert ep_seconds(t, **given) == pytest.approx(value(before, **given), rel=1e-12)


def test_fp8_dispatch_halves_the_dispatch_only():
    given = {**H100, **DSV3, "tp": 1, "ep": 32, "activation_bytes": 2}
    bf16, fp8 = ep_seconds(64000, **given, dispatch_bytes=2), ep_seconds(64000, **given, dispatch_bytes=1)
    latency = 58 * 2 * 25.4e-6
    # bandwidth: bf16 both ways = 2 units, fp8 dispatch + bf16 combine = 1.5 units
    assert (fp8 - latency) / (bf16 - latency) == pytest.approx(0.75, rel=1e-12)


@pytest.mark.parametrize("ep", [pytest.param(4, marks=pytest.mark.slow), 8, *(pytest.param(e, marks=pytest.mark.slow)
                                                                          for e in (16, 32, 64))])
def test_monotone_in_link_bandwidth(ep):  # SymPy evaluation, ~3 s idle per degree: one in the default run
    base = {**H100, **DSV3, "tp": 1, "ep": ep, "dispatch_bytes": 1, "activation_bytes": 2}
    for link in ("scale_out_bytes_per_s", "scale_up_bytes_per_s"):
        times = [ep_seconds(20000, **{**base, link: w}) for w in (25e9, 50e9, 100e9, 450e9, 900e9, 1e13)]
        assert all(a >= b for a, b in zip(times, times[1:])), (link, times)
    # and never slower than the flat all-to-all it replaces across nodes (all k copies over W_out)
    flat = value(sym("n_moe_layers") * 2 * all_to_all_s(
        20000 * sym("experts_per_token") * sym("d_model") * sym("activation_bytes"),
        span((sym("ep"),), domain_chips=sym("ep"))), **base)
    assert ep_seconds(20000, **base) <= flat * (1 + 1e-12)


def test_sympy_equals_jax_across_and_inside_domains():
    for ep, phase, dispatch in ((32, "prefill", "fp8"), (64, "decode", "fp8"), (4, "decode", None)):
        sc = cm.scenario("deepseek-v3", "h100-sxm", cm.Workload(batch=64, context=2000, prompt=2000, phase=phase),
                         cm.Parallel(ep=ep), cm.Precision(weights="fp8", dispatch=dispatch))
        for rules in (Rules(phase), Rules(phase, "sum", "full")):
            jx = compiled(sc.model.structure, rules)(sc.inputs())
            sy = sympy_values(sc.model.structure, rules, sc.inputs())
            for k, v in sy.items():
                np.testing.assert_allclose(float(jx[k]), v, rtol=1e-12, atol=0, err_msg=f"ep={ep} {phase} {k}")


@pytest.mark.parametrize("model, ep, tp", [("deepseek-v3", 4, 1), ("deepseek-v3", 16, 1), ("deepseek-v3", 32, 1),
                                           ("kimi-k2", 32, 1), ("mixtral-8x7b", 8, 2)])
def test_gradients_stay_finite_on_both_sides_of_the_domain(model, ep, tp):
    # the compiled function evaluates every branch; the unused one must not poison the gradient
    sc = cm.scenario(model, "h100-sxm", cm.Workload(batch=64, prompt=2000, phase="prefill"),
                     cm.Parallel(ep=ep, tp=tp), cm.Precision(weights="bf16"))
    f = compiled(sc.model.structure, Rules("prefill"))
    names = ("ep", "tp", "scale_up_domain_chips", "scale_out_bytes_per_s", "n_expert_groups", "expert_groups_per_token")
    x = sc.inputs()
    grads = jax.grad(lambda v: f(x | dict(zip(names, v)))["communication_ep_s"])(jnp.array([x[n] for n in names]))
    assert bool(jnp.all(jnp.isfinite(grads))), grads
    assert float(grads[3]) <= 0  # more scale-out bandwidth never slows the all-to-all


def test_dispatch_precision_is_validated_and_defaults_to_the_activations():
    with pytest.raises(cm.PrecisionError, match="dispatch precision"):
        cm.Precision(dispatch="fp9")
    sc = cm.scenario("deepseek-v3", "h100-sxm", precision=cm.Precision(activations="fp16"))
    assert sc.inputs()["dispatch_bytes"] == 2.0
    sc = cm.scenario("deepseek-v3", "h100-sxm", precision=cm.Precision(dispatch="fp8"))
    assert sc.inputs()["dispatch_bytes"] == 1.0
