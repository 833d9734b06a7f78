"""The operator-level step (docs/theory.md §20): hand counts, the ideal bound, monotonicity, the ops rows."""

import json
import math

import numpy as np
import pytest
import sympy as sp

import costmodel as cm
from costmodel.config import IDEAL
from costmodel.errors import ConfigError
from costmodel.inputs import scenario
from costmodel.symbolic import kernels as kn
from costmodel.symbolic.operators import Tokens, operators
from costmodel.symbolic.rules import Rules
from costmodel.symbolic.symbols import sym
from tests.cli_run import run_cli

OPS = Rules(step="operators")


def _numbers(model, hardware, parallel, workload, **extra):
    sc = scenario(model, hardware, workload, parallel, cm.Precision(), IDEAL, None, "1d-ws")
    return {sym(k): v for k, v in sc.inputs().items() if k in cm.symbolic.SYMBOLS} | {
        sym(k): v for k, v in extra.items()}


def _rows(model, hardware, parallel, workload, tok):
    spec = cm.load_model(model)
    nums = _numbers(model, hardware, parallel, workload)
    out = {}
    for op in operators(spec.structure, OPS, tok):
        f = lambda e: float(sp.sympify(e).subs(nums))  # noqa: E731
        out[op.name] = {"count": f(op.count), "flops": f(op.kernel.flops), "bytes": f(op.kernel.bytes)}
    return out


def _decode(B, S):
    B_, S_, pp = sym("batch", "context", "pp")
    return Tokens(decode_seqs=B_ / pp, context=S_), cm.Workload(batch=B, context=S)


def test_dense_gqa_layer_equals_hand_counts():
    # Llama 3 8B (D 4096, 32/8 heads of 128, F 14336, gated MLP, V 128256), tp 2, 4 sequences at context 100
    tok, wl = _decode(4, 100)
    r = _rows("llama-3-8b", "h100-sxm", cm.Parallel(tp=2), wl, tok)
    b = 2  # bf16 everywhere
    assert r["qkv_gemm"] == {"count": 32, "flops": 2 * 4 * 3072 * 4096,
                             "bytes": 3072 * 4096 * b + (4 * 4096 + 4 * 3072) * b}
    assert r["attention_decode"] == {"count": 32, "flops": 4 * 4 * 16 * 128 * 100,
                                     "bytes": 4 * 100 * 2 * 4 * 128 * b + 2 * 4 * 16 * 128 * b}
    assert r["o_gemm"]["flops"] == 2 * 4 * 4096 * 2048
    assert r["gate_up_gemm"] == {"count": 32, "flops": 2 * 4 * 14336 * 4096,
                                 "bytes": 14336 * 4096 * b + (4 * 4096 + 4 * 14336) * b}
    assert r["down_gemm"]["flops"] == 2 * 4 * 4096 * 7168
    assert r["norm"] == {"count": 64, "flops": 0, "bytes": 2 * 4 * 4096 * b + 4096 * b}
    assert r["lm_head"] == {"count": 1, "flops": 2 * 4 * 64128 * 4096,
                            "bytes": 64128 * 4096 * b + (4 * 4096 + 4 * 64128) * b}
    assert r["tp_all_reduce"]["count"] == 64


def test_dense_operator_flops_add_up_to_the_useful_flops():
    p = cm.predict("llama-3-70b", "h100-sxm", cm.Workload(batch=48, context=3000), parallel=cm.Parallel(tp=4),
                   rules=OPS, efficiency=cm.IDEAL)
    per_chip = sum(o["flops"] for o in p.ops)
    assert per_chip * 4 == pytest.approx(p.flops_per_step, rel=1e-12)


def test_mla_layer_equals_hand_counts():
    # DeepSeek-V3: D 7168, 128 heads, d_cq 1536, d_c 512, d_R 64, H_n = H_v = 128; tp 8, 16 sequences at 1000
    tok, wl = _decode(16, 1000)
    r = _rows("deepseek-v3", "h200", cm.Parallel(tp=8), wl, tok)
    bw, ba, bkv = 1, 2, 2  # fp8 weights (the model's native format), bf16 activations and cache
    assert r["mla_down_gemm"]["flops"] == 2 * 16 * 2112 * 7168  # fused q/kv down-projection, not sharded
    assert r["mla_down_gemm"]["bytes"] == 2112 * 7168 * bw + (16 * 7168 + 16 * 2112) * ba
    assert r["q_up_gemm"]["flops"] == 2 * 16 * 3072 * 1536
    assert r["mla_bmm_pre"]["flops"] == 2 * 16 * 16 * 128 * 512
    assert r["mla_attention_decode"] == {"count": 61, "flops": 2 * 16 * 16 * (2 * 512 + 64) * 1000,
                                         "bytes": 16 * 1000 * 576 * bkv + 16 * 16 * 1088 * ba}
    assert r["mla_bmm_post"]["flops"] == 2 * 16 * 16 * 512 * 128
    assert r["o_gemm"]["flops"] == 2 * 16 * 7168 * 2048


