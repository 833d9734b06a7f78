"""Which serving mode is cheaper, aggregated or disaggregated, over prompt length x TPOT target.

For Llama-3-70B and DeepSeek-V3 on H100 SXM and B200, the serving optimiser
(:func:`costmodel.optimizer.serving.optimize_serving`, ``mode="auto"``) prices the best
aggregated deployment (prefill chunks share every decode step) and the best disaggregated one
(prefill and decode in their own pools, the KV cache sent between them) at one request rate,
TTFT target and output length, for every prompt length (ISL) and TPOT target of the grid.
Each cell prints the winner and by how much the loser is dearer (its USD per million output
tokens over the winner's); "-" marks a mode with no feasible deployment within the chip budget.

The known results (DistServe, Zhong et al. 2024, arXiv:2401.09670; Splitwise, Patel et al. 2024,
arXiv:2311.18677): disaggregation wins when long prompts interfere with tight TPOT targets, since
an aggregated step that prefills a chunk is slower than a decode-only step and the replica must
run a smaller batch (or more replicas) to keep TPOT; aggregation wins for short prompts and loose
targets, where the prefill share of a step is small and one pool uses its chips for both phases
(docs/serving.md §19.2, §19.4).

Run: ``python experiments/agg_vs_disagg.py [--efficiency calibrated|ideal] [--out FIGURE.png]``
(a few minutes on 2 CPU cores). ``--quick`` runs a 2 x 2 corner of each grid.
"""

from __future__ import annotations

import argparse
import math
import time

import costmodel as cm
from costmodel.optimizer.serving import optimize_serving

MODELS = ("llama-3-70b", "deepseek-v3")
CHIPS = ("h100-sxm", "b200")
ISL = (256, 1024, 4096, 16384)
TPOT_MS = (15, 25, 50, 100)
OSL = 256
RATE_PER_S = 10.0
TTFT_S = 2.0
MAX_CHIPS = 256


def solve(model: str, chip: str, isl: int, tpot_ms: float, efficiency: str) -> dict[str, float]:
    """USD per million output tokens of each mode's best deployment (inf when infeasible)."""
    sol = optimize_serving(model, chip, cm.Requests(isl, OSL), rate_per_s=RATE_PER_S, ttft_s=TTFT_S,
                           tpot_s=tpot_ms / 1e3, max_chips=MAX_CHIPS, mode="auto", weights="bf16,fp8",
                           efficiency=efficiency)
    out = {}
    for mode, best in sol.modes.items():
        out[mode] = best.usd_per_mtok_output if best.feasible else math.inf
        out[mode + "_binding"] = best.binding if best.feasible else "infeasible"
    return out


def cell(costs: dict[str, float]) -> tuple[str, float]:
    """The cell's label and log2 of (aggregated cost / disaggregated cost)."""
    a, d = costs["aggregated"], costs["disaggregated"]
    if math.isinf(a) and math.isinf(d):
        return "-", math.nan
    if math.isinf(d):
        return "agg only", -3.0
    if math.isinf(a):
        return "disagg only", 3.0
    ratio = math.log2(a / d)
    if abs(ratio) < 1e-9:
        return "tie", 0.0
    return (f"disagg {a / d:.2f}x" if a > d else f"agg {d / a:.2f}x"), ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--efficiency", default="calibrated")
    ap.add_argument("--out", default=None, help="write the map as a figure (PNG)")
    ap.add_argument("--quick", action="store_true", help="a 2 x 2 corner of each grid")
    args = ap.parse_args()
    isls, tpots = (ISL[::3], TPOT_MS[::3]) if args.quick else (ISL, TPOT_MS)
    print(f"OSL {OSL}, {RATE_PER_S:g} requests/s, TTFT <= {TTFT_S:g} s, <= {MAX_CHIPS} chips, weights bf16 or fp8, "
          f"efficiency {args.efficiency}; cell: the cheaper mode and the loser's cost over the winner's")
    maps, t0 = {}, time.perf_counter()
    for model in MODELS:
        for chip in CHIPS:
            grid = [[solve(model, chip, isl, tpot, args.efficiency) for tpot in tpots] for isl in isls]
            maps[model, chip] = grid
            print(f"\n{model} on {chip}\n")
            print("| ISL \\ TPOT target | " + " | ".join(f"{t} ms" for t in tpots) + " |")
            print("|---:|" + "---:|" * len(tpots))
            for isl, row in zip(isls, grid):
                print(f"| {isl} | " + " | ".join(cell(c)[0] for c in row) + " |")
    print(f"\nwall time: {time.perf_counter() - t0:.1f} s")
    for (model, chip), grid in maps.items():
        agree = _known_results(grid)
        print(f"known results on {model}/{chip}: {agree}")
    if args.out:
        _figure(maps, isls, tpots, args.out)
        print(f"figure: {args.out}")


def _known_results(grid: list[list[dict]]) -> str:
    """Whether the corners of the grid follow the known results."""
    short_loose = cell(grid[0][-1])[1]
    long_tight = cell(grid[-1][0])[1]
    says = []
    for corner, r in (("short prompt, loose target", short_loose), ("long prompt, tight target", long_tight)):
        if not math.isnan(r):
            says.append(f"{corner}: " + ("a tie" if r == 0 else "disaggregated wins" if r > 0 else "aggregated wins"))
    return "; ".join(says) or "no feasible corner"


def _figure(maps, isls, tpots, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    fig, axes = plt.subplots(len(MODELS), len(CHIPS), figsize=(4.2 * len(CHIPS), 3.6 * len(MODELS)),
                             constrained_layout=True)
    norm = TwoSlopeNorm(vmin=-3.0, vcenter=0.0, vmax=3.0)
    for r, model in enumerate(MODELS):
        for c, chip in enumerate(CHIPS):
            ax, grid = axes[r][c], maps[model, chip]
            z = np.array([[cell(x)[1] for x in row] for row in grid])
            im = ax.imshow(np.clip(z, -3, 3), cmap="coolwarm", norm=norm, origin="lower", aspect="auto")
            for i, row in enumerate(grid):
                for j, x in enumerate(row):
                    ax.text(j, i, cell(x)[0].replace(" ", "\n"), ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(tpots)), [f"{t}" for t in tpots])
            ax.set_yticks(range(len(isls)), [f"{i}" for i in isls])
            ax.set_xlabel("TPOT target (ms)")
            ax.set_ylabel("prompt length (tokens)")
            ax.set_title(f"{model} on {chip}", fontsize=9)
    fig.colorbar(im, ax=axes, label="log2(aggregated cost / disaggregated cost)", shrink=0.8)
    fig.suptitle(f"Cheaper mode: OSL {OSL}, {RATE_PER_S:g} req/s, TTFT <= {TTFT_S:g} s", fontsize=10)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
