"""Open-loop serving: the closed forms of costmodel.serve against a discrete-event simulation.

For each scenario and utilisation (the rate over the largest sustainable rate), prints TTFT and
TPOT from `cm.serve(..., cm.Load.rate(R))` and from `costmodel.serving.simulate` (the same step-time
function, Poisson arrivals, chunked prefill), their relative difference, and the worst difference
up to 80% utilisation (docs/serving.md §19.3).

    python experiments/queueing_vs_simulation.py [--requests 4000] [--seed 0]
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
]
UTILISATIONS = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9)


def compare(model, chip, parallel, req, chunk, u, n_requests, seed):
    """(analytic, simulated) serving figures at utilisation ``u`` of one scenario."""
    rate = cm.serve(model, chip, req, cm.Load.rate(1e-3), parallel=parallel, chunk_tokens=chunk).max_rate_per_s
    s = cm.serve(model, chip, req, cm.Load.rate(u * rate), parallel=parallel, chunk_tokens=chunk)
    rep = replica_of(model, chip, parallel, cm.Precision(), cm.IDEAL, None, Rules())
    S, A = req.input_tokens + req.output_tokens / 2, req.input_tokens * (1 + req.prefix_hit) / 2
    sim = simulate(rep.step_function(S, A), req, u * rate, chunk_tokens=chunk,
                   max_batch=s.details["max_batch"], n_requests=n_requests, seed=seed)
    return s, sim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    worst = 0.0
    for model, chip, par, req, chunk in SCENARIOS:
        print(f"{model} on {par.tp}x {chip}, I={req.input_tokens:g} O={req.output_tokens:g} "
              f"({len(req.classes)} class(es)), chunk {chunk}")
        for u in UTILISATIONS:
            s, sim = compare(model, chip, par, req, chunk, u, args.requests, args.seed)
            dt, dp = s.ttft_s / sim.ttft_s - 1, s.tpot_s / sim.tpot_s - 1
            if u <= 0.8:
                worst = max(worst, abs(dt), abs(dp))
            print(f"  u={u:.1f}  TTFT {s.ttft_s * 1e3:9.2f} ms  sim {sim.ttft_s * 1e3:9.2f} ms ({dt:+6.1%})   "
                  f"TPOT {s.tpot_s * 1e3:7.2f} ms  sim {sim.tpot_s * 1e3:7.2f} ms ({dp:+6.1%})", flush=True)
    print(f"worst |difference| up to 80% utilisation: {worst:.1%}")


if __name__ == "__main__":
    main()