def test_moe_layer_equals_hand_counts():
    # DeepSeek-V3's MoE layers: 256 experts of width 2048, top-8, one shared expert; tp 8, 16 tokens
    tok, wl = _decode(16, 1000)
    r = _rows("deepseek-v3", "h200", cm.Parallel(tp=8), wl, tok)
    touched = 1 - (1 - 8 / 256) ** 16
    assert r["moe_up_gemm"]["count"] == 58
    assert r["moe_up_gemm"]["flops"] == pytest.approx(2 * 16 * 8 * 512 * 7168, rel=1e-12)
    # the touched experts' weights; the routed tokens stay on chip in the ideal (moe_token_passes 0)
    assert r["moe_up_gemm"]["bytes"] == pytest.approx(touched * 256 * 512 * 7168, rel=1e-12)
    assert r["moe_down_gemm"]["flops"] == pytest.approx(2 * 16 * 8 * 7168 * 256, rel=1e-12)
    assert r["router_gemm"]["flops"] == 2 * 16 * 256 * 7168  # replicated on every rank
    assert r["shared_up_gemm"]["flops"] == 2 * 16 * 512 * 7168
    assert r["shared_down_gemm"]["flops"] == 2 * 16 * 7168 * 256


_CASES = [
    ("llama-3-8b", "h100-sxm", cm.Parallel(tp=1), 1, 512),
    ("llama-3-70b", "h100-sxm", cm.Parallel(tp=8), 64, 8192),
    ("llama-3-70b", "h200", cm.Parallel(tp=4, pp=2), 256, 2048),
    ("mixtral-8x7b", "h100-sxm", cm.Parallel(tp=2, ep=4), 96, 4096),
    ("deepseek-v3", "h200", cm.Parallel(tp=8), 32, 4096),
    ("deepseek-v3", "b200", cm.Parallel(tp=4, ep=2), 512, 1024),
    ("llama-4-scout", "h100-sxm", cm.Parallel(tp=4), 128, 30000),
    ("gpt-oss-120b", "h100-sxm", cm.Parallel(tp=2), 7, 9000),
    ("qwen3-235b-a22b", "b200", cm.Parallel(tp=2, ep=4), 200, 3000),
]


