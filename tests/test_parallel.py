"""Parallel splits: validity, layouts, KV replication, pipeline capacity, MoE/MLA, memory fit."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import costmodel as cm
from costmodel.cli import main
from costmodel.compile import compiled
from costmodel.parallel import default_mesh
from costmodel.specs import ModelStructure
from costmodel.symbolic import Rules, expert_touch_fraction, sym
from costmodel.symbolic.layouts import tensor_parallel_s

from helpers import sympy_values


def decode(model, hw="h100-sxm", batch=16, context=4096, rules=Rules(), **par):
    return cm.predict(model, hw, cm.Workload(batch=batch, context=context), parallel=cm.Parallel(**par),
                      rules=rules, efficiency=cm.IDEAL)


# --- validity -----------------------------------------------------------------------------------

def test_divisors_equal_sympys():
    """Trial division up to the square root for a model's sizes, SymPy's factorisation past the limit:
    the same divisors either way."""
    from costmodel.parallel import TRIAL_DIVISION_LIMIT, divisors

    for n in [*range(1, 3001), 4096 * 3**5, TRIAL_DIVISION_LIMIT, TRIAL_DIVISION_LIMIT + 1, 2**61 - 1, 6**20]:
        assert divisors(n) == sp.divisors(n), n


def test_invalid_tp_names_the_valid_degrees():
    # the example message: tp must divide the 64 query heads of LLaMA-3 70B
    with pytest.raises(cm.ConfigError, match=r"tp=6 must divide 64 heads .*valid: 1, 2, 4, 8, 16, 32, 64$"):
        decode("llama-3-70b", tp=6)


@pytest.mark.parametrize("model, par, message", [
    ("llama-3-70b", {"pp": 3}, r"pp=3 must divide 80 layers .*valid: 1, 2, 4, 5, 8, 10, 16, 20, 40, 80"),
    ("mixtral-8x7b", {"ep": 3}, r"ep=3 must divide 8 experts .*valid: 1, 2, 4, 8"),
    ("llama-3-8b", {"ep": 2}, r"ep=2 must be 1 for a dense model"),
])
def test_invalid_pp_and_ep(model, par, message):
    with pytest.raises(cm.ConfigError, match=message):
        decode(model, **par)


def test_mesh_must_multiply_to_tp():
    with pytest.raises(cm.ConfigError, match="mesh 4x4 has 16 chips but tp=8"):
        cm.Parallel(tp=8, mesh=(4, 4))
    with pytest.raises(cm.ConfigError, match="mesh must be 1 to 3 whole numbers"):
        cm.Parallel(tp=8, mesh=(2, 2, 2, 1))


def test_bad_layout_is_a_clear_error():
    with pytest.raises(cm.ConfigError, match="layout='3d' is not allowed; choose one of 1d-ws, 2d-ws"):
        Rules(layout="3d")


def test_default_mesh():
    # [E]: 64 TPU v4 chips form a 4x4x4 torus
    assert default_mesh(64, 3) == (4, 4, 4)
    assert cm.scenario("palm-540b-padded64", "tpu-v4", parallel=cm.Parallel(tp=64), efficiency=cm.IDEAL).mesh == (4, 4, 4)
    assert default_mesh(16, 2) == (4, 4, 1) and default_mesh(1, 3) == (1, 1, 1)


# --- KV replication and memory ------------------------------------------------------------------

def test_kv_replication_kicks_in_past_the_kv_heads():
    # docs/theory.md §4.2: r_kv = 1 while tp <= N_kv (8 for LLaMA-3 70B), then tp/N_kv
    for tp in (1, 2, 4, 8, 16, 32, 64):
        p = decode("llama-3-70b", tp=tp)
        assert p.kv_replication == max(1, tp / 8)
        total = p.kv_bytes_per_chip * tp
        assert total == pytest.approx(16 * 4096 * p.kv_bytes_per_token * max(1, tp / 8), rel=1e-6)
    # batch-sharded attention ([E], docs/theory.md §13.3): never replicated
    assert decode("llama-3-70b", tp=64, rules=Rules(attention_sharding="batch")).kv_replication == 1


def test_mla_latent_is_replicated_per_tp_rank_unless_batch_sharded():
    # docs/theory.md §3.3: DeepSeek-V3 caches one 576-element latent per layer (70,272 B/token in bf16)
    p = decode("deepseek-v3", tp=8, ep=8)
    assert p.kv_bytes_per_token == 70_272 and p.kv_replication == 8
    q = decode("deepseek-v3", tp=8, ep=8, rules=Rules(attention_sharding="batch"))
    assert q.kv_bytes_per_chip == pytest.approx(p.kv_bytes_per_chip / 8, rel=1e-6)


def test_pipeline_leaves_kv_per_chip_unchanged():
    # docs/theory.md §4.2 [R, D]: P stages with P micro-batches of b in flight: KV per chip L·b·S·κ_ℓ/g,
    # independent of P; weights per chip fall as 1/P
    one = decode("llama-3-70b", batch=8, tp=8, pp=1)
    four = decode("llama-3-70b", batch=32, tp=8, pp=4)
    assert four.kv_bytes_per_chip == pytest.approx(one.kv_bytes_per_chip, rel=1e-6)
    assert four.weight_bytes_per_chip == pytest.approx(one.weight_bytes_per_chip / 4, rel=1e-6)


def test_max_batch_and_max_context_fill_usable_memory():
    p = decode("llama-3-70b", batch=16, context=8192, tp=8)
    at_max = decode("llama-3-70b", batch=p.max_batch, context=8192, tp=8)
    assert at_max.memory_bytes_per_chip == pytest.approx(at_max.usable_bytes_per_chip, rel=1e-5)
    # 8k sequences on 8×H100 (bf16) in 80 GiB per chip (docs/theory.md §7.4, §15.5 count 80e9 bytes: 186):
    # (85,899,345,920 B - 17,638,426,624 B of weights) / (335,544,320 B KV + 96,896 B activations) = 203.37
    assert p.max_batch == pytest.approx(203.37, abs=0.01)
    at_ctx = decode("llama-3-70b", batch=16, context=p.max_context, tp=8)
    assert at_ctx.memory_bytes_per_chip == pytest.approx(at_ctx.usable_bytes_per_chip, rel=1e-5)


def test_a_split_that_does_not_fit_says_what_it_needs():
    p = decode("llama-3-70b", batch=4, tp=1)
    assert not p.fits
    with pytest.raises(cm.ConfigError, match=r"does not fit: needs 14\d\.?\d* GB per chip .* but 85.9 GB is usable"):  # 80 GiB
        p.require_fit()
    assert decode("llama-3-70b", batch=4, tp=8).require_fit().fits


# --- strategies ---------------------------------------------------------------------------------

def test_expert_touch_fraction_limits():
    # docs/theory.md §3.2 ([Ep]): φ = 1 - (1 - k/E)^B: k/E at one token, -> 1 for large batches,
    # ≈ 0.87 for DeepSeek-V3 (k=8, E=256) at 64 tokens
    # with R redundant copies the load spreads over E + R placed experts: k/(E + R) at one token
    k, E, R = sym("experts_per_token", "n_experts", "redundant_experts")
    phi = lambda b, kk, ee, rr=0: float(expert_touch_fraction(sp.Integer(b)).subs({k: kk, E: ee, R: rr}))
    assert phi(1, 8, 256) == pytest.approx(8 / 256, rel=1e-12)
    assert phi(1, 2, 8) == pytest.approx(2 / 8, rel=1e-12)
    assert phi(10_000, 8, 256) == pytest.approx(1, abs=1e-12)
    assert phi(64, 8, 256) == pytest.approx(0.87, abs=0.005)
    assert phi(1, 8, 256, 32) == pytest.approx(8 / 288, rel=1e-12)


def test_serial_block_doubles_tensor_parallel_all_reduces():
    # docs/theory.md §5.5: 2 all-reduces per layer for a serial block, 1 for a parallel block
    serial = decode("llama-3-70b", tp=8)
    m = cm.load_model("llama-3-70b").replace(name="llama-3-70b-parallel", parallel_block=True)
    parallel = decode(m, tp=8)
    assert serial.communication_tp_s == pytest.approx(2 * parallel.communication_tp_s, rel=1e-6)


def test_llama70b_tp8_all_reduce_latency():
    # docs/theory.md §5.5 [D]: 80 layers × 2 all-reduces × ~15 µs ≈ 2.4 ms on 8×H100 at batch 1
    p = decode("llama-3-70b", batch=1, tp=8)
    bandwidth = 160 * 2 * 7 / 8 * 8192 * 2 / 450e9
    assert p.communication_s == pytest.approx(160 * (6.8e-6 + 14 * 0.6e-6) + bandwidth, rel=1e-5)
    assert p.communication_s == pytest.approx(2.4e-3, rel=0.03)


def test_expert_parallel_all_to_alls_by_hand():
    # docs/theory.md §5.5: T_EP = L_moe·2·[α + B·k·D·b_a·(n_ep-1)/(n_ep²·W)], plus (n_ep-1) NCCL steps
    p = decode("mixtral-8x7b", batch=64, ep=8)
    by_hand = 32 * 2 * (6.8e-6 + 7 * 0.6e-6 + 64 * 2 * 4096 * 2 * 7 / (64 * 450e9))
    assert p.communication_ep_s == pytest.approx(by_hand, rel=1e-5)
    assert decode("mixtral-8x7b", batch=64, ep=1).communication_ep_s == 0


def test_pipeline_hops_by_hand():
    # docs/theory.md §5.5: ℓ_PP adds (P-1) hops of α + b·D·b_a/W with micro-batch b = B/P
    p = decode("llama-3-70b", batch=32, tp=2, pp=4)
    assert p.communication_pp_s == pytest.approx(3 * (6.8e-6 + 0.6e-6 + 8 * 8192 * 2 / 450e9), rel=1e-5)


def test_replicas_scale_throughput_not_latency_or_cost():
    # docs/theory.md §5.5: data parallelism adds nothing to latency; cost per token unchanged
    one, four = decode("llama-3-8b", replicas=1), decode("llama-3-8b", replicas=4)
    assert four.step_time_s == one.step_time_s and four.usd_per_mtok == pytest.approx(one.usd_per_mtok)
    assert four.tokens_per_s == pytest.approx(4 * one.tokens_per_s) and four.chips == 4


def test_batch_sharded_attention_all_to_alls_only_in_decode():
    heads = decode("palm-540b-padded64", "tpu-v4", batch=64, tp=64, rules=Rules(layout="2d-ws"))
    batch = decode("palm-540b-padded64", "tpu-v4", batch=64, tp=64,
                   rules=Rules(layout="2d-ws", attention_sharding="batch"))
    # two all-to-alls per layer over the 4x4x4 torus: Q (+ new K, V) in, output back ([E], docs/theory.md §13.3)
    q_in, out = 64 * (64 * 256 + 2 * 256) * 2, 64 * 64 * 256 * 2
    extra = 118 * sum(6e-6 + 63 / 64 * v / (4 * 2.7e11) for v in (q_in, out))
    assert batch.communication_s - heads.communication_s == pytest.approx(extra, rel=1e-5)
    assert batch.kv_s == pytest.approx(heads.kv_s / 64, rel=1e-6)
    # prefill computes attention head-sharded and keeps each sequence's cache where it is: no all-to-all
    a = cm.predict("palm-540b-padded64", "tpu-v4", cm.Workload(batch=1, phase="prefill"),
                   parallel=cm.Parallel(tp=64), rules=Rules("prefill", layout="2d-ws"), efficiency=cm.IDEAL)
    b = cm.predict("palm-540b-padded64", "tpu-v4", cm.Workload(batch=1, phase="prefill"),
                   parallel=cm.Parallel(tp=64), rules=Rules("prefill", layout="2d-ws", attention_sharding="batch"), efficiency=cm.IDEAL)
    assert a.communication_s == b.communication_s


# --- Pope et al. layouts ------------------------------------------------------------------------

def _bandwidth_only(layout, axes, torus, tokens=1e6, D=18432, F=73728):
    """Feed-forward communication of one parallel block, bandwidth terms only (latency 0)."""
    st_ = ModelStructure("gqa", "dense")
    x, y, z = axes
    vals = {"n_layers": 1, "d_model": D, "d_ff": F, "activation_bytes": 1, "weight_bytes": 1,
            "allreduces_per_layer": 1, "tp": x * y * z, "is_torus": torus,
            "mesh_x_share": sp.log(x) / sp.log(x * y * z), "mesh_y_share": sp.log(y) / sp.log(x * y * z),
            "scale_up_bytes_per_s": 1.0, "scale_out_bytes_per_s": 1.0, "scale_up_domain_chips": 1e9,
            "comm_efficiency": 1.0, "collective_latency_s": 0, "collective_step_latency_s": 0,
            # weight-gathered layouts gather the layer's weights: here a gated MLP and no attention
            "mlp_matrices": 3, "n_heads": 0, "n_kv_heads": 0, "d_head": 0, "attention_bias": 0, "vocab_size": 0}
    e = tensor_parallel_s(st_, Rules(layout=layout), sp.Float(tokens))
    return float(e.subs({sym(k): v for k, v in vals.items()}))


def test_2d_weight_stationary_by_hand():
    # docs/theory.md §13.2: T ≈ 2·B·L·(E/X + F/(YZ))/bw, here with the exact (K-1)/K of each collective
    t = _bandwidth_only("2d-ws", (4, 4, 4), torus=0)
    assert t == pytest.approx(2 * 1e6 * (15 / 16 * 18432 / 4 + 3 / 4 * 73728 / 16), rel=1e-12)
    # on a torus the X collectives use one axis, the YZ ones two (docs/theory.md §14)
    t = _bandwidth_only("2d-ws", (4, 4, 4), torus=1)
    assert t == pytest.approx(2 * 1e6 * (15 / 16 * 18432 / 4 / 2 + 3 / 4 * 73728 / 16), rel=1e-12)


def test_2d_versus_1d_crossover():
    # docs/theory.md §13.2 ([E]): with (K-1)/K ≈ 1, 2D/1D = 2·√(F/(E·n)) = 4/√n for F = 4E at the best
    # X = √(nE/F), so 2D wins past n = 16; on a torus [S] puts the crossover near 81 chips
    for n, axes in ((1024, (16, 64, 1)), (4096, (32, 128, 1))):
        ratio = _bandwidth_only("2d-ws", axes, 0) / _bandwidth_only("1d-ws", axes, 0)
        assert ratio == pytest.approx(4 / np.sqrt(n), rel=0.1)
    assert _bandwidth_only("2d-ws", (2, 8, 1), 0) < _bandwidth_only("1d-ws", (2, 8, 1), 0)  # n = 16
    assert _bandwidth_only("2d-ws", (2, 2, 1), 0) > _bandwidth_only("1d-ws", (2, 2, 1), 0)  # n = 4
    assert _bandwidth_only("2d-ws", (3, 3, 3), 1) > _bandwidth_only("1d-ws", (3, 3, 3), 1)  # 27 chips
    assert _bandwidth_only("2d-ws", (8, 8, 8), 1) < _bandwidth_only("1d-ws", (8, 8, 8), 1)  # 512 chips


def test_weight_gathered_by_hand_and_its_crossover():
    # docs/theory.md §13.2: T ≈ [P_ℓ·b_w·N/n + 2·B·L·E·b_a/N]/bw; P_ℓ = 3·E·F for a gated MLP alone
    D, F = 18432, 73728
    P = 3 * D * F + 3 * D  # gated MLP, two layer norms and the final norm; no attention here
    t = _bandwidth_only("wg-x", (4, 4, 4), torus=0)
    # weights gathered over X (N = 4 of n = 64 chips), activations over the other 16 chips
    assert t == pytest.approx(3 / 4 * P * 4 / 64 + 2 * 15 / 16 * 1e6 * D / 4, rel=1e-12)
    # weight-gathered beats 2D weight-stationary only at many tokens (≳ F, [E]: ≈74k for PaLM 540B)
    assert _bandwidth_only("wg-xyz", (4, 4, 4), 0, tokens=1e6) < _bandwidth_only("2d-ws", (4, 4, 4), 0, tokens=1e6)
    assert _bandwidth_only("wg-xyz", (4, 4, 4), 0, tokens=1e3) > _bandwidth_only("2d-ws", (4, 4, 4), 0, tokens=1e3)


# --- SymPy = JAX and gradients for every layout -------------------------------------------------

# the 2D and weight-gathered layouts and both attention shardings in each phase (tests/test_compile.py
# covers the default 1D layout under every other rule)
LAYOUT_RULES = [Rules(phase, layout=layout, attention_sharding=att) for phase, layout, att in (
    ("decode", "2d-ws", "batch"), ("decode", "wg-xyz", "heads"),
    ("prefill", "2d-ws", "heads"), ("prefill", "wg-x", "batch"))]


@pytest.mark.parametrize("rules", LAYOUT_RULES, ids=lambda r: f"{r.phase}-{r.layout}-{r.attention_sharding}")
def test_sympy_equals_jax_every_layout(rules):
    for model, hw, par in (("palm-540b-padded64", "tpu-v4", cm.Parallel(tp=64)),
                           ("deepseek-v3", "h100-sxm", cm.Parallel(tp=8, ep=8)),
                           ("mixtral-8x7b", "tpu-v5e", cm.Parallel(tp=2, ep=4, pp=2))):
        sc = cm.scenario(model, hw, cm.Workload(batch=48, context=3000, prompt=700), par, efficiency=cm.IDEAL)
        jx = compiled(sc.model.structure, rules)(sc.inputs())
        sy = sympy_values(sc.model.structure, rules, sc.inputs())
        for k, v in sy.items():
            np.testing.assert_allclose(float(jx[k]), v, rtol=1e-12, atol=1e-300, err_msg=f"{model} {k}")


@pytest.mark.parametrize("layout", ["2d-ws", "wg-xy"])
def test_gradients_in_parallel_degrees_are_finite(layout):
    sc = cm.scenario("mixtral-8x7b", "h100-sxm", cm.Workload(batch=37.3, context=3000),
                     cm.Parallel(tp=4, ep=2, pp=2), efficiency=cm.IDEAL)
    cmod = compiled(sc.model.structure, Rules(layout=layout, attention_sharding="batch"))
    base = sc.inputs()
    names = ["batch", "tp", "pp", "ep"]

    def cost(x):
        out = cmod.raw(base | dict(zip(names, x)))
        return out["usd_per_mtok"] + out["max_batch"] + out["max_context"]

    g = jax.grad(cost)(jnp.array([37.3, 5.7, 2.3, 3.1]))
    assert bool(jnp.all(jnp.isfinite(g)))


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_layout_options_and_parallel_object(capsys):
    code = main(["predict", "--model", "palm-540b-padded64", "--hardware", "tpu-v4", "--tp", "64",
                 "--batch", "64", "--weights", "int8", "--math", "bf16", "--layout", "2d-ws",
                 "--attention-sharding", "batch", "--mesh", "4x4x4", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and d["breakdown_s"]["communication"] > 0
    par = d["parallel"]
    assert par["layout"] == "2d-ws" and par["mesh"] == [4, 4, 4] and par["kv_replication"] == 1
    assert set(par["communication_s"]) == {"tp", "ep", "pp"}
    assert d["max_batch"] > 64 and d["max_context"] > 2048


def test_cli_bad_mesh_is_one_line(capsys):
    assert main(["predict", "--tp", "8", "--mesh", "4x4"]) == 2
    assert "mesh 4x4 has 16 chips but tp=8" in capsys.readouterr().err


def test_2d_layouts_shard_heads_over_part_of_the_mesh():
    """PaLM 540B: 48 heads on 64 TPU v4 chips (4x4x4) is valid under 2D weight-stationary (heads over
    Y*Z = 16 chips, 3 each; Pope et al. 2022 section 3.2) and invalid under 1D (64 does not divide 48)."""
    import costmodel as cm

    w = cm.Workload(batch=64, context=2048)
    p = cm.predict("palm-540b", "tpu-v4", w, parallel=cm.Parallel(tp=64), precision=cm.Precision(weights="int8"),
                   rules=cm.Rules(layout="2d-ws", attention_sharding="batch"), efficiency=cm.IDEAL)
    assert p.step_time_s > 0 and p.scenario.mesh == (4, 4, 4)
    with pytest.raises(cm.ConfigError, match="tp=64 must divide 48 heads"):
        cm.predict("palm-540b", "tpu-v4", w, parallel=cm.Parallel(tp=64), efficiency=cm.IDEAL)
    with pytest.raises(cm.ConfigError, match="Y\\*Z = 64 chips; Y\\*Z must divide the heads"):
        cm.predict("palm-540b", "tpu-v4", w, parallel=cm.Parallel(tp=64, mesh=(1, 8, 8)),
                   rules=cm.Rules(layout="2d-ws"), efficiency=cm.IDEAL)
