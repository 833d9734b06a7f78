"""The Llama-3-70B / 8x H100 / ISL = OSL = 1024 serving scenario, as markdown tables.

1. The decode-only step at tp=8, batch 442 (what ``costmodel predict`` and ``optimize``
   price) against the aggregated TPOT at the same batch, whose steps also prefill the
   arriving prompts (the prefill share, :func:`costmodel.derive.prefill_share`), and the
   static-batch TPOT (:func:`costmodel.derive.static_batch_latency`).
2. TTFT, TPOT and output tokens/s per GPU against concurrency for aggregated serving
   (one tp=8 replica, 8 GPUs) and disaggregated serving (a tp=8 prefill replica and a tp=8
   decode replica, 16 GPUs; the two pools' capacities are printed to show they match).

Ideal roofline and the calibrated profile. Run: ``python experiments/serving_scenario.py``
(about 30 s on 2 CPU cores).
"""

from __future__ import annotations

import math

import costmodel as cm
from costmodel import derive

MODEL, CHIP = "llama-3-70b", "h100-sxm"
ISL = OSL = 1024
BATCH = 442          # the optimiser's answer for TPOT <= 30 ms on this problem (tp=8)
CHUNK = 8192         # prefill tokens per step (the default chunk budget)
CONCURRENCY = (1, 8, 32, 64, 128, 256, 442)
CONTEXT = ISL + OSL / 2  # mean cached tokens of a decoding sequence in steady state


def ms(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{1e3 * x:.1f}"


def step_table(eff: str) -> list[str]:
    """Decode-only step against aggregated and static-batch TPOT at batch 442."""
    kw = dict(tp=8, batch=BATCH, context=CONTEXT, prompt=ISL, output_tokens=OSL, chunk_tokens=CHUNK, efficiency=eff)
    dec = cm.predict(MODEL, CHIP, cm.Workload(batch=BATCH, context=CONTEXT), parallel=cm.Parallel(tp=8),
                     efficiency=eff)
    agg = derive.aggregated_step(MODEL).value(MODEL, CHIP, **kw)
    share = derive.prefill_share(MODEL).value(MODEL, CHIP, **kw)
    e2e = derive.static_batch_latency(MODEL).value(MODEL, CHIP, tp=8, batch=BATCH, prompt=ISL, output_tokens=OSL,
                                                   efficiency=eff)
    req = cm.Requests(ISL, OSL)
    served = cm.serve(MODEL, CHIP, req, cm.Load.offline(max_batch=BATCH), parallel=cm.Parallel(tp=8),
                      efficiency=eff, chunk_tokens=CHUNK)
    static = cm.serve(MODEL, CHIP, req, cm.Load.static(BATCH), parallel=cm.Parallel(tp=8), efficiency=eff)
    # the derivation takes one efficiency for both phases; cm.serve prefills with the prefill-phase
    # values, so the two agree exactly where the profile does not depend on the phase (ideal)
    if eff == "ideal" and abs(static.e2e_latency_s / e2e - 1) > 1e-6:
        raise RuntimeError(f"cm.serve's static batch ({static.e2e_latency_s}) and the derivation ({e2e}) disagree")
    per_gpu = lambda tpot: BATCH / tpot / 8  # noqa: E731  output tokens/s per GPU at 442 sequences
    return [
        f"| {eff} | step | TPOT (ms) | output tok/s per GPU |",
        "|---|---|---:|---:|",
        f"| | decode-only step (`costmodel predict --batch {BATCH} --context {CONTEXT:.0f}`) | "
        f"{ms(dec.step_time_s)} | {per_gpu(dec.step_time_s):,.0f} |",
        f"| | aggregated, every step prefills {BATCH} prompt tokens (`derive.aggregated_step`; "
        f"prefill share {100 * share:.0f}%) | {ms(agg)} | {per_gpu(agg):,.0f} |",
        f"| | aggregated, prompts in whole {ISL}-token chunks (`cm.serve`, offline at batch {BATCH}) | "
        f"{ms(served.tpot_s)} | {served.output_tokens_per_s_per_chip:,.0f} |",
        f"| | static batch of {BATCH}: prefill, then {OSL - 1} decode steps (`derive.static_batch_latency`) | "
        f"{ms(static.tpot_s)} | {static.output_tokens_per_s_per_chip:,.0f} |",
    ]


def concurrency_table(eff: str) -> tuple[list[str], str]:
    req = cm.Requests(ISL, OSL)
    dis = cm.Disaggregated(cm.Pool(cm.Parallel(tp=8)), cm.Pool(cm.Parallel(tp=8)))
    rows = [f"| concurrency ({eff}) | aggregated TTFT (ms) | aggregated TPOT (ms) | aggregated tok/s per GPU "
            "| disaggregated TTFT (ms) | disaggregated TPOT (ms) | disaggregated tok/s per GPU |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for n in CONCURRENCY:
        a = cm.serve(MODEL, CHIP, req, cm.Load.concurrency(n), parallel=cm.Parallel(tp=8), efficiency=eff,
                     chunk_tokens=CHUNK)
        d = cm.serve(MODEL, CHIP, req, cm.Load.concurrency(n), disagg=dis, efficiency=eff)
        rows.append(f"| {n} | {ms(a.ttft_s)} | {ms(a.tpot_s)} | {a.output_tokens_per_s_per_chip:,.0f} "
                    f"| {ms(d.ttft_s)} | {ms(d.tpot_s)} | {d.output_tokens_per_s_per_chip:,.0f} |")
    cap = cm.serve(MODEL, CHIP, req, cm.Load.offline(), disagg=dis, efficiency=eff).details
    match = (f"{eff}: prefill pool {cap['prefill_capacity_per_s']:.1f} requests/s, decode pool "
             f"{cap['decode_capacity_per_s']:.1f} requests/s at its largest batch ({cap['max_batch']:.0f}); "
             f"KV hand-over {1e3 * cap['kv_transfer_s']:.2f} ms per request")
    return rows, match


def main() -> None:
    print(f"## {MODEL} on 8x {CHIP}, ISL = OSL = {ISL}, tp=8\n")
    for eff in ("ideal", "calibrated"):
        print("\n".join(step_table(eff)))
        print()
    matches = []
    for eff in ("ideal", "calibrated"):
        rows, match = concurrency_table(eff)
        print("\n".join(rows))
        print()
        matches.append(match)
    print("Aggregated: one tp=8 replica (8 GPUs), chunked prefill with an 8,192-token budget. Disaggregated: "
          "one tp=8 prefill replica and one tp=8 decode replica (16 GPUs), KV handed over at the scale-up "
          "bandwidth. Pool capacities (rate matching):")
    for m in matches:
        print(f"- {m}")


if __name__ == "__main__":
    main()
