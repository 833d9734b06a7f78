"""Fleet planning: the time to plan a 10-model fleet over every catalog chip, and the program against a
brute-force enumeration on random small fleets.

Part 1 plans ten catalog models (each with its own lengths, rate and targets) over all catalog chip
types with caps, and prints the wall time of the serving optimisations that give the candidates, of
the assignment program alone, of every program the plan solves (the plan, each cap + 1 and each cap
removed) and of the whole plan. Part 2 plans random fleets of 1-3 models on 1-3 chip types (random
caps, prices, rates and targets) with ``cm.plan`` and checks the plan against every assignment of
the plan's own candidates, enumerated with itertools: the same cost (or the same verdict of
infeasibility and the same number of models served), and the same saving from one more chip of
each type. Prints ``name: value unit`` lines.

    python experiments/fleet_plan.py [--fleets 50] [--seed 0] [--efficiency calibrated] [--skip-big]
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np

import costmodel as cm

BIG_MODELS = [  # (model, isl, osl, rate_per_s, ttft_ms, tpot_ms)
    ("llama-3-8b", 1024, 256, 20.0, 1000, 30), ("llama-3.1-8b", 4096, 512, 8.0, 2000, 40),
    ("llama-3-70b", 2048, 256, 4.0, 2000, 50), ("llama-3.3-70b", 1024, 1024, 2.0, 1000, 40),
    ("qwen3-32b", 2048, 512, 5.0, 1500, 40), ("mixtral-8x7b", 1024, 512, 6.0, 1000, 40),
    ("gpt-oss-120b", 4096, 1024, 3.0, 2000, 30), ("llama-4-scout", 8192, 512, 2.0, 3000, 50),
    ("qwen3-235b-a22b", 2048, 512, 2.0, 3000, 60), ("llama-2-13b", 512, 256, 10.0, 1000, 40),
]
SMALL_MODELS = ["llama-3-8b", "llama-3-70b", "qwen3-32b"]
SMALL_CHIPS = ["h100-sxm", "h200", "mi300x", "b200", "a100-80gb"]


def big_fleet() -> dict:
    models = {name: {"isl": isl, "osl": osl, "rate_per_s": rate, "ttft_ms": ttft, "tpot_ms": tpot}
              for name, isl, osl, rate, ttft, tpot in BIG_MODELS}
    chips = {hw: {"available": 32} for hw in cm.list_hardware()}
    return {"models": models, "chips": chips}


def random_fleet(rng: np.random.Generator) -> dict:
    ms = rng.choice(SMALL_MODELS, size=rng.integers(1, 4), replace=False)
    ks = rng.choice(SMALL_CHIPS, size=rng.integers(1, 4), replace=False)
    models = {f"m{i}": {"model": str(m), "isl": int(rng.choice([256, 1024, 4096])), "osl": int(rng.choice([128, 512])),
                        "rate_per_s": float(np.round(np.exp(rng.uniform(np.log(0.5), np.log(20))), 2)),
                        "tpot_ms": float(rng.choice([20, 40, 80])), "ttft_ms": float(rng.choice([500, 2000]))}
              for i, m in enumerate(ms)}
    chips = {str(k): {"available": int(rng.integers(0, 17)), "usd_per_chip_hour": float(np.round(rng.uniform(1, 6), 2))}
             for k in ks}
    return {"models": models, "chips": chips}


def brute(cost: list[list[float]], chips: list[list[int]], caps: list[float], power: list[list[float]] | None = None,
          power_cap: float = math.inf) -> tuple[int, float]:
    """``(models served, USD/h)``: the most models the caps (and the site's power cap, ``power[m][k]`` kW per
    candidate) can serve, and the cheapest such assignment."""
    n_types = len(caps)
    best = (0, 0.0)
    for choice in itertools.product(range(n_types + 1), repeat=len(cost)):  # n_types: not served
        if any(k < n_types and math.isinf(cost[m][k]) for m, k in enumerate(choice)):
            continue
        if any(sum(chips[m][k] for m, kk in enumerate(choice) if kk == k) > caps[k] for k in range(n_types)):
            continue
        if power is not None and sum(power[m][k] for m, k in enumerate(choice) if k < n_types) > power_cap * (1 + 1e-9):
            continue
        served = sum(k < n_types for k in choice)
        total = sum(cost[m][k] for m, k in enumerate(choice) if k < n_types)
        if served > best[0] or (served == best[0] and total < best[1]):
            best = (served, total)
    return best


def check(p) -> bool:
    """The plan equals the enumeration over its own candidates."""
    cost = [[math.inf if c.chips is None else c.usd_per_hour for c in row] for row in p.candidates]
    chips = [[c.chips or 0 for c in row] for row in p.candidates]
    caps = [c.available for c in p.chips]
    power = [[c.power_kw or 0.0 for c in row] for row in p.candidates]
    served, total = brute(cost, chips, caps, power, math.inf if p.power.cap_kw is None else p.power.cap_kw)
    ok = served == len(p.models) - len(p.unserved) and math.isclose(p.usd_per_hour, total, rel_tol=1e-9, abs_tol=1e-12)
    ok &= p.feasible == (served == len(p.models))
    if p.feasible:
        for k, row in enumerate(p.chips):
            _, plus = brute(cost, chips, [c + (j == k) for j, c in enumerate(caps)])
            ok &= math.isclose(row.usd_per_hour_per_extra_chip, total - plus, rel_tol=1e-9, abs_tol=1e-9)
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fleets", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--efficiency", default="calibrated")
    ap.add_argument("--skip-big", action="store_true", help="only the random fleets")
    args = ap.parse_args()
    if not args.skip_big:
        t0 = time.perf_counter()
        p = cm.plan(big_fleet(), efficiency=args.efficiency)
        total = time.perf_counter() - t0
        from costmodel.fleet import milp  # the program alone, on the plan's own candidates

        cost = np.array([[np.inf if c.chips is None else c.usd_per_hour for c in row] for row in p.candidates])
        chips = np.array([[c.chips or 0 for c in row] for row in p.candidates], float)
        t1 = time.perf_counter()
        milp.assign(cost, chips, np.array([c.available for c in p.chips], float))
        one = time.perf_counter() - t1
        print(f"big_fleet_models: {len(p.models)} models")
        print(f"big_fleet_chip_types: {len(p.chips)} chip types")
        print(f"big_fleet_candidates_with_a_deployment: {sum(c.solution is not None for r in p.candidates for c in r)} "
              f"of {sum(len(r) for r in p.candidates)} pairs")
        print(f"big_fleet_feasible: {p.feasible}")
        print(f"big_fleet_usd_per_hour: {p.usd_per_hour:.2f} USD/h")
        print(f"big_fleet_assignment_program_time: {one:.4f} s")
        print(f"big_fleet_all_programs_time: {p.milp_time_s:.4f} s")
        print(f"big_fleet_candidates_time: {p.candidates_time_s:.1f} s")
        print(f"big_fleet_total_time: {total:.1f} s")
        for m in p.models:
            print(f"big_fleet_model_{m.name}: {m.chips} {m.hardware} {m.mode}")
    if not args.fleets:
        return
    rng = np.random.default_rng(args.seed)
    agree, infeasible, times = 0, 0, []
    for _ in range(args.fleets):
        t0 = time.perf_counter()
        p = cm.plan(random_fleet(rng), efficiency=args.efficiency)
        times.append(time.perf_counter() - t0)
        agree += check(p)
        infeasible += not p.feasible
    print(f"random_fleets: {args.fleets} fleets")
    print(f"random_fleets_infeasible: {infeasible} fleets")
    print(f"random_fleets_equal_to_brute_force: {agree} of {args.fleets}")
    print(f"random_fleets_median_plan_time: {np.median(times):.2f} s")


if __name__ == "__main__":
    main()
