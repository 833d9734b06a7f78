"""The serving optimiser's gradient path against its exhaustive path on random serving problems.

Draws problems over every catalog model and chip: prompts of 128 to 32k tokens, outputs of 64 to 4k,
request rates of 0.05 to 200 per second, TTFT targets of 10 ms to 20 s and TPOT targets of 2 to 200 ms
(from impossible to loose), budgets of 8 to 128 chips, both modes (``mode="auto"``: the best aggregated
and the best disaggregated deployment). Solves each by both methods and prints the share of gradient
answers within 0.1% of the exhaustive optimum (every mode of every problem, and the winners), agreement
on feasibility, median wall times (cold: the first problem of a model structure in the process,
compilation included, over the problems where the method ran first; warm: the rest; the methods take
turns at running first) and the median size of the searched space.

    python experiments/serving_optimizer_vs_exhaustive.py [--problems 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import costmodel as cm
from costmodel.optimizer.serving.exact import forget_confirmed

TOLERANCE = 1e-3


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw(rng: np.random.Generator) -> dict:
    model = str(rng.choice(cm.list_models()))
    hw = str(rng.choice(cm.list_hardware()))
    native = cm.load_model(model).native_precision
    weights = native if native in cm.load_hardware(hw).flops_per_s else "bf16"  # e.g. fp8 DeepSeek on TPUs
    return dict(model=model, hardware=hw, isl=round(log_uniform(rng, 128, 32768)),
                osl=round(log_uniform(rng, 64, 4096)), rate_per_s=log_uniform(rng, 0.05, 200),
                ttft_s=log_uniform(rng, 0.01, 20), tpot_s=log_uniform(rng, 0.002, 0.2),
                max_chips=int(rng.choice([8, 16, 32, 64, 128])), weights=weights)


def solve(p: dict, method: str):
    forget_confirmed()  # each method confirms its own candidates: no cm.serve result kept from the other
    t = time.perf_counter()
    s = cm.optimize_serving(p["model"], p["hardware"], cm.Requests(p["isl"], p["osl"]), rate_per_s=p["rate_per_s"],
                            ttft_s=p["ttft_s"], tpot_s=p["tpot_s"], max_chips=p["max_chips"], weights=p["weights"],
                            method=method, efficiency=cm.IDEAL)
    return s, time.perf_counter() - t


def close(a, b) -> bool:
    """Same feasibility, and a feasible gradient answer within the tolerance of the exhaustive one."""
    if a.feasible != b.feasible:
        return False
    return not a.feasible or a.usd_per_mtok <= b.usd_per_mtok * (1 + TOLERANCE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    seen: set = set()
    rows, modes = [], []
    for i in range(args.problems):
        p = draw(rng)
        structure = cm.load_model(p["model"]).structure
        cold = structure not in seen
        seen.add(structure)
        # alternate which method runs first: the first also compiles the serving model's step arrays
        # of new sizes for cm.serve's confirmation
        if i % 2:
            (e, te), (g, tg) = solve(p, "exhaustive"), solve(p, "gradient")
        else:
            (g, tg), (e, te) = solve(p, "gradient"), solve(p, "exhaustive")
        for name in e.modes:
            modes.append((g.modes[name].feasible == e.modes[name].feasible, close(g.modes[name], e.modes[name])))
        rows.append((g.feasible == e.feasible, close(g, e), cold, tg, te, e.space_size, e.feasible, i % 2 == 0))
        if not close(g, e) or not all(close(g.modes[n], e.modes[n]) for n in e.modes):
            print(f"MISMATCH {p}: gradient {g.feasible} {g.usd_per_mtok} {g.config}; "
                  f"exhaustive {e.feasible} {e.usd_per_mtok} {e.config}", flush=True)
        print(f"{i + 1}/{args.problems} {p['model']} {p['hardware']} feasible={e.feasible} "
              f"gradient {tg:.2f} s exhaustive {te:.2f} s", file=sys.stderr, flush=True)
    agree, within, cold, tg, te, space, feasible, gradient_first = (np.array(c) for c in zip(*rows))
    m_agree, m_within = (np.array(c) for c in zip(*modes))
    n = len(rows)
    print(f"problems: {n} ({feasible.sum()} feasible)")
    print(f"within_0.1pct_of_exhaustive: {within.mean():.1%} ({within.sum()}/{n})")
    print(f"within_0.1pct_of_exhaustive_per_mode: {m_within.mean():.1%} ({m_within.sum()}/{len(modes)})")
    print(f"feasibility_agreement: {agree.mean():.1%} ({agree.sum()}/{n})")
    print(f"feasibility_agreement_per_mode: {m_agree.mean():.1%} ({m_agree.sum()}/{len(modes)})")
    for name, t, first in (("gradient", tg, gradient_first), ("exhaustive", te, ~gradient_first)):
        warm = f"{np.median(t[~cold]) * 1e3:.0f} ms" if (~cold).any() else "n/a"
        cold_first = cold & first  # the first problem of a structure, this method running first
        print(f"{name}_median_wall_time_warm: {warm}")
        print(f"{name}_median_wall_time_cold: "
              + (f"{np.median(t[cold_first]) * 1e3:.0f} ms ({cold_first.sum()} problems)" if cold_first.any() else "n/a"))
    print(f"median_space_size: {np.median(space):,.0f} configurations")


if __name__ == "__main__":
    main()
