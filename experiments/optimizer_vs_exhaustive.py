"""The gradient optimiser against exhaustive search on random problems.

Draws problems over every catalog model and chip, contexts from 512 to 128k
and latency targets from impossible to loose, solves each by both methods and
prints the share of answers within 0.1% of the exhaustive optimum, agreement
on feasibility, and median wall times (cold: the first problem of a model
structure, compilation included; warm: the rest).

    python experiments/optimizer_vs_exhaustive.py [--problems 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import costmodel as cm

TOLERANCE = 1e-3


def draw(rng: np.random.Generator) -> dict:
    model = str(rng.choice(cm.list_models()))
    hw = str(rng.choice(cm.list_hardware()))
    context = float(np.round(np.exp(rng.uniform(np.log(512), np.log(131072)))))
    tpot = float(np.exp(rng.uniform(np.log(1e-3), np.log(0.2))))
    max_chips = int(rng.choice([8, 16, 32, 64, 128, 256]))
    native = cm.load_model(model).native_precision
    weights = native if native in cm.load_hardware(hw).flops_per_s else "bf16"  # e.g. fp8 DeepSeek on TPUs
    return dict(model=model, hardware=hw, context=context, tpot_s=tpot, max_chips=max_chips, weights=weights)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    seen: set = set()
    rows = []
    for i in range(args.problems):
        p = draw(rng)
        structure = cm.load_model(p["model"]).structure
        cold = structure not in seen
        seen.add(structure)
        out = {}
        for method in ("gradient", "exhaustive"):
            t = time.perf_counter()
            s = cm.optimize(p["model"], p["hardware"], context=p["context"], tpot_s=p["tpot_s"],
                            max_chips=p["max_chips"], weights=p["weights"], method=method, efficiency=cm.IDEAL)
            out[method] = (s, time.perf_counter() - t)
        g, e = out["gradient"][0], out["exhaustive"][0]
        agree = g.feasible == e.feasible
        if g.feasible and e.feasible:
            within = g.usd_per_mtok <= e.usd_per_mtok * (1 + TOLERANCE)
        elif not g.feasible and not e.feasible:
            within = (g.fastest_step_time_s is None and e.fastest_step_time_s is None) or (
                g.fastest_step_time_s is not None and e.fastest_step_time_s is not None
                and g.fastest_step_time_s <= e.fastest_step_time_s * (1 + TOLERANCE))
        else:
            within = False
        rows.append((agree, within, cold, out["gradient"][1], out["exhaustive"][1]))
        if not (agree and within):
            print(f"MISMATCH {p}: gradient {g.feasible} {g.usd_per_mtok} {g.config}; "
                  f"exhaustive {e.feasible} {e.usd_per_mtok} {e.config}")
    agree, within, cold, tg, te = (np.array(c) for c in zip(*rows))
    n = len(rows)
    print(f"problems: {n}")
    print(f"within_0.1pct_of_exhaustive: {within.mean():.1%} ({within.sum()}/{n})")
    print(f"feasibility_agreement: {agree.mean():.1%} ({agree.sum()}/{n})")
    print(f"gradient_median_wall_time_warm: {np.median(tg[~cold]) * 1e3:.1f} ms")
    print(f"gradient_median_wall_time_cold: {np.median(tg[cold]) * 1e3:.0f} ms")
    print(f"exhaustive_median_wall_time_warm: {np.median(te[~cold]) * 1e3:.1f} ms")
    print(f"exhaustive_median_wall_time_cold: {np.median(te[cold]) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
