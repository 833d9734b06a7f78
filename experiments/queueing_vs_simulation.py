"""Open-loop serving: the closed forms of costmodel.serve against a discrete-event simulation.

For each scenario and utilisation (the rate over the largest sustainable rate), prints the mean,
P90 and P99 of TTFT, TPOT and end-to-end latency from `cm.serve(..., cm.Load.rate(R))` and from
`costmodel.serving.simulate` (the same step-time function, Poisson arrivals, chunked prefill, the
same request classes), their relative difference, and the worst difference of each kind up to
70% and up to 90% utilisation (docs/serving.md §19.3, §19.10).

    python experiments/queueing_vs_simulation.py [--requests 20000] [--seed 1]
"""

from __future__ import annotations

import argparse

import costmodel as cm
from costmodel.serving.api import replica_of
from costmodel.serving.simulate import simulate
from costmodel.symbolic import Rules

SCENARIOS = [
    # model, chip, parallel, requests, chunk tokens
    ("llama-3-8b", "h100-sxm", cm.Parallel(tp=1), cm.Requests(1024, 256), 8192),
    ("llama-3-70b", "h100-sxm", cm.Parallel(tp=8), cm.Requests(1024, 1024), 8192),
    ("llama-3-70b", "h100-sxm", cm.Parallel(tp=8), cm.Requests(4096, 512), 2048),  # prompts in 2 chunks
    ("mixtral-8x7b", "h100-sxm", cm.Parallel(tp=2), cm.Requests(2048, 128), 8192),
    ("llama-3-8b", "h100-sxm", cm.Parallel(tp=1), cm.Requests.mix([(0.7, 512, 128), (0.3, 2048, 512)]), 8192),
    ("llama-3-8b", "h100-sxm", cm.Parallel(tp=1), cm.Requests(2000, 300), 512),  # prompts in 4 chunks
    ("llama-3-8b", "h100-sxm", cm.Parallel(tp=1), cm.Requests.lognormal(1024, 256, 1.0, 1.0), 8192),
]
UTILISATIONS = (0.3, 0.5, 0.7, 0.8, 0.9)
#: the figures compared: the mean (a ServingPrediction attribute) and the percentiles (keys)
FIGURES = {"ttft": ("ttft_s", "ttft_p90_s", "ttft_p99_s"), "tpot": ("tpot_s", "tpot_p90_s", "tpot_p99_s"),
           "e2e": ("e2e_latency_s", "e2e_p90_s", "e2e_p99_s")}


def compare(model, chip, parallel, req, chunk, u, n_requests, seed):
    """(analytic, simulated) serving figures at utilisation ``u`` of one scenario."""
    kw = dict(parallel=parallel, chunk_tokens=chunk, efficiency=cm.IDEAL)  # the simulation's step is the ideal one
    rate = cm.serve(model, chip, req, cm.Load.rate(1e-3), **kw).max_rate_per_s
    s = cm.serve(model, chip, req, cm.Load.rate(u * rate), **kw)
    rep = replica_of(model, chip, parallel, cm.Precision(), cm.IDEAL, None, Rules())
    S, A = req.input_tokens + req.output_tokens / 2, req.input_tokens * (1 + req.prefix_hit) / 2
    sim = simulate(rep.step_function(S, A), req, u * rate, chunk_tokens=chunk,
                   max_batch=s.details["max_batch"], n_requests=n_requests, seed=seed)
    return s, sim


def figures(pred, sim) -> dict[str, tuple[float, float]]:
    """``{key: (model, simulation)}`` for the mean, P90 and P99 of TTFT, TPOT and latency."""
    out = {}
    for mean_key, p90, p99 in FIGURES.values():
        out[mean_key] = (getattr(pred, mean_key), getattr(sim, mean_key))
        for k in (p90, p99):
            out[k] = (pred.percentiles[k], sim.percentiles[k])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    worst: dict[tuple[str, float], float] = {}
    for model, chip, par, req, chunk in SCENARIOS:
        print(f"{model} on {par.tp}x {chip}, I={req.input_tokens:.4g} O={req.output_tokens:.4g} "
              f"({len(req.classes)} class(es)), chunk {chunk}")
        for u in UTILISATIONS:
            s, sim = compare(model, chip, par, req, chunk, u, args.requests, args.seed)
            cells = []
            for key, (a, b) in figures(s, sim).items():
                d = a / b - 1
                kind = "mean" if not key.split("_")[1].startswith("p") else key.split("_")[1]
                for bound in (0.7, 0.9):
                    if u <= bound:
                        worst[(kind, bound)] = max(worst.get((kind, bound), 0.0), abs(d))
                cells.append(f"{key.removesuffix('_s').replace('_latency', '')} {d:+6.1%}")
            print(f"  u={u:.1f}  TTFT {s.ttft_s * 1e3:8.1f} ms (sim {sim.ttft_s * 1e3:8.1f})  "
                  f"P99 {s.percentiles['ttft_p99_s'] * 1e3:8.1f} (sim {sim.percentiles['ttft_p99_s'] * 1e3:8.1f})  "
                  f"TPOT {s.tpot_s * 1e3:6.2f} ms (sim {sim.tpot_s * 1e3:6.2f})", flush=True)
            print("         " + "  ".join(cells), flush=True)
    for bound in (0.7, 0.9):
        print(f"worst |difference| up to {bound:.0%} utilisation: "
              + ", ".join(f"{kind} {worst[(kind, bound)]:.1%}" for kind in ("mean", "p90", "p99")))


if __name__ == "__main__":
    main()
