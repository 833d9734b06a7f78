"""Expert placement (docs/theory.md §3.2): redundant expert copies and the busiest expert group."""

from __future__ import annotations

import json

import pytest

import costmodel as cm
from costmodel.specs import load_hardware, load_model
from tests.cli_run import run_cli

# DeepSeek-V3 config.json: hidden_size 7168, moe_intermediate_size 2048, 256 routed experts of a gated
# MLP (three matrices), 8 per token, 58 MoE layers (61 layers, first_k_dense_replace 3)
EXPERT_PARAMS_PER_LAYER = 3 * 7168 * 2048
MOE_LAYERS = 58
FP8 = cm.Precision(weights="fp8", kv="fp8")


def _values(parallel: cm.Parallel, batch: float = 18432, **kw) -> dict:
    """The ideal step's values (the hand counts are the roofline's)."""
    return cm.predict("deepseek-v3", "h200", cm.Workload(batch=batch, context=2000), parallel=parallel,
                      precision=FP8, **({"efficiency": cm.IDEAL} | kw)).values


def test_the_catalog_matches_the_hand_counts():
    m = load_model("deepseek-v3")
    assert (m.n_experts, m.experts_per_token, m.n_moe_layers) == (256, 8, MOE_LAYERS)
    assert m.d_model == 7168 and m.d_ff_expert == 2048


def test_72_chips_with_32_redundant_experts_hold_4_experts_each():
    """(256 + 32)/72 = 4 experts per GPU: the same weights per chip as 64-way expert parallelism
    without copies, and two experts' weights more than 128-way."""
    redundant = _values(cm.Parallel(ep=72, redundant_experts=32))
    four = _values(cm.Parallel(ep=64))
    two = _values(cm.Parallel(ep=128))
    assert redundant["weight_bytes_per_chip"] == pytest.approx(four["weight_bytes_per_chip"], rel=1e-12)
    two_experts = 2 * MOE_LAYERS * EXPERT_PARAMS_PER_LAYER * 1  # fp8: one byte a weight
    assert redundant["weight_bytes_per_chip"] - two["weight_bytes_per_chip"] == pytest.approx(two_experts, rel=1e-9)


def test_ep_must_divide_the_placed_experts():
    with pytest.raises(cm.CostModelError, match="256 experts"):
        _values(cm.Parallel(ep=72))
    with pytest.raises(cm.CostModelError, match="dense"):
        cm.predict("llama-3-8b", "h100-sxm", cm.Workload(batch=8, context=128),
                   parallel=cm.Parallel(redundant_experts=4), efficiency=cm.IDEAL)
    for bad in (dict(redundant_experts=-1), dict(redundant_experts=1.5), dict(expert_imbalance=0.5)):
        with pytest.raises(cm.CostModelError):
            cm.Parallel(**bad)


def test_the_busiest_group_sets_the_routed_compute():
    """``ι_ep`` adds ``(ι_ep - 1)·B·2·k·L_moe·3·D·F_e`` routed FLOPs to the busiest group (ideal: at
    the chip's fp8 peak over the ep chips)."""
    par = dict(ep=64)
    base = _values(cm.Parallel(**par))
    hot = _values(cm.Parallel(**par, expert_imbalance=1.25))
    flops = 0.25 * 18432 * 2 * 8 * MOE_LAYERS * EXPERT_PARAMS_PER_LAYER
    peak = load_hardware("h200").flops_per_s["fp8"]
    assert hot["compute_s"] - base["compute_s"] == pytest.approx(flops / (64 * peak), rel=1e-9)
    assert hot["step_time_s"] >= base["step_time_s"]


def test_redundant_copies_spread_the_expert_fetch():
    """With copies the step reads more stored bytes only where the load touches them: at one token per
    group the fetched fraction falls from k/E to k/(E + R) of a larger store, the same bytes."""
    few = _values(cm.Parallel(ep=64), batch=1)
    spread = _values(cm.Parallel(ep=64, redundant_experts=64), batch=1)
    assert spread["weights_s"] == pytest.approx(few["weights_s"], rel=1e-3)
    full = _values(cm.Parallel(ep=64))
    full_spread = _values(cm.Parallel(ep=64, redundant_experts=64))
    assert full_spread["weights_s"] > full["weights_s"]  # every copy read at a large batch


def test_predict_cli_takes_the_placement(capsys):
    code, out, err = run_cli(capsys, "predict", "--model", "deepseek-v3", "--hardware", "h200", "--ep", "72",
                             "--redundant-experts", "32", "--batch", "18432", "--context", "2000", "--weights", "fp8",
                             "--kv", "fp8", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["fits"] and d["parallel"]["redundant_experts"] == 32
    assert d["memory_breakdown_bytes"]["weight"] == pytest.approx(_values(cm.Parallel(ep=64))["weight_bytes_per_chip"])
    code, out, err = run_cli(capsys, "predict", "--model", "deepseek-v3", "--hardware", "h200", "--ep", "72")
    assert code == 2 and "256 experts" in err and "Traceback" not in err


def test_every_answer_says_what_one_chip_holds(capsys):
    """tp·pp·ep chips here (engines run ep on the tp GPUs): the text states the chips and each one's share."""
    code, out, err = run_cli(capsys, "predict", "--model", "deepseek-v3", "--hardware", "h200", "--tp", "8", "--ep", "8")
    assert code == 0, err
    assert "= 64 chips" in out and "16 of 128 query heads, 61 of 61 layers, 32 of 256 routed experts" in out
    code, out, err = run_cli(capsys, "predict", "--model", "deepseek-v3", "--hardware", "h200", "--ep", "72",
                             "--redundant-experts", "32", "--weights", "fp8", "--kv", "fp8")
    assert code == 0, err
    assert "4 of 288 routed experts" in out
