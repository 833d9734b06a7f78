"""Catalog specs: every number sourced, counts pinned to published figures (docs/theory.md §3-4)."""

import json
import math

import pytest
import sympy as sp

import costmodel as cm
from costmodel.symbolic import SYMBOLS, kv_bytes_per_token, param_counts


def counts(name, kv_bytes=2.0):
    m = cm.load_model(name)
    vals = {SYMBOLS[k].symbol: v for k, v in m.inputs().items()}
    vals[SYMBOLS["kv_bytes"].symbol] = kv_bytes
    p = param_counts(m.structure)
    ev = lambda e: float(sp.sympify(e).subs(vals))  # noqa: E731
    return ev(p.total), ev(p.active), ev(kv_bytes_per_token(m.structure))


@pytest.mark.parametrize(
    "name, total, active, kv, rtol",
    [
        # docs/theory.md §3.1 worked counts and §4.1 KV table ([S], [D])
        ("llama-3-8b", 8.03e9, 8.03e9, 131_072, 1e-3),
        ("llama-3-70b", 70.55e9, 70.55e9, 327_680, 1e-3),
        ("llama-3.1-405b", 405.9e9, 405.9e9, 516_096, 1e-3),
        ("llama-2-13b", 13.0e9, 13.0e9, 819_200, 2e-3),
        # docs/theory.md §3.3 [DS, D]: 671.0B total, 37.6B active, 70,272 B/token (bf16)
        ("deepseek-v3", 671.0e9, 37.6e9, 70_272, 2e-3),
        # docs/theory.md §4.1 [E]: PaLM 540B multiquery, 120,832 B/token
        ("palm-540b", 540e9, 540e9, 120_832, 2e-3),
        # Mistral AI, "Mixtral of experts" (arXiv 2401.04088): 46.7B total, 12.9B active
        ("mixtral-8x7b", 46.7e9, 12.9e9, 131_072, 2e-3),
    ],
)
def test_counts_match_published(name, total, active, kv, rtol):
    t, a, k = counts(name)
    assert t == pytest.approx(total, rel=rtol)
    assert a == pytest.approx(active, rel=rtol)
    assert k == kv  # exact: 2·L·N_kv·H·b_kv or L·(d_c + d_R)·b_kv


def test_kv_quantised_halves():
    # docs/theory.md §4.1: LLaMA-3 70B 160 KiB in int8 ("160 kB" [S]); DeepSeek-V3 35,136 B in fp8
    assert counts("llama-3-70b", kv_bytes=1.0)[2] == 160 * 1024
    assert counts("deepseek-v3", kv_bytes=1.0)[2] == 35_136


def test_palm_padding_adds_18b():
    # Pope et al. 2022 (docs/theory.md §13.4): padding 48 -> 64 heads adds about 18B parameters
    extra = counts("palm-540b-padded64")[0] - counts("palm-540b")[0]
    assert extra == pytest.approx(18e9, rel=0.02)


def test_every_hardware_number_cites_a_source():
    for name in cm.list_hardware():
        h = cm.load_hardware(name)
        numeric = [f"flops_per_s.{p}" for p in h.flops_per_s] + [
            "hbm_bytes_per_s", "hbm_bytes", "scale_up_bytes_per_s", "scale_up_domain_chips",
            "scale_out_bytes_per_s", "collective_latency_s", "usd_per_chip_hour"]
        for key in numeric:
            assert len(h.sources.get(key, "")) > 10, f"{name}.{key} has no source"
        assert h.price_date, f"{name} price has no date"


def test_every_model_cites_a_source():
    for name in cm.list_models():
        m = cm.load_model(name)
        assert m.source.startswith(("http", "arXiv", "arxiv")) or len(m.source) > 10, name


def test_h100_critical_batch():
    # docs/theory.md §7.1: R = C·b_w/(2W) ≈ 295 for H100 bf16 [S]
    h = cm.load_hardware("h100-sxm")
    assert h.flops_per_s["bf16"] * 2 / (2 * h.hbm_bytes_per_s) == pytest.approx(295, abs=1.5)


def test_unknown_names_list_valid_and_closest():
    with pytest.raises(cm.UnknownNameError, match=r"did you mean 'llama-3-70b'.*Valid model names: .*mixtral-8x7b"):
        cm.load_model("llama3-70b")
    with pytest.raises(cm.UnknownNameError, match=r"did you mean 'h100-sxm'"):
        cm.load_hardware("h100")


