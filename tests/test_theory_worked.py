"""The worked answers of docs/theory.md §8, §9, §15, pinned to their sources.

Where a published figure and the code differ by construction, the test says why: the
code never streams the input-embedding table (docs/theory.md §5.2, §17), while some
worked figures (5.26 ms floor, section 9 table) divide the full P_tot, so they
sit about 1.5% above the code for LLaMA-3 70B (1.05B embedding parameters).
"""

import pytest

import costmodel as cm
from costmodel.symbolic import Rules

FULL_OVERLAP = Rules(comm_overlap="full")  # the worked examples ignore communication


def decode(model, hw, batch, context, tp=1, ep=1, weights=None, kv=None, rules=FULL_OVERLAP, **kw):
    """The worked examples are the ideal roofline's (docs/theory.md §15)."""
    return cm.predict(model, hw, cm.Workload(batch=batch, context=context),
                      parallel=cm.Parallel(tp=tp, ep=ep), precision=cm.Precision(weights=weights, kv=kv),
                      rules=rules, **({"efficiency": cm.IDEAL} | kw))


def test_weight_floor_llama3_70b_8xh100():
    # docs/theory.md §8, §15.5 [D]: 5.26 ms (bf16), 2.63 ms (fp8) on 8×H100 at batch 1
    m = cm.load_model("llama-3-70b")
    p = decode("llama-3-70b", "h100-sxm", 1, 1, tp=8)
    fetched = 70.553706496e9 - m.vocab_size * m.d_model  # input embedding excluded
    assert p.weights_s == pytest.approx(2 * fetched / (8 * 3.35e12), rel=1e-12)
    assert p.weights_s == pytest.approx(5.26e-3, rel=0.016)
    assert decode("llama-3-70b", "h100-sxm", 1, 1, tp=8, weights="fp8").weights_s == pytest.approx(2.63e-3, rel=0.016)


@pytest.mark.parametrize("batch, step_ms, user_tps, usd_per_mtok", [
    # docs/theory.md §9, worked cost table: LLaMA-3 70B, 8×H100 at $2/GPU-h, bf16, S=8192, max model
    (1, 5.37, 186, 23.8),
    (16, 6.87, 146, 1.91),
    (64, 11.7, 86, 0.81),
])
def test_cost_table_llama3_70b(batch, step_ms, user_tps, usd_per_mtok):
    p = decode("llama-3-70b", "h100-sxm", batch, 8192, tp=8, usd_per_chip_hour=2.0)
    assert p.step_time_s * 1e3 == pytest.approx(step_ms, rel=0.02)
    assert p.tokens_per_s_per_user == pytest.approx(user_tps, rel=0.02)
    assert p.usd_per_mtok == pytest.approx(usd_per_mtok, rel=0.02)
    assert p.bound == "memory" and p.fits


def test_memory_cap_llama3_70b_8k():
    # docs/theory.md §7.4, §15.5 count 80e9 bytes per H100: 499 GB free, ~186 sequences at 8k. The card
    # holds 80 GiB: 8 x 68,260,919,296 B = 546 GB free, 1.67M tokens; per chip (85,899,345,920 B -
    # 17,638,426,624 B of weights) / (335,544,320 B KV + 96,896 B activations) per sequence = 203.37
    assert decode("llama-3-70b", "h100-sxm", 203, 8192, tp=8).fits
    p = decode("llama-3-70b", "h100-sxm", 204, 8192, tp=8)
    assert not p.fits


def test_tpu_v5e_17ms_step():
    # docs/theory.md §15.2 [S]: LLaMA-3 70B, int8 weights and KV, batch 32, 8k context, 4x2 v5e: ≈17 ms,
    # 235 tok/s/chip ([D] roofline: 17.5 ms, 228 tok/s/chip, $1.46/Mtok at $1.2/chip-h)
    p = decode("llama-3-70b", "tpu-v5e", 32, 8192, tp=8, weights="int8", kv="int8")
    assert p.step_time_s == pytest.approx(17e-3, rel=0.04)
    assert p.tokens_per_s / 8 == pytest.approx(232, rel=0.03)
    assert p.usd_per_mtok == pytest.approx(1.46, rel=0.04)
    assert p.values["memory_bytes_per_chip"] * 8 == pytest.approx(112e9, rel=0.03)


def test_llama2_13b_on_8_v5e():
    # docs/theory.md §15.4 [S]: step 4.98 ms -> 249 ms and 201 -> 964 tok/s as batch goes 1 -> 240
    small = decode("llama-2-13b", "tpu-v5e", 1, 8192, tp=8)
    large = decode("llama-2-13b", "tpu-v5e", 240, 8192, tp=8)
    assert small.step_time_s == pytest.approx(4.98e-3, rel=0.02)
    assert large.step_time_s == pytest.approx(249e-3, rel=0.02)
    assert small.tokens_per_s == pytest.approx(201, rel=0.02)
    assert large.tokens_per_s == pytest.approx(964, rel=0.02)
    assert not large.fits  # "The batch runs out of memory beyond 16"


def test_30b_example_on_16_v5e():
    # docs/theory.md §15.3 [S]: a 30B dense model on v5e 4x4, int8 weights and KV, 100 kB/token KV, 8k context:
    # batch 4 ≈ 2.5 ms (weights + KV); batch 256 ≈ 21 ms ([S]'s rule: T_kv + max(T_matmul, T_w)).
    # Sizes chosen to give 30.0B parameters and exactly 100,000 KV bytes/token in int8, with
    # 16 KV heads so that 16-way tensor parallelism needs no KV replication.
    m = cm.ModelSpec(name="dense-30b", attention="gqa", mlp="dense", n_layers=25, d_model=6400,
                     n_heads=64, n_kv_heads=16, d_head=125, vocab_size=32000, d_ff=55833)
    sb_rule = Rules(combine="scaling-book", comm_overlap="full")
    p4 = decode(m, "tpu-v5e", 4, 8192, tp=16, weights="int8", kv="int8")
    p256 = decode(m, "tpu-v5e", 256, 8192, tp=16, weights="int8", kv="int8", rules=sb_rule)
    assert p4.values["kv_bytes_per_token"] == 100_000
    assert p4.step_time_s == pytest.approx(2.5e-3, rel=0.04)
    assert p256.step_time_s == pytest.approx(21e-3, rel=0.04)


def test_deepseek_v3_on_nvl72_terms():
    # docs/theory.md §15.6 [D]: DeepSeek-V3 on GB200 NVL72, S = 32k, B = 5,100: KV read 20.4 ms,
    # MLA attention FLOPs 8.8 ms, parameter FLOPs 1.2 ms (fp8 weights and math, bf16 latent), all
    # on 72 GPUs. Expert parallelism must divide the 256 experts, so 64 of the rack's GPUs serve here
    # and each term scales by 72/64.
    b200 = cm.load_hardware("b200")
    nvl72 = b200.replace(name="gb200-nvl72", scale_up_domain_chips=72)
    p = decode("deepseek-v3", nvl72, 5100, 32768, ep=64, weights="fp8", kv="bf16")
    assert p.kv_s == pytest.approx(20.4e-3 * 72 / 64, rel=0.01)
    assert p.compute_s == pytest.approx((8.8 + 1.2) * 1e-3 * 72 / 64, rel=0.03)
    assert p.bound == "memory"
