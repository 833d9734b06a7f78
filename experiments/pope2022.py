"""Reproduce Pope et al. 2022 (arXiv 2211.05102) for PaLM 540B on 64 TPU v4 chips.

Table 1: the longest context that fits at batch 128 and 512 when 30% of HBM
holds the KV cache, for multihead attention (d_head 128), head-sharded
multiquery and batch-sharded multiquery attention (docs/theory.md §13.3).

Table 2: prefill and decode, low-latency and high-throughput (docs/theory.md §13.4;
records POPE-04, POPE-06, POPE-08 of the shared measurements file).

The model is a roofline lower bound: predicted times at or below the published
ones are expected. Prints ``name: value unit`` lines and two side-by-side tables.

Run: ``python experiments/pope2022.py``
"""

from __future__ import annotations

import json
from pathlib import Path

import costmodel as cm

CHIPS = 64
MEASUREMENTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "measurements.json"

# Table 1 of [E] via docs/theory.md §13.3: maximum context (tokens) at batch 128 / 512
TABLE1 = {
    "multihead, d_head 128": (1320, 330),
    "multiquery, head-sharded": (660, 165),
    "multiquery, batch-sharded": (43000, 10700),
}

# Table 2 of [E] via docs/theory.md §13.4 and the shared measurement records.
# (label, record id, phase, batch, weights, layout, attention, published seconds, published MFU, tokens timed)
TABLE2 = [
    ("low-latency prefill", "POPE-04", "prefill", 1, "int8", "2d-ws", "heads", 0.29, 0.43, 1),
    ("low-latency decode", "POPE-08", "decode", 64, "int8", "2d-ws", "batch", 1.82, 0.14, 64),
    ("high-throughput prefill", "POPE-06", "prefill", 512, "bf16", "wg-xyz", "batch", 85.2, 0.76, 1),
    ("high-throughput decode", None, "decode", 512, "bf16", "2d-ws", "batch", 6.0, 0.33, 64),
]


def palm(kind: str) -> cm.ModelSpec:
    """PaLM 540B with heads padded to 64 ([E] section 3); the multihead variant has 64 KV heads of 128."""
    m = cm.load_model("palm-540b-padded64")
    if kind.startswith("multihead"):
        return m.replace(name="palm-540b-mha-dhead128", n_kv_heads=64, d_head=128)
    return m


def table1() -> list[tuple[str, int, float, float]]:
    """Rows (variant, batch, predicted, published): S_max = 0.3·M / (KV bytes per chip per context token)."""
    rows = []
    budget = cm.Efficiency(memory_fraction=0.3, name="30% of HBM for KV")
    for variant, published in TABLE1.items():
        sharding = "batch" if "batch-sharded" in variant else "heads"
        for batch, pub in zip((128, 512), published):
            p = cm.predict(palm(variant), "tpu-v4", cm.Workload(batch=batch, context=2048),
                           parallel=cm.Parallel(tp=CHIPS), efficiency=budget,
                           rules=cm.Rules(layout="2d-ws", attention_sharding=sharding))
            per_token = p.kv_bytes_per_chip / 2048
            rows.append((variant, batch, p.usable_bytes_per_chip / per_token, pub))
    return rows


def _published(record: str | None, fallback: float) -> float:
    """The record's value from the shared measurements file when present (decode: per token x 64)."""
    if record is None or not MEASUREMENTS.is_file():
        return fallback
    recs = {r["id"]: r for r in json.loads(MEASUREMENTS.read_text())["records"]}
    r = recs.get(record)
    if r is None:
        return fallback
    return r["value"] * 64 if r["metric"] == "per_token_latency" else r["value"]


def table2(overlap: str) -> list[tuple[str, float, float, float, float]]:
    """Rows (scenario, predicted s, published s, predicted MFU, published MFU)."""
    rows = []
    for label, rec, phase, batch, weights, layout, attention, pub_s, pub_mfu, tokens in TABLE2:
        wl = cm.Workload(batch=batch, context=2048, prompt=2048, phase=phase)
        p = cm.predict("palm-540b-padded64", "tpu-v4", wl, parallel=cm.Parallel(tp=CHIPS), efficiency=cm.IDEAL,
                       precision=cm.Precision(weights=weights),
                       rules=cm.Rules(phase, layout=layout, attention_sharding=attention, comm_overlap=overlap))
        assert p.fits, p.memory_message()
        rows.append((label, p.step_time_s * tokens, _published(rec, pub_s), p.mfu, pub_mfu))
    return rows


def main() -> None:
    print("Pope et al. 2022, Table 1: max context, PaLM 540B, 64 TPU v4, 30% of HBM for KV")
    print(f"{'variant':<28}{'batch':>6}{'predicted':>12}{'published':>12}{'ratio':>8}")
    for variant, batch, pred, pub in table1():
        print(f"{variant:<28}{batch:>6}{pred:>12,.0f}{pub:>12,}{pred / pub:>8.3f}")
    print()
    print("Pope et al. 2022, Table 2: PaLM 540B, 64 TPU v4, context 2048 (decode: time for 64 tokens)")
    hidden = {r[0]: r[1] for r in table2("full")}
    print(f"{'scenario':<25}{'predicted s':>12}{'(overlap)':>11}{'published s':>12}{'ratio':>7}"
          f"{'MFU pred':>10}{'MFU pub':>9}")
    for label, pred, pub, mfu, pub_mfu in table2("none"):
        print(f"{label:<25}{pred:>12.4g}{hidden[label]:>11.4g}{pub:>12.4g}{pred / pub:>7.3f}"
              f"{mfu:>10.1%}{pub_mfu:>9.0%}")
    print()
    for variant, batch, pred, _ in table1():
        print(f"pope2022.table1.{variant.replace(' ', '_').replace(',', '')}.batch{batch}: {pred:.0f} tokens")
    for label, pred, pub, _, _ in table2("none"):
        print(f"pope2022.table2.{label.replace(' ', '_')}: {pred:.4g} s")


if __name__ == "__main__":
    main()