LLAMA3_8B_CONFIG = {
    # meta-llama/Meta-Llama-3-8B config.json
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}
DEEPSEEK_V3_CONFIG = {
    # deepseek-ai/DeepSeek-V3 config.json (fields used by the loader)
    "model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128, "n_shared_experts": 1,
    "n_routed_experts": 256, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "kv_lora_rank": 512,
    "q_lora_rank": 1536, "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128,
    "vocab_size": 129280, "tie_word_embeddings": False, "n_group": 8, "topk_group": 4,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8"},
}


@pytest.mark.parametrize("config, name", [(LLAMA3_8B_CONFIG, "llama-3-8b"), (DEEPSEEK_V3_CONFIG, "deepseek-v3")])
def test_hf_config_matches_catalog(tmp_path, config, name):
    path = tmp_path / name / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(config))
    loaded, builtin = cm.load_model(str(path)), cm.load_model(name)
    assert loaded.name == str(path)  # no _name_or_path: named by the path given, not a guess from its folder
    assert loaded.inputs() == builtin.inputs()
    assert loaded.structure == builtin.structure
    assert loaded.native_precision == builtin.native_precision


@pytest.mark.parametrize("change, match", [
    ({"topk_group": 9}, "topk_group=9 must be between 1 and n_group=8"),
    ({"n_group": 3, "topk_group": 1}, "n_group=3 must divide"),
    ({"n_group": 0.5}, "n_group must be a whole number"),
])
def test_hf_node_limited_routing_is_checked(change, match):
    with pytest.raises(cm.SpecError, match=match):
        cm.model_from_hf_config(DEEPSEEK_V3_CONFIG | change, name="deepseek-v3")


def test_hf_mixtral_config():
    m = cm.model_from_hf_config({"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
                                 "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32,
                                 "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000},
                                name="mixtral-8x7b")
    assert m.inputs() == cm.load_model("mixtral-8x7b").inputs()


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ('{"hidden_size": 4096}', "lacks num_attention_heads"),
    ('{"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": "x", "vocab_size": 10}',
     r"num_hidden_layers must be a whole number in \[1, 100,000\], got 'x'"),
    ("[1, 2]", "JSON object"),
])
def test_malformed_config_is_a_clear_error(tmp_path, text, match):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(cm.SpecError, match=match):
        cm.load_model(str(path))


def test_spec_validation():
    m = cm.load_model("llama-3-8b")
    with pytest.raises(cm.SpecError, match="n_kv_heads=5 must divide n_heads=32"):
        m.replace(n_kv_heads=5)
    with pytest.raises(cm.SpecError, match=r"d_model must be a whole number in \[0, 10,000,000\], got -1"):
        m.replace(d_model=-1)
    ds = cm.load_model("deepseek-v3")
    with pytest.raises(cm.SpecError, match="expert_groups_per_token=9 must be between 1 and n_expert_groups=8"):
        ds.replace(expert_groups_per_token=9)
    with pytest.raises(cm.SpecError, match="n_expert_groups=3 must divide n_experts=256"):
        ds.replace(n_expert_groups=3, expert_groups_per_token=1)
    with pytest.raises(cm.SpecError, match="n_expert_groups must be >= 1"):
        m.replace(n_expert_groups=0)
    h = cm.load_hardware("h100-sxm")
    with pytest.raises(cm.SpecError, match="hbm_bytes_per_s must be a positive number"):
        h.replace(hbm_bytes_per_s=math.nan)


def test_the_sample_config_json_is_the_catalogs_llama_3_8b():
    """docs/examples/config.json (Meta-Llama-3-8B's Hugging Face configuration, the how-to's sample) imports as the
    catalog's llama-3-8b in every architectural field."""
    import dataclasses
    from pathlib import Path

    import costmodel as cm

    sample = cm.load_model(str(Path(__file__).resolve().parents[1] / "docs" / "examples" / "config.json"))
    catalog = cm.load_model("llama-3-8b")
    skip = {"name", "display_name", "source", "sources"}
    for f in dataclasses.fields(catalog):
        if f.name not in skip:
            assert getattr(sample, f.name) == getattr(catalog, f.name), f.name
