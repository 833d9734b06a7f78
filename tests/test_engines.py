"""Engine memory presets: the KV capacity each engine's rule gives, against hand arithmetic."""

from __future__ import annotations

import pytest

import costmodel as cm
from costmodel.engines import DEFAULT_ENGINE, ENGINES, engine, with_engine
from costmodel.efficiency import load_profile

GiB = 2**30
#: H100 SXM: 80 GiB (costmodel/specs/data/hardware/h100-sxm.toml cites NVIDIA's 80 GB = 80 * 2^30 bytes)
M = 80 * GiB
#: Llama 3.1 70B (HF config.json): 80 layers, d 8192, 64 heads of 128, 8 KV heads, FFN 28672 (SwiGLU),
#: vocabulary 128256, untied embeddings. Parameters counted by hand:
_LAYER = 2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192   # q, o; k, v; MLP; 2 norms
P = 2 * 128256 * 8192 + 80 * _LAYER + 8192                                  # embeddings in and out, final norm
W = P * 1                                  # fp8 weights: 1 byte each
KV_PER_SEQ = 80 * 2 * 8 * 128 * 1 * 256    # layers x (K, V) x KV heads x head dim x 1 byte (fp8) x 256 tokens
ACT_PER_SEQ = 2 * 8192 * 2 + 128256 * 4    # decode: residual stream in and out (bf16) + fp32 logits


def _max_batch(engine_name):
    p = cm.predict("llama-3.1-70b", "h100-sxm", cm.Workload(batch=1, context=256),
                   precision=cm.Precision(weights="fp8", kv="fp8"), efficiency=with_engine("ideal", engine_name))
    return p.values["max_batch"]


def test_parameter_count_is_the_published_70_6b():
    assert P == 70_553_706_496  # "70.6B" (Meta's model card)


@pytest.mark.parametrize("name, expected", [
    # vLLM: KV = 0.9 x total - weights - activations
    ("vllm", (0.9 * M - W) / (KV_PER_SEQ + ACT_PER_SEQ)),
    # TensorRT-LLM: KV = 0.9 x (total - weights - activations)
    ("trtllm", 0.9 * (M - W) / (KV_PER_SEQ + 0.9 * ACT_PER_SEQ)),
    # SGLang: weights + KV = 0.88 x total; activations outside
    ("sglang", (0.88 * M - W) / KV_PER_SEQ),
])
def test_kv_capacity_of_llama_31_70b_fp8_on_one_h100_under_each_engine(name, expected):
    assert _max_batch(name) == pytest.approx(expected, rel=1e-9)


def test_the_engine_rules_order_and_scale():
    vllm, trt, sgl = (_max_batch(n) for n in ("vllm", "trtllm", "sglang"))
    # 80 GiB, not 80e9 bytes: the 80e9 reading would leave (0.9 x 80e9 - W) for 34 sequences
    assert int((0.9 * 80e9 - W) / (KV_PER_SEQ + ACT_PER_SEQ)) == 34
    assert int(vllm) == 158 and int(trt) == 325 and int(sgl) == 120


def test_presets_cite_their_engine_docs_and_defaults():
    assert ENGINES["vllm"].value == 0.9 and "gpu_memory_utilization" in ENGINES["vllm"].setting
    assert ENGINES["trtllm"].value == 0.9 and "free_gpu_memory_fraction" in ENGINES["trtllm"].setting
    assert ENGINES["sglang"].value == 0.88 and ENGINES["sglang"].setting == "mem_fraction_static"
    for e in ENGINES.values():
        assert e.source and e.rule


def test_the_calibrated_profile_uses_the_default_engine_rule():
    fixed = load_profile("calibrated").fixed
    for k, v in engine(DEFAULT_ENGINE).inputs().items():
        assert fixed.get(k, 1.0) == v


def test_engine_applies_to_an_efficiency_and_a_profile():
    e = engine("trtllm").apply(cm.Efficiency(hbm_efficiency=0.8))
    assert (e.hbm_efficiency, e.memory_fraction, e.kv_memory_fraction) == (0.8, 1.0, 0.9)
    p = engine("sglang").apply("calibrated")
    assert p.fixed["memory_fraction"] == 0.88 and p.fixed["activations_in_budget"] == 0.0
    assert with_engine("calibrated", None) == "calibrated"


def test_unknown_engine_is_one_clear_error():
    with pytest.raises(cm.UnknownNameError, match="unknown engine 'vlm'; did you mean 'vllm'"):
        engine("vlm")


def test_engine_reaches_serve_and_optimize():
    eff = with_engine("calibrated", "trtllm")
    s = cm.serve("llama-3.1-70b", "h100-sxm", cm.Requests(128, 128), cm.Load.offline(), parallel=cm.Parallel(tp=1),
                 precision=cm.Precision(weights="fp8", kv="fp8"), efficiency=eff)
    base = cm.serve("llama-3.1-70b", "h100-sxm", cm.Requests(128, 128), cm.Load.offline(), parallel=cm.Parallel(tp=1),
                    precision=cm.Precision(weights="fp8", kv="fp8"), efficiency="calibrated")
    assert s.details["max_batch"] > 1.9 * base.details["max_batch"]


def test_cli_engine_flag(capsys):
    from costmodel.cli import main
    args = ["predict", "--model", "llama-3.1-70b", "--weights", "fp8", "--kv", "fp8", "--context", "256", "--json"]
    assert main(args + ["--engine", "trtllm"]) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    assert out["max_batch"] > 300 and out["efficiency"] == "calibrated@trtllm"
    with pytest.raises(SystemExit) as e:  # argparse: one line naming the choices, exit 2
        main(args + ["--engine", "nope"])
    assert e.value.code == 2 and "choose from 'vllm', 'trtllm', 'sglang'" in capsys.readouterr().err
