"""The catalog of current chips and models: numbers pinned to their sources, capacities in bytes,
windowed attention (sliding and chunked layers) by hand arithmetic and SymPy = JAX, the measurement
file's records resolved or excluded with a reason, and `costmodel list` without JAX."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import costmodel as cm
from costmodel.calibrate import load_cases, load_records
from costmodel.cli.list_cmd import attention_kind
from costmodel.specs import BYTES_PER_ELEMENT
from costmodel.symbolic import Rules, SYMBOLS, causal_pairs, param_counts

from helpers import sympy_values

ROOT = Path(__file__).resolve().parents[1]
GiB = 2**30


# --- chips: one number per new entry, as its source states it ------------------------------------

@pytest.mark.parametrize("chip, key, value", [
    ("l40s", "fp8", 733e12),                # L40S datasheet: 1,466 TFLOPS with sparsity / 2
    ("gaudi2", "bf16", 432e12),             # Intel Hot Chips 2024 table: Gaudi 2 BF16 432 TFLOPs
    ("gaudi3", "bf16", 1835e12),            # Intel Hot Chips 2024 table: BF16 matrix 1835 TFLOPs
    ("gb200", "fp4", 1440e15 / 72 / 2),     # GB200 NVL72: 1,440 PF FP4 per rack with sparsity
    ("b300", "fp4", 105e15 / 8),            # HGX B300: 105 PF FP4 dense per 8 GPUs
    ("gb300", "fp4", 1080e15 / 72),         # GB300 NVL72: 1,080 PF FP4 dense per rack
    ("mi325x", "fp8", 2614.9e12),           # AMD MI325X data sheet: FP8 2614.9 TFLOPS dense
    ("mi355x", "fp8", 5e15),                # AMD MI355X data sheet: FP8 5.0 PFLOPS dense
    ("h20", "bf16", 148e12),                # HGX H20: BF16 148 TFLOPS
    ("tpu-v7", "fp8", 4614e12),             # Google TPU7x docs: 4614 TFLOPs FP8 per chip
])
def test_new_chip_flops_match_their_source(chip, key, value):
    assert cm.load_hardware(chip).flops_per_s[key] == pytest.approx(value, rel=1e-12)


def test_new_chip_memory_and_domain_match_their_source():
    assert cm.load_hardware("mi325x").hbm_bytes_per_s == 6e12         # "6 TB/s peak memory bandwidth"
    assert cm.load_hardware("gb200").hbm_bytes_per_s == 576e12 / 72   # "576 TB/s" per NVL72 rack
    assert cm.load_hardware("gb200").scale_up_domain_chips == 72      # NVL72: one NVLink domain
    assert cm.load_hardware("gb300").scale_up_domain_chips == 72
    assert cm.load_hardware("tpu-v7").scale_up_domain_chips == 9216   # TPU7x pod
    # Gaudi 3: 24 x 200 GbE = 1200 GB/s bidirectional; 21 ports to peers, 3 out (one way, bytes)
    g3 = cm.load_hardware("gaudi3")
    assert (g3.scale_up_bytes_per_s, g3.scale_out_bytes_per_s) == (21 * 200e9 / 8, 3 * 200e9 / 8)


#: Every chip's datasheet capacity and the unit its "GB" stands for (see each TOML's source).
CAPACITY = {
    "a100-80gb": (80, GiB), "h100-sxm": (80, GiB), "h200": (141, GiB), "b200": (180, GiB),
    "b300": (270, GiB), "gb200": (186, GiB), "gb300": (279, GiB), "h20": (96, GiB), "l40s": (48, GiB),
    "mi300x": (192, GiB), "mi325x": (256, GiB), "mi355x": (288, GiB), "gaudi2": (96, GiB),
    "gaudi3": (128, GiB), "tpu-v4": (32, GiB), "tpu-v5e": (16, GiB), "tpu-v5p": (95, GiB),
    "tpu-v6e": (32, GiB), "tpu-v7": (192, GiB),
}


def test_every_chip_capacity_is_its_datasheet_figure_in_bytes():
    assert set(CAPACITY) == set(cm.list_hardware()), "add the new chip's capacity here"
    for chip, (n, unit) in CAPACITY.items():
        h = cm.load_hardware(chip)
        assert h.hbm_bytes == n * unit, chip
        src = h.sources["hbm_bytes"]
        assert str(n) in src and "GiB" in src, f"{chip}: the source must give the figure and say it is GiB"
        # the source states the bytes it stands for, and they are the value
        assert f"{n} * 2^30 bytes" in src and n * 2**30 == int(h.hbm_bytes), chip


def test_h100_capacity_holds_what_nvidia_smi_reports():
    # nvidia-smi: 81,559 MiB on an H100 SXM 80GB; 80e9 bytes would be only 76,294 MiB
    h = cm.load_hardware("h100-sxm")
    assert 80e9 < 81_559 * 2**20 <= h.hbm_bytes == 81_920 * 2**20


# --- models: counts pinned to the publishers' figures ---------------------------------------------

def _counts(name):
    m = cm.load_model(name)
    vals = {SYMBOLS[k].symbol: v for k, v in m.inputs().items()}
    p = param_counts(m.structure)
    return float(p.total.subs(vals)), float(p.active.subs(vals)), m


@pytest.mark.parametrize("name, total, active, rtol", [
    ("qwen3-235b-a22b", 235e9, 22e9, 1e-2),     # Qwen3 technical report (arXiv 2505.09388), table 2
    ("qwen3-32b", 32.8e9, 32.8e9, 2e-3),        # Qwen/Qwen3-32B model card: 32.8B parameters
    ("llama-4-maverick", 400e9, 17e9, 1.5e-2),  # Meta: 17B active, 400B total
    ("kimi-k2", 1.04e12, 32.6e9, 2e-2),         # Kimi K2 report (arXiv 2507.20534): 1.04T, 32.6B activated
])
def test_new_model_counts_match_published(name, total, active, rtol):
    t, a, _ = _counts(name)
    assert t == pytest.approx(total, rel=rtol)
    assert a == pytest.approx(active, rel=rtol)


def test_gpt_oss_counts_match_the_model_card():
    # model card (arXiv 2508.10925) table 1: 116.83B total, 5.13B active per token, which counts the
    # unembedding but not the input-embedding gather; the biases and sinks left out are 0.04B
    t, a, m = _counts("gpt-oss-120b")
    assert t == pytest.approx(116.83e9, rel=5e-4)
    assert a - m.vocab_size * m.d_model == pytest.approx(5.13e9, rel=3e-3)


def test_llama4_scout_is_maverick_with_16_experts_in_every_layer():
    t, a, m = _counts("llama-4-scout")
    assert (m.n_experts, m.n_moe_layers, m.n_shared_experts) == (16, 48, 1)
    assert a == pytest.approx(17e9, rel=1.5e-2)            # Meta: 17B active
    assert t == pytest.approx(109e9, rel=1.5e-2)           # Meta: 109B total; the vision encoder is not counted here


def test_deepseek_r1_is_the_v3_architecture():
    r1, v3 = cm.load_model("deepseek-r1"), cm.load_model("deepseek-v3")
    assert r1.inputs() == v3.inputs() and r1.structure == v3.structure


@pytest.mark.parametrize("name, kind", [
    ("llama-2-7b", "mha"), ("llama-3-8b", "gqa"), ("palm-540b", "mqa"), ("deepseek-v3", "mla"),
    ("kimi-k2", "mla"), ("qwen3-235b-a22b", "gqa"), ("gpt-oss-120b", "gqa"),
])
def test_attention_kind(name, kind):
    assert attention_kind(cm.load_model(name)) == kind


# --- windowed attention: KV and FLOPs by hand, SymPy = JAX ---------------------------------------

def test_gpt_oss_kv_per_sequence_by_hand():
    # 2 (K, V) x 8 KV heads x 64 dims x 2 bytes = 2,048 bytes per layer per token; at S = 8192:
    # 18 full layers x 8192 + 18 sliding layers x 128 = 149,760 layer-tokens -> 306,708,480 bytes
    p = cm.predict("gpt-oss-120b", "b200", cm.Workload(batch=1, context=8192), precision=cm.Precision(kv="bf16"))
    assert p.kv_bytes_per_chip == pytest.approx(2048 * (18 * 8192 + 18 * 128), rel=1e-12)
    assert 2048 * (18 * 8192 + 18 * 128) == 306_708_480


def test_llama4_kv_per_sequence_by_hand():
    # 2 x 8 x 128 x 2 bytes = 4,096 per layer-token; S = 16384: 12 global layers x 16384
    # + 36 chunked layers x 8192 = 491,520 layer-tokens -> 2,013,265,920 bytes
    p = cm.predict("llama-4-scout", "b200", cm.Workload(batch=1, context=16384))
    assert p.kv_bytes_per_chip == 4096 * (12 * 16384 + 36 * 8192) == 2_013_265_920


def test_causal_pairs_by_hand():
    T = sp.Symbol("prompt", positive=True)
    for name, t, per_window_layer in [
        ("gpt-oss-120b", 1000, 128 * (1000 - 64)),      # sliding: 128 keys per query past the window
        ("gpt-oss-120b", 100, 100**2 / 2),              # inside the window: plain causal
        ("llama-4-scout", 16384, 2 * 8192**2 / 2),      # chunked: two full chunks of 8192
    ]:
        m = cm.load_model(name)
        vals = {SYMBOLS[k].symbol: v for k, v in m.inputs().items()}
        got = float(causal_pairs(m.structure, T).subs(vals).subs(T, t))
        full = m.n_layers - m.n_window_layers
        assert got == pytest.approx((full * t**2 / 2 + m.n_window_layers * per_window_layer) / m.n_layers, rel=1e-12)


@pytest.mark.parametrize("model", ["gpt-oss-120b", "llama-4-maverick"])
@pytest.mark.parametrize("context", [64, 5000, 60000])
def test_windowed_sympy_equals_jax(model, context):
    from costmodel.compile import compiled

    sc = cm.scenario(model, "gb200", cm.Workload(batch=24, context=context, prompt=context),
                     cm.Parallel(tp=8), cm.Precision(weights="fp8", kv="fp8"))
    for rules in (Rules("decode"), Rules("prefill", "sum", "full")):
        jx = compiled(sc.model.structure, rules)(sc.inputs())
        sy = sympy_values(sc.model.structure, rules, sc.inputs())
        for k, v in sy.items():
            np.testing.assert_allclose(float(jx[k]), v, rtol=1e-12, atol=0, err_msg=f"{model} {context} {k}")


@pytest.mark.parametrize("model, batch", [("gpt-oss-120b", 8), ("gpt-oss-120b", 4000),
                                          ("llama-4-scout", 4), ("llama-4-scout", 400)])
def test_windowed_max_context_fills_memory(model, batch):
    # max_context solves a piecewise-linear memory: both sides of the window (contexts above
    # and below W at these batches) land exactly on the usable bytes
    w = cm.Workload(batch=batch, context=4096)
    p = cm.predict(model, "b200", w, precision=cm.Precision(weights="fp8"))
    at = cm.predict(model, "b200", cm.Workload(batch=batch, context=p.max_context), precision=cm.Precision(weights="fp8"))
    assert at.memory_bytes_per_chip == pytest.approx(at.usable_bytes_per_chip, rel=1e-9)


def test_window_spec_errors_name_the_field():
    m = cm.load_model("gpt-oss-120b")
    with pytest.raises(cm.SpecError, match="attention_window"):
        m.replace(attention_window=0)
    with pytest.raises(cm.SpecError, match="n_window_layers=36 must be below n_layers=36"):
        m.replace(n_window_layers=36)
    with pytest.raises(cm.SpecError, match="window_kind"):
        m.replace(window_kind="strided")


def test_block_scaled_fp4_bytes():
    # NVFP4: 4-bit values + an FP8 scale per 16; MXFP4: + an 8-bit scale per 32 (4.25 bits)
    assert BYTES_PER_ELEMENT["nvfp4"] == (16 * 4 + 8) / 16 / 8
    assert BYTES_PER_ELEMENT["mxfp4"] == (32 * 4 + 8) / 32 / 8 == 4.25 / 8


# --- the measurement file -------------------------------------------------------------------------

def test_every_record_resolves_by_name():
    for r in load_records():
        cm.load_model(r["model"]), cm.load_hardware(r["hardware"])
        for f in ("weights_dtype", "kv_dtype"):
            assert r[f] is None or r[f].split()[0] in BYTES_PER_ELEMENT, (r["id"], f)


def test_every_record_is_calibrated_on():
    records = load_records()
    assert len(records) == 35
    cases = {c.id: c for c in load_cases()}
    assert list(cases) == [r["id"] for r in records]
    kinds = {rid: (c.metric, c.load) for rid, c in cases.items()}
    assert all(kinds[f"GAUDI-0{i}"] == ("static_tokens_per_s", "static") for i in range(1, 6))
    assert all(kinds[f"VLLMCI-0{i}"] == ("e2e_s", "static") for i in range(1, 4))
    assert all(kinds[f"TRTV05-0{i}"] == ("ttft_s", "static") for i in range(1, 4))
    assert kinds["SGL-02"] == ("prefill_tokens_per_s", "fixed") and kinds["TRTQ3-01"] == ("system_tokens_per_s", "max")
    assert cases["GF2-05"].model == "mixtral-8x7b"
    # each record runs under its engine's memory rule and names its layout
    assert cases["TRT-01"].engine == cases["MLP-01"].engine == "trtllm" and cases["SGL-02"].engine == "sglang"
    assert cases["VLLMCI-01"].engine == "vllm"
    assert cases["POPE-06"].layout == "wg-xyz" and cases["POPE-04"].layout == "2d-ws" and cases["GF-01"].layout == "1d-ws"
    # a per-chip rate is the system rate over the chips
    assert cases["TRTV05-05"].scale == 1 / 2


# --- the command line -----------------------------------------------------------------------------

def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = ("import sys; from costmodel.cli import main; rc = main(sys.argv[1:]); "
            "bad = sorted(m for m in ('jax', 'costmodel.compile', 'matplotlib') if m in sys.modules); "
            "print('IMPORTED', bad); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)


def test_list_does_not_import_jax_and_shows_the_new_entries():
    out = _cli("list", "models").stdout
    assert out.rstrip().endswith("IMPORTED []")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:-1]}
    for name in ("deepseek-r1", "qwen3-235b-a22b", "qwen3-32b", "gpt-oss-120b", "llama-4-scout",
                 "llama-4-maverick", "kimi-k2"):
        assert name in rows
    assert rows["llama-2-7b"][1] == "mha" and rows["palm-540b"][1] == "mqa"
    assert rows["kimi-k2"][1] == "mla" and rows["qwen3-32b"][1] == "gqa"
    assert "18/36 sliding 128" in out and "36/48 chunked 8192" in out
    hw = json.loads(_cli("list", "hardware", "--json").stdout.rsplit("IMPORTED", 1)[0])
    by_name = {r["name"]: r for r in hw}
    assert set(by_name) == set(CAPACITY)
    assert by_name["h100-sxm"]["hbm_gib"] == 80 and by_name["tpu-v7"]["hbm_gib"] == 192


def test_optimize_cli_methods_are_the_optimizers():
    from costmodel.cli.optimize_cmd import METHODS
    from costmodel.optimizer import METHODS as OPTIMIZER_METHODS

    assert METHODS == OPTIMIZER_METHODS


# --- Hugging Face configs of the new architectures ------------------------------------------------

def test_hf_config_reads_gpt_oss_and_llama4():
    from costmodel.specs import model_from_hf_config

    oss = {"model_type": "gpt_oss", "num_hidden_layers": 36, "hidden_size": 2880, "num_attention_heads": 64,
           "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 201088, "intermediate_size": 2880,
           "num_local_experts": 128, "num_experts_per_tok": 4, "attention_bias": True, "sliding_window": 128,
           "layer_types": ["sliding_attention", "full_attention"] * 18, "tie_word_embeddings": False,
           "quantization_config": {"quant_method": "mxfp4"}}
    got = model_from_hf_config(oss, name="gpt-oss-120b")
    want = cm.load_model("gpt-oss-120b")
    assert got.inputs() == want.inputs() and got.structure == want.structure
    assert got.native_precision == "mxfp4"
    text = {"model_type": "llama4_text", "num_hidden_layers": 48, "hidden_size": 5120, "num_attention_heads": 40,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 202048, "intermediate_size": 8192,
            "intermediate_size_mlp": 16384, "num_local_experts": 128, "num_experts_per_tok": 1,
            "interleave_moe_layer_step": 2, "attention_chunk_size": 8192, "tie_word_embeddings": False}
    got = model_from_hf_config({"model_type": "llama4", "text_config": text}, name="llama-4-maverick")
    want = cm.load_model("llama-4-maverick")
    assert got.inputs() == want.inputs() and got.structure == want.structure