@pytest.mark.parametrize("phase", ["decode", "prefill"])
@pytest.mark.parametrize("model,hw,par,batch,ctx", _CASES)
def test_operator_ideal_is_never_below_the_single_roofline(model, hw, par, batch, ctx, phase):
    wl = cm.Workload(batch=batch if phase == "decode" else max(1, batch // 32), context=ctx, prompt=ctx, phase=phase)
    one = cm.predict(model, hw, wl, parallel=par, efficiency=cm.IDEAL)
    ops = cm.predict(model, hw, wl, parallel=par, rules=OPS, efficiency=cm.IDEAL)
    # each kernel's max(F/C, B/W) summed is at least max(sum F / C, sum B / W) (docs/theory.md §20.3);
    # in prefill the operator step computes logits for the last prompt token only, where the single
    # roofline charges the LM head for every prompt token
    m = cm.load_model(model)
    lm_extra = 0.0
    if phase == "prefill":
        x = ops.scenario.inputs()
        lm_extra = (2 * m.vocab_size * m.d_model * wl.batch * (wl.prompt - 1)
                    / (par.tp * par.ep * x["flops_per_s"]))
    single = max(one.compute_s - lm_extra, one.weights_s + one.kv_s)
    assert ops.roofline_s >= single * (1 - 1e-9)
    assert ops.step_time_s >= single * (1 - 1e-9)
    assert sum(o["time_s"] for o in ops.ops) == pytest.approx(ops.step_time_s, rel=1e-9)


def _gemm_time(values: dict[str, float]):
    """The GEMM kernel's time as a NumPy function of M at ``values`` (every other input of the form)."""
    M, N, K = sp.symbols("M N K", positive=True)
    k = kn.gemm(M, N, K, weight_bytes=sym("weight_bytes"), activation_bytes=sym("activation_bytes"))
    expr = k.time_s.xreplace({sym(n): v for n, v in values.items()}).xreplace({N: 8192, K: 8192})
    assert expr.free_symbols == {M}, expr.free_symbols
    return sp.lambdify(M, expr, "numpy")


@pytest.mark.parametrize("tiles", [(1, 1, 1, 1, 0.0), (128, 128, 1024, 132, 512.0), (64, 256, 512, 148, 128.0)])
def test_gemm_time_grows_with_m(tiles):
    mt, nt, kt, nsm, k0 = tiles
    f = _gemm_time({"flops_per_s": 989e12, "low_precision_math": 0, "low_precision_flops_factor": 1,
                    "low_precision_hbm_factor": 1, "quantise_overhead_s": 0, "hbm_bytes_per_s": 3.35e12,
                    "hbm_efficiency": 0.8, "flops_efficiency": 0.78, "gemm_k_half": k0, "gemm_tile_m": mt,
                    "gemm_tile_n": nt, "gemm_split_k": kt, "compute_units": nsm, "weight_bytes": 2,
                    "activation_bytes": 2, "kernel_overhead_s": 2.5e-6, "launch_overhead_s": 0, "cuda_graphs": 1,
                    "graph_floor_fraction": 1})
    Ms = np.unique(np.geomspace(1, 32768, 400).round())
    t = np.array([float(f(M)) for M in Ms])
    assert np.all(np.diff(t) >= 0)  # never faster with more rows
    big = Ms >= 4096  # compute-bound: the time grows with M
    assert t[big][-1] > 4 * t[big][0]


def test_mixed_step_without_a_chunk_is_the_decode_step():
    sv = cm.compile.compiled_serving(cm.load_model("llama-3-70b").structure, OPS)
    sc = scenario("llama-3-70b", "h100-sxm", cm.Workload(batch=32, context=4000), cm.Parallel(tp=4),
                  cm.Precision(), IDEAL, None, "1d-ws")
    x = sc.inputs() | {"prefill_tokens": 0.0, "prefill_position": 0.0, "draft_length": 0.0, "acceptance": 0.5}
    mixed = sv.values(x)["step_time_s"]
    assert mixed == pytest.approx(cm.evaluate(sc, OPS).step_time_s, rel=1e-12)
    with_chunk = sv.values(x | {"prefill_tokens": 512.0, "prefill_position": 256.0})["step_time_s"]
    assert with_chunk > mixed


def test_operator_rules_refuse_other_layouts():
    with pytest.raises(ConfigError, match="1d-ws"):
        cm.predict("llama-3-8b", "tpu-v5e", parallel=cm.Parallel(tp=4),
                   rules=Rules(step="operators", layout="2d-ws"), efficiency=cm.IDEAL)


def test_predict_ops_json_rows_add_up(capsys):
    code, out, _ = run_cli(capsys, "predict", "--model", "deepseek-v3", "--hardware", "h200", "--tp", "8",
                           "--batch", "64", "--context", "4096", "--ops", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["rules"]["step"] == "operators"
    assert {"name", "count", "time_s", "bound", "flops", "bytes"} <= set(d["ops"][0])
    assert math.isclose(sum(o["time_s"] for o in d["ops"]), d["step_time_s"], rel_tol=1e-9)
    names = [o["name"] for o in d["ops"]]
    assert "mla_attention_decode" in names and "moe_up_gemm" in names and "pp_send" not in names


def test_predict_ops_table(capsys):
    code, out, _ = run_cli(capsys, "predict", "--model", "llama-3-70b", "--tp", "8", "--batch", "64", "--ops")
    assert code == 0
    assert "attention_decode" in out and "tp_all_reduce" in out and "100.0%" in out
    code, _, err = run_cli(capsys, "predict", "--ops", "--step", "roofline")
    assert code == 2 and "--ops" in err
    code, _, err = run_cli(capsys, "predict", "--ops", "--isl", "1024", "--osl", "128")
    assert code == 2 and "--ops" in err and len(err.strip().splitlines()) == 1


def test_operator_figure_stacks_to_the_step():
    import matplotlib

    matplotlib.use("Agg")
    from costmodel.plot import Setup, operator_breakdown

    setup = Setup("llama-3-70b", "h100-sxm", context=4096, tp=8, efficiency="kernels")
    fig = operator_breakdown(setup, batches=(1, 64))
    ax = fig.axes[0]
    heights = np.zeros(2)
    for bars in ax.containers:
        heights += np.array([r.get_height() for r in bars])
    for i, b in enumerate((1, 64)):
        p = cm.predict("llama-3-70b", "h100-sxm", cm.Workload(batch=b, context=4096), parallel=cm.Parallel(tp=8),
                       efficiency="kernels", rules=OPS)
        assert heights[i] == pytest.approx(p.step_time_s * 1e3, rel=1e-6)


def test_step_time_derivation_equals_the_prediction():
    from costmodel import derive

    d = derive.step_time("deepseek-v3", "h200", parallel=cm.Parallel(tp=8), efficiency="kernels")
    assert set(d.free_names) == {"batch", "context"}
    p = cm.predict("deepseek-v3", "h200", cm.Workload(batch=48, context=3000), parallel=cm.Parallel(tp=8),
                   efficiency="kernels", rules=OPS)
    assert d.evaluate(batch=48, context=3000) == pytest.approx(p.step_time_s, rel=1e-9)
    assert "t_{mla attention decode}" in d.latex
    pre = derive.step_time("llama-3-8b", "h100-sxm", phase="prefill", efficiency="ideal")
    assert set(pre.free_names) == {"batch", "prompt"}
